/**
 * The API's smaller edges (issue 11, item 11) through the local stack: timestamps parsed as
 * strictly as Google parses them, export windows that lie in the past, and the headers every
 * answer carries (no caching, no type sniffing, CORS exposing Retry-After and Location).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, type ApiAnswer } from '../support/api-client';

const PROJECT = 'demo-e2e-api-edges';
const ORIGIN = 'https://app.example';
let stack: LocalStack;
let token: string;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 200,
    logLevel: 'silent',
    env: { CORS_ORIGINS: ORIGIN, MAX_EXPORTS_PER_DAY: '1', MAX_CONCURRENT_EXPORTS: '1' },
  });
  ({ token } = await authorizedUser(stack, 'edna', ['myactivity.search'], { accessType: 'TIME_BASED' }));
});

afterAll(async () => {
  await stack?.stop();
});

type ErrorBody = { error: { code: string; message: string; field?: string } };

describe('timestamps and windows', () => {
  it('refuses dates Google would reject and windows not wholly in the past, each a 400 naming the field, and creates nothing', async () => {
    const day = 86_400_000;
    const past = (ms: number): string => new Date(Date.now() - ms).toISOString();
    const future = new Date(Date.now() + day).toISOString();
    // One instant for both ends: two calls of past(day) can land a millisecond apart and make a valid window.
    const yesterday = past(day);
    const cases: Array<[string, string, Record<string, unknown>, string, RegExp]> = [
      ['POST', '/v1/exports', { startTime: '2026-02-30T00:00:00Z' }, 'startTime', /2026-02-30 is not a calendar date/],
      ['POST', '/v1/exports', { startTime: '2025-02-29T00:00:00Z' }, 'startTime', /not a calendar date/],
      ['POST', '/v1/exports', { endTime: '2026-01-01T24:00:00Z' }, 'endTime', /24:00:00 is not a time of day/],
      ['POST', '/v1/exports', { endTime: '2026-01-01T23:59:60Z' }, 'endTime', /not a time of day/],
      ['POST', '/v1/exports', { startTime: '0000-01-01T00:00:00Z' }, 'startTime', /year must be 0001 to 9999/],
      ['POST', '/v1/exports', { startTime: '2026-01-01t00:00:00z' }, 'startTime', /RFC 3339/],
      ['POST', '/v1/exports', { startTime: '2026-01-01T00:00:00+24:00' }, 'startTime', /UTC offset/],
      ['POST', '/v1/exports', { endTime: future }, 'endTime', /endTime must not be in the future/],
      ['POST', '/v1/exports', { startTime: past(day), endTime: future }, 'endTime', /endTime must not be in the future/],
      ['POST', '/v1/exports', { startTime: future }, 'startTime', /startTime must be in the past/],
      ['POST', '/v1/exports', { startTime: yesterday, endTime: yesterday }, 'startTime', /startTime must be before endTime/],
      ['POST', '/v1/exports', { startTime: past(day), endTime: past(2 * day) }, 'startTime', /startTime must be before endTime/],
      ['POST', '/v1/schedules', { startTime: '2026-02-30T00:00:00Z' }, 'startTime', /not a calendar date/],
      ['POST', '/v1/schedules', { startTime: '2026-01-01T24:00:00Z' }, 'startTime', /not a time of day/],
      ['POST', '/v1/schedules', { startTime: future }, 'startTime', /startTime must be in the past/],
    ];
    for (const [method, route, body, field, message] of cases) {
      const what = `${route} ${JSON.stringify(body)}`;
      const res = await api<ErrorBody>(stack, token, method, route, body);
      expect(res.status, what).toBe(400);
      expect(res.body.error, what).toMatchObject({ code: 'INVALID_ARGUMENT', field });
      expect(res.body.error.message, what).toMatch(message);
    }
    expect((await api<{ exports: unknown[] }>(stack, token, 'GET', '/v1/exports')).body.exports).toEqual([]);
    expect((await api<{ schedules: unknown[] }>(stack, token, 'GET', '/v1/schedules')).body.schedules).toEqual([]);
    // A window wholly in the past, with an offset and nine fractional digits, is taken.
    const ok = await api(stack, token, 'POST', '/v1/exports', { startTime: '2024-02-29T23:00:00.123456789+02:00', endTime: past(60_000) });
    expect(ok.status).toBe(202);
  });
});

describe('headers on every answer', () => {
  it('no-store and nosniff on successes, errors and 404s alike; CORS answers expose Retry-After and Location', async () => {
    const cors = { Origin: ORIGIN };
    const { token } = await authorizedUser(stack, 'eddie', ['myactivity.search', 'chrome.history']);
    const answers: Array<[string, ApiAnswer<unknown>]> = [
      ['200 list', await api(stack, token, 'GET', '/v1/exports', undefined, cors)],
      ['202 start', await api(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.search'] }, cors)],
      // Another group: the same one would be 409 RESOURCE_GROUP_BUSY.
      ['429 over the limit (one a day)', await api(stack, token, 'POST', '/v1/exports', { resources: ['chrome.history'] }, cors)],
      ['400 bad body', await api(stack, token, 'POST', '/v1/exports', '{', cors)],
      ['401 no token', await api(stack, undefined, 'GET', '/v1/exports', undefined, cors)],
      ['404 unknown route', await api(stack, token, 'GET', '/v1/nothing', undefined, cors)],
      ['404 unknown export', await api(stack, token, 'GET', '/v1/exports/0123456789abcdef0123', undefined, cors)],
      ['405 wrong method', await api(stack, token, 'PUT', '/v1/exports', undefined, cors)],
      ['413 body too large', await api(stack, token, 'POST', '/v1/exports', JSON.stringify({ pad: 'x'.repeat(17 * 1024) }), cors)],
      ['204 preflight', await api(stack, undefined, 'OPTIONS', '/v1/exports', undefined, { ...cors, 'Access-Control-Request-Method': 'POST' })],
      ['403 foreign origin', await api(stack, token, 'GET', '/v1/exports', undefined, { Origin: 'https://evil.example' })],
    ];
    for (const [what, res] of answers) {
      expect(res.status, what).toBe(Number(what.slice(0, 3)));
      expect(res.headers.get('cache-control'), what).toBe('no-store');
      expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
      if (what !== '403 foreign origin') {
        expect(res.headers.get('access-control-allow-origin'), what).toBe(ORIGIN);
        expect(res.headers.get('access-control-expose-headers')?.split(/,\s*/).sort(), what).toEqual(['Location', 'Retry-After']);
      }
    }
    // The two headers exposed are there to read: a Location on 202, a Retry-After on 429.
    expect(answers[1]![1].headers.get('location')).toMatch(/^\/v1\/exports\/[0-9a-f]{20}$/);
    expect(Number(answers[2]![1].headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
