/**
 * Small pure rules the use cases rest on: the consent URL's exact parameters and the RFC 7636
 * challenge, when a stored consent may be claimed, which export windows are refused, and where a
 * job's archives are named in the bucket.
 */
import { describe, expect, it } from 'vitest';
import { consentStateUse, type ConsentState } from '../../functions/src/domain/consent-state';
import { consentUrl, pkceChallenge } from '../../functions/src/domain/consent-url';
import { exportWindowProblem } from '../../functions/src/domain/export-window';
import { archiveObjectName, jobObjectPrefix } from '../../functions/src/domain/object-names';

describe('consentUrl', () => {
  it('asks for exactly these parameters: code flow, offline access, a fresh consent, state and an S256 challenge', () => {
    const url = new URL(
      consentUrl({ authUrl: 'https://accounts.google.test/o/oauth2/v2/auth', clientId: 'cid', redirectUri: 'http://localhost/cb', resources: ['chrome.history', 'myactivity.search'], state: 'st', codeChallenge: 'ch' }),
    );
    expect(url.origin + url.pathname).toBe('https://accounts.google.test/o/oauth2/v2/auth');
    expect([...url.searchParams]).toEqual([
      ['client_id', 'cid'],
      ['redirect_uri', 'http://localhost/cb'],
      ['response_type', 'code'],
      ['scope', 'https://www.googleapis.com/auth/dataportability.chrome.history https://www.googleapis.com/auth/dataportability.myactivity.search'],
      ['access_type', 'offline'],
      ['prompt', 'consent'],
      ['state', 'st'],
      ['code_challenge', 'ch'],
      ['code_challenge_method', 'S256'],
    ]);
  });

  it('derives the challenge as RFC 7636 appendix B does', () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });
});

describe('consentStateUse', () => {
  const state: ConsentState = { userId: 'u', resources: [], redirectUri: 'r', codeVerifier: { keyVersion: 'k' } as unknown as ConsentState['codeVerifier'], createdAt: 0, expiresAt: 100 };
  it('refuses a consent used already, whether or not its verifier is still there, and one without a verifier', () => {
    expect(consentStateUse(state, 'u', 99)).toEqual({ ok: true });
    expect(consentStateUse({ ...state, usedAt: 5 }, 'u', 10)).toEqual({ ok: false, refusal: 'USED' });
    const { codeVerifier: _v, ...withoutVerifier } = state;
    expect(consentStateUse(withoutVerifier, 'u', 10)).toEqual({ ok: false, refusal: 'USED' });
    expect(consentStateUse(state, 'u', 100)).toEqual({ ok: false, refusal: 'EXPIRED' });
    expect(consentStateUse(state, 'v', 10)).toEqual({ ok: false, refusal: 'UNKNOWN' });
    expect(consentStateUse(undefined, 'u', 10)).toEqual({ ok: false, refusal: 'UNKNOWN' });
  });
});

describe('exportWindowProblem', () => {
  const now = Date.parse('2026-01-10T00:00:00Z');
  it('takes no window, a past start, a past end, and a start before the end (an end of now included)', () => {
    expect(exportWindowProblem({}, now)).toBeUndefined();
    expect(exportWindowProblem({ startTime: '2026-01-01T00:00:00Z' }, now)).toBeUndefined();
    expect(exportWindowProblem({ endTime: '2026-01-01T00:00:00Z' }, now)).toBeUndefined();
    expect(exportWindowProblem({ startTime: '2026-01-01T00:00:00Z', endTime: '2026-01-10T00:00:00Z' }, now)).toBeUndefined();
  });

  it('refuses an end in the future, a start at or after the end, and a start not in the past, naming the field', () => {
    expect(exportWindowProblem({ endTime: '2026-01-10T00:00:01Z' }, now)).toEqual({ field: 'endTime', message: 'endTime must not be in the future' });
    expect(exportWindowProblem({ startTime: '2026-01-05T00:00:00Z', endTime: '2026-01-05T00:00:00Z' }, now)).toEqual({ field: 'startTime', message: 'startTime must be before endTime' });
    expect(exportWindowProblem({ startTime: '2026-01-06T00:00:00Z', endTime: '2026-01-05T00:00:00Z' }, now)).toEqual({ field: 'startTime', message: 'startTime must be before endTime' });
    expect(exportWindowProblem({ startTime: '2026-01-10T00:00:00Z' }, now)).toEqual({ field: 'startTime', message: 'startTime must be in the past' });
  });
});

describe('object names', () => {
  it('keeps a job\'s archives under user/export/group/, numbered from 1 of N', () => {
    const job = { userId: 'u1', exportId: 'e1', resource: 'chrome.history' };
    expect(jobObjectPrefix(job)).toBe('u1/e1/chrome.history/');
    expect(archiveObjectName(job, 0, 2)).toBe('u1/e1/chrome.history/archive-1-of-2.zip');
  });
});
