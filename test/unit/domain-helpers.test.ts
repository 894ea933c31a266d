/**
 * The domain's small pure helpers: how archives are cut into ranges and parts named, scope
 * strings, the errors the use cases raise (their names, codes and
 * default messages are what logs and API answers carry).
 */
import { describe, expect, it } from 'vitest';
import { partObjectName, partRanges } from '../../functions/src/domain/archive-parts';
import { ArchiveNeedsPartsError, ArchivePartsMissingError, ArchiveRejectedError, ArchiveUrlExpiredError, AuthorizationCodeError, conflict, ConsentRevokedError, CopyInterruptedError, invalid, InvalidTransitionError, isTransientError, notFound, PortabilityApiError, RequestError, UnauthenticatedError, UnavailableError } from '../../functions/src/domain/errors';
import { groupsInScopes, scopeOf, SCOPE_PREFIX, supportsTimeFilter } from '../../functions/src/domain/resource-groups';

describe('archive parts', () => {
  it('cuts a size into ceil(size/parts) ranges, the last shorter, leaving out empty ones', () => {
    expect(partRanges(10, 1)).toEqual([[0, 9]]);
    expect(partRanges(10, 2)).toEqual([
      [0, 4],
      [5, 9],
    ]);
    expect(partRanges(10, 3)).toEqual([
      [0, 3],
      [4, 7],
      [8, 9],
    ]);
    expect(partRanges(5, 4)).toEqual([
      [0, 1],
      [2, 3],
      [4, 4],
    ]);
    expect(partRanges(1, 32)).toEqual([[0, 0]]);
    // Cutting again into the resulting count gives the same ranges.
    expect(partRanges(5, 3)).toEqual(partRanges(5, 4));
  });

  it('refuses sizes and part counts it cannot cut', () => {
    for (const size of [0, -1, 1.5, Number.NaN]) expect(() => partRanges(size, 2), String(size)).toThrow(/size must be a positive integer, got/);
    for (const parts of [0, 33, 2.5]) expect(() => partRanges(10, parts), String(parts)).toThrow('parts must be an integer from 1 to 32 (the compose limit)');
    expect(partRanges(128, 32)).toHaveLength(32);
  });

  it('names parts next to their archive, 1-based', () => {
    expect(partObjectName('u/e/r/archive-1-of-1.zip', 0, 4)).toBe('u/e/r/archive-1-of-1.zip.part-1-of-4');
    expect(partObjectName('x', 3, 4)).toBe('x.part-4-of-4');
  });
});

describe('resource groups and scopes', () => {
  it('maps groups to scopes and back, ignoring other scopes and extra spaces', () => {
    expect(scopeOf('myactivity.search')).toBe(`${SCOPE_PREFIX}myactivity.search`);
    expect(groupsInScopes(`openid  ${scopeOf('chrome.history')}\t${scopeOf('play.library')} email`)).toEqual(['chrome.history', 'play.library']);
    expect(groupsInScopes('')).toEqual([]);
    expect(groupsInScopes(`x${scopeOf('chrome.history')}`)).toEqual([]);
  });

  it('knows which groups take time filters', () => {
    expect(['myactivity.search', 'chrome.history', 'play.library'].map(supportsTimeFilter)).toEqual([true, true, true]);
    expect(['chrome.bookmarks', 'youtube.comments', 'xplay.library', 'maps.reviews'].map(supportsTimeFilter)).toEqual([false, false, false, false]);
  });
});

describe('errors', () => {
  it('request errors carry status, code, field and Retry-After', () => {
    expect(invalid('resources', 'bad')).toMatchObject({ name: 'RequestError', status: 400, code: 'INVALID_ARGUMENT', message: 'bad', field: 'resources' });
    expect(notFound('Export')).toMatchObject({ status: 404, code: 'NOT_FOUND', message: 'Export not found' });
    expect(conflict('NO_AUTHORIZATION', 'none')).toMatchObject({ status: 409, code: 'NO_AUTHORIZATION', message: 'none' });
    expect(new RequestError(429, 'LIMIT', 'slow down', undefined, 60)).toMatchObject({ retryAfterSeconds: 60 });
    expect(new UnavailableError('down')).toMatchObject({ name: 'UnavailableError', message: 'down', retryAfterSeconds: 30 });
    expect(new UnavailableError('down', 5).retryAfterSeconds).toBe(5);
  });

  it('tells transient adapter errors apart', () => {
    expect(isTransientError(Object.assign(new Error('x'), { transient: true }))).toBe(true);
    for (const e of [new Error('x'), Object.assign(new Error('x'), { transient: 'yes' }), null, undefined, 'transient', { transient: 1 }]) expect(isTransientError(e)).toBe(false);
  });

  it('every port error has its own name and a default message that says what happened', () => {
    const cases: Array<[Error, string, string | RegExp]> = [
      [new ConsentRevokedError(), 'ConsentRevokedError', 'The stored Google authorization is no longer valid; the user must consent again'],
      [new AuthorizationCodeError('used'), 'AuthorizationCodeError', 'used'],
      [new UnauthenticatedError(), 'UnauthenticatedError', 'A valid ID token is required'],
      [new ArchiveUrlExpiredError(), 'ArchiveUrlExpiredError', 'The signed archive URL has expired'],
      [new ArchiveRejectedError('no'), 'ArchiveRejectedError', 'no'],
      [new ArchiveNeedsPartsError({ size: 9, crc32c: 'AAAAAA==', contentType: 'application/zip' }), 'ArchiveNeedsPartsError', 'The archive is 9 bytes: copy it in parts'],
      [new ArchivePartsMissingError([0, 2]), 'ArchivePartsMissingError', 'Archive parts missing: 1, 3'],
      [new CopyInterruptedError(), 'CopyInterruptedError', 'The archive copy was interrupted'],
      [new PortabilityApiError(500, 'INTERNAL', 'boom'), 'PortabilityApiError', 'boom'],
      [new InvalidTransitionError('SUCCEEDED', 'copied'), 'InvalidTransitionError', 'Event copied does not apply to a job in state SUCCEEDED'],
    ];
    for (const [e, name, message] of cases) {
      expect(e).toBeInstanceOf(Error);
      expect(e.name).toBe(name);
      expect(e.message).toEqual(message);
    }
    expect(new ArchivePartsMissingError([1]).missing).toEqual([1]);
  });
});
