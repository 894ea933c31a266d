import { describe, expect, it } from 'vitest';
import { classifyApiError, parseJobIdList } from '../../functions/src/domain/api-error-classification';
import { ConsentRevokedError, PortabilityApiError } from '../../functions/src/domain/errors';

const api = (httpStatus: number, status: string, reason?: string, metadata: Record<string, string> = {}, retryAfterSeconds?: number) =>
  new PortabilityApiError(httpStatus, status, `HTTP ${httpStatus} ${status}`, reason, metadata, retryAfterSeconds);

describe('classifyApiError: documented reasons win over status and code', () => {
  it.each([
    [409, 'ALREADY_EXISTS', 'ALREADY_EXISTS_ONE_TIME'],
    [409, 'ALREADY_EXISTS', 'ALREADY_EXISTS_TIME_BASED'],
    [400, 'FAILED_PRECONDITION', 'ALREADY_EXISTS_ONE_TIME'],
  ])('%i %s %s with job_id → already-exists', (code, status, reason) => {
    expect(classifyApiError(api(code, status, reason, { job_id: 'job-1' }))).toEqual({ kind: 'already-exists', jobId: 'job-1' });
  });

  it('ALREADY_EXISTS_* without job_id cannot be adopted → invalid', () => {
    expect(classifyApiError(api(409, 'ALREADY_EXISTS', 'ALREADY_EXISTS_ONE_TIME')).kind).toBe('invalid');
  });

  it('RESOURCE_EXHAUSTED_ONE_TIME → one-time-exhausted with the previous job ids', () => {
    expect(classifyApiError(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_ONE_TIME', { previous_job_ids: 'a,b' }))).toEqual({
      kind: 'one-time-exhausted',
      previousJobIds: ['a', 'b'],
    });
    expect(classifyApiError(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_ONE_TIME'))).toEqual({ kind: 'one-time-exhausted', previousJobIds: [] });
  });

  it.each([
    [400, 'FAILED_PRECONDITION'],
    [409, 'ABORTED'],
    [429, 'RESOURCE_EXHAUSTED'],
  ])('RESOURCE_EXHAUSTED_TIME_BASED on %i %s → time-based-cooldown with retryAt', (code, status) => {
    const at = '2026-11-23T10:00:00Z';
    expect(classifyApiError(api(code, status, 'RESOURCE_EXHAUSTED_TIME_BASED', { timestamp_after_24hrs: at }), 'initiate')).toEqual({
      kind: 'time-based-cooldown',
      retryAt: at,
    });
  });

  it('a cooldown whose timestamp is missing or malformed has no retryAt', () => {
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED_TIME_BASED'))).toEqual({ kind: 'time-based-cooldown' });
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED_TIME_BASED', { timestamp_after_24hrs: 'tomorrow' }))).toEqual({
      kind: 'time-based-cooldown',
    });
  });

  it.each(['ACCESS_TOKEN_EXPIRED', 'ACCESS_TOKEN_TYPE_UNSUPPORTED', 'CREDENTIALS_MISSING'])('Google auth reason %s → unauthenticated', (reason) => {
    expect(classifyApiError(api(401, 'UNAUTHENTICATED', reason))).toEqual({ kind: 'unauthenticated' });
  });

  it('ACCESS_TOKEN_SCOPE_INSUFFICIENT → not-authorized', () => {
    expect(classifyApiError(api(403, 'PERMISSION_DENIED', 'ACCESS_TOKEN_SCOPE_INSUFFICIENT'))).toEqual({ kind: 'not-authorized' });
  });

  it('RATE_LIMIT_EXCEEDED → transient, keeping Retry-After', () => {
    expect(classifyApiError(api(429, 'RESOURCE_EXHAUSTED', 'RATE_LIMIT_EXCEEDED', {}, 30))).toEqual({ kind: 'transient', retryAfterSeconds: 30 });
  });

  it('SERVICE_DISABLED (a 403) is a configuration problem, not partial consent → invalid', () => {
    expect(classifyApiError(api(403, 'PERMISSION_DENIED', 'SERVICE_DISABLED')).kind).toBe('invalid');
  });
});

describe('classifyApiError: then the status name', () => {
  it('403 PERMISSION_DENIED (resources not granted) → not-authorized', () => {
    expect(classifyApiError(api(403, 'PERMISSION_DENIED'))).toEqual({ kind: 'not-authorized' });
  });
  it('401 UNAUTHENTICATED → unauthenticated', () => {
    expect(classifyApiError(api(401, 'UNAUTHENTICATED'))).toEqual({ kind: 'unauthenticated' });
  });
  it('ALREADY_EXISTS without a reason but with job_id → already-exists', () => {
    expect(classifyApiError(api(409, 'ALREADY_EXISTS', undefined, { job_id: 'j' }))).toEqual({ kind: 'already-exists', jobId: 'j' });
    expect(classifyApiError(api(409, 'ALREADY_EXISTS')).kind).toBe('invalid');
  });
  it('FAILED_PRECONDITION on initiate (or unknown method) → cooldown; on retry/cancel → invalid', () => {
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION'))).toEqual({ kind: 'time-based-cooldown' });
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION'), 'initiate')).toEqual({ kind: 'time-based-cooldown' });
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION'), 'retry').kind).toBe('invalid');
    expect(classifyApiError(api(400, 'FAILED_PRECONDITION'), 'cancel').kind).toBe('invalid');
  });
  it.each([
    [429, 'RESOURCE_EXHAUSTED'],
    [503, 'UNAVAILABLE'],
    [500, 'INTERNAL'],
    [504, 'DEADLINE_EXCEEDED'],
    [409, 'ABORTED'],
  ])('%i %s without a known reason → transient', (code, status) => {
    expect(classifyApiError(api(code, status, undefined, {}, 7))).toEqual({ kind: 'transient', retryAfterSeconds: 7 });
    expect(classifyApiError(api(code, status))).toEqual({ kind: 'transient' });
  });
  it.each([
    [400, 'INVALID_ARGUMENT'],
    [404, 'NOT_FOUND'],
  ])('%i %s → invalid with the message', (code, status) => {
    expect(classifyApiError(api(code, status))).toEqual({ kind: 'invalid', message: `HTTP ${code} ${status}` });
  });
});

describe('classifyApiError: then the HTTP code', () => {
  it.each([
    [401, 'unauthenticated'],
    [403, 'not-authorized'],
    [408, 'transient'],
    [409, 'transient'],
    [429, 'transient'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
    [400, 'invalid'],
    [404, 'invalid'],
    [413, 'invalid'],
  ])('HTTP %i with no status name → %s', (code, kind) => {
    expect(classifyApiError(api(code, '')).kind).toBe(kind);
  });
});

describe('classifyApiError: errors that are not API answers', () => {
  it('fetch network failures and timeouts → transient', () => {
    expect(classifyApiError(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }))).toEqual({ kind: 'transient' });
    expect(classifyApiError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toEqual({ kind: 'transient' });
    expect(classifyApiError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))).toEqual({ kind: 'transient' });
    expect(classifyApiError(new DOMException('aborted', 'AbortError'))).toEqual({ kind: 'transient' });
  });
  it('a revoked refresh token → unauthenticated', () => {
    expect(classifyApiError(new ConsentRevokedError())).toEqual({ kind: 'unauthenticated' });
  });
  it('anything else → invalid', () => {
    expect(classifyApiError(new Error('boom'))).toEqual({ kind: 'invalid', message: 'boom' });
    expect(classifyApiError('weird')).toEqual({ kind: 'invalid', message: 'weird' });
  });
});

describe('parseJobIdList', () => {
  it.each([
    ['a,b', ['a', 'b']],
    ['[a, b]', ['a', 'b']],
    ['["a","b"]', ['a', 'b']],
    ['a', ['a']],
    ['', []],
    [' [ "a" , \'b\' ]  ', ['a', 'b']],
    ['a  b,,c', ['a', 'b', 'c']],
    ['[1, 2]', ['1', '2']],
    ['["a", ""]', ['a']],
    ['[]', []],
    ['{"a":1}', ['{"a":1}']],
  ])('%j → %j', (input, out) => {
    expect(parseJobIdList(input)).toEqual(out);
  });
});

describe('classifyApiError: edges', () => {
  it('keeps only a usable Retry-After (finite, not negative)', () => {
    expect(classifyApiError(api(503, 'UNAVAILABLE', undefined, {}, 0))).toEqual({ kind: 'transient', retryAfterSeconds: 0 });
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(classifyApiError(api(503, 'UNAVAILABLE', undefined, {}, bad)), String(bad)).toEqual({ kind: 'transient' });
    expect(classifyApiError(api(503, 'UNAVAILABLE'))).toEqual({ kind: 'transient' });
  });

  it('a cooldown keeps Google\'s timestamp only when it is RFC 3339', () => {
    const cool = (at?: string) => classifyApiError(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_TIME_BASED', at === undefined ? {} : { timestamp_after_24hrs: at }));
    expect(cool('2026-01-02T03:04:05Z')).toEqual({ kind: 'time-based-cooldown', retryAt: '2026-01-02T03:04:05Z' });
    expect(cool('2026-01-02T03:04:05.123+01:00')).toEqual({ kind: 'time-based-cooldown', retryAt: '2026-01-02T03:04:05.123+01:00' });
    for (const bad of [undefined, '', 'tomorrow', '2026-01-02', 'x2026-01-02T03:04:05Z', '2026-01-02T03:04:05Zx', '2026-13-45T99:99:99Z']) {
      expect(cool(bad), String(bad)).toEqual({ kind: 'time-based-cooldown' });
    }
  });

  it('reasons decide before statuses; unknown reasons fall back to status, then HTTP code', () => {
    expect(classifyApiError(api(401, 'UNAUTHENTICATED', 'ACCESS_TOKEN_EXPIRED'))).toEqual({ kind: 'unauthenticated' });
    expect(classifyApiError(api(400, 'INVALID_ARGUMENT', 'BACKEND_UNAVAILABLE'))).toEqual({ kind: 'transient' });
    expect(classifyApiError(api(503, 'UNAVAILABLE', 'API_KEY_INVALID'))).toMatchObject({ kind: 'invalid' });
    // An auth reason on a status that says otherwise: the reason decides.
    expect(classifyApiError(api(400, 'INVALID_ARGUMENT', 'ACCOUNT_STATE_INVALID'))).toEqual({ kind: 'unauthenticated' });
    expect(classifyApiError(api(400, 'INVALID_ARGUMENT', 'ACCESS_TOKEN_SCOPE_INSUFFICIENT'))).toEqual({ kind: 'not-authorized' });
    // An existing job Google does not name cannot be adopted: the message says so.
    expect(classifyApiError(api(409, 'ALREADY_EXISTS', 'ALREADY_EXISTS_TIME_BASED'))).toEqual({ kind: 'invalid', message: 'ALREADY_EXISTS_TIME_BASED without a job_id' });
    expect(classifyApiError(api(500, 'INTERNAL', 'SOMETHING_NEW'))).toEqual({ kind: 'transient' });
    expect(classifyApiError(api(400, 'NOT_FOUND', 'SOMETHING_NEW'))).toEqual({ kind: 'invalid', message: 'HTTP 400 NOT_FOUND' });
    expect(classifyApiError(api(409, 'ALREADY_EXISTS'))).toEqual({ kind: 'invalid', message: 'HTTP 409 ALREADY_EXISTS' });
    // The status name decides before the HTTP code.
    expect(classifyApiError(api(400, 'UNAVAILABLE'))).toEqual({ kind: 'transient' });
    expect(classifyApiError(api(500, 'INVALID_ARGUMENT'))).toEqual({ kind: 'invalid', message: 'HTTP 500 INVALID_ARGUMENT' });
    expect(classifyApiError(api(401, ''))).toEqual({ kind: 'unauthenticated' });
    expect(classifyApiError(api(403, ''))).toEqual({ kind: 'not-authorized' });
    for (const code of [0, 408, 409, 425, 429, 500, 502, 599]) expect(classifyApiError(api(code, '')), String(code)).toEqual({ kind: 'transient' });
    for (const code of [400, 404, 410, 499]) expect(classifyApiError(api(code, '')), String(code)).toEqual({ kind: 'invalid', message: `HTTP ${code} ` });
  });

  it('an API error from another copy of the module is still an API error; other errors by name and code', () => {
    const foreign = Object.assign(new Error('HTTP 503'), { name: 'PortabilityApiError', httpStatus: 503, status: 'UNAVAILABLE', metadata: {} });
    expect(classifyApiError(foreign)).toEqual({ kind: 'transient' });
    expect(classifyApiError(Object.assign(new Error('x'), { name: 'PortabilityApiError' }))).toEqual({ kind: 'invalid', message: 'x' });
    expect(classifyApiError(Object.assign(new Error('revoked'), { name: 'ConsentRevokedError' }))).toEqual({ kind: 'unauthenticated' });
    expect(classifyApiError(new TypeError('fetch failed'))).toEqual({ kind: 'transient' });
    expect(classifyApiError(new TypeError('something else'))).toEqual({ kind: 'invalid', message: 'something else' });
    expect(classifyApiError(new Error('fetch failed'))).toEqual({ kind: 'invalid', message: 'fetch failed' });
    expect(classifyApiError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toEqual({ kind: 'invalid', message: 'x' });
    expect(classifyApiError(Object.assign(new Error('x'), { code: 42 }))).toEqual({ kind: 'invalid', message: 'x' });
    expect(classifyApiError(new Error('x', { cause: { code: 'ETIMEDOUT' } }))).toEqual({ kind: 'transient' });
    expect(classifyApiError(new Error('x', { cause: 'ETIMEDOUT' }))).toEqual({ kind: 'invalid', message: 'x' });
    expect(classifyApiError(new Error('x', { cause: null }))).toEqual({ kind: 'invalid', message: 'x' });
    // Only an Error named so, with an HTTP status, is an API error.
    expect(classifyApiError(Object.assign(new Error('x'), { httpStatus: 503, status: 'UNAVAILABLE' }))).toEqual({ kind: 'invalid', message: 'x' });
    expect(classifyApiError({ name: 'PortabilityApiError', httpStatus: 503, status: 'UNAVAILABLE', message: 'm' })).toEqual({ kind: 'invalid', message: '[object Object]' });
  });
});
