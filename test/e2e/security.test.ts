/**
 * Security properties through the public API on the local stack: tokens at rest, malformed and
 * oversized bodies, abuse limits, deletion, and the private task endpoints' OIDC checks.
 */
import http from 'node:http';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { paths } from '../../functions/src/adapters/firestore-paths';
import { createLocalOidcIssuer } from '../../local-stack/local-oidc-issuer';
import { api, authorizedUser, objectNames, waitForExport, type ExportBody } from '../support/api-client';

const PROJECT = 'demo-e2e-security';
const TASKS_SA = 'tasks-invoker@local-project.iam.gserviceaccount.com';
let stack: LocalStack;
let db: Firestore;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 300,
    archiveBytes: 50_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
    env: { MAX_EXPORTS_PER_DAY: '3', MAX_CONCURRENT_EXPORTS: '2' },
  });
  db = new Firestore({ projectId: PROJECT });
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

/** Sends raw bytes (optionally chunked, without Content-Length) and returns status and parsed body. */
function rawRequest(path: string, opts: { method?: string; headers?: Record<string, string>; chunks?: Buffer[] }): Promise<{ status: number; type: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(stack.apiUrl + path, { method: opts.method ?? 'POST', headers: opts.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // left as text: the assertion on the type shows it
        }
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body });
      });
    });
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

describe('tokens at rest', () => {
  it('the raw grant document holds no refresh or access token, nor any piece of one', async () => {
    const { googleUserId } = await authorizedUser(stack, 'ivy', ['myactivity.search']);
    const raw = JSON.stringify((await db.doc(paths.grant('ivy')).get()).data());
    const grant = [...stack.accounts.grants.values()].find((g) => g.googleUserId === googleUserId);
    expect(grant).toBeDefined();
    const access = [...stack.accounts.accessTokens.values()].filter((t) => t.grantId === grant?.grantId).map((t) => t.token);
    expect(access.length).toBeGreaterThan(0);
    for (const secret of [grant!.refreshToken, ...access]) {
      const body = secret.replace(/^(1\/\/|ya29\.)sim-(refresh-)?/, '');
      // Every 12-character piece of the random part, raw and base64: none may appear.
      for (let i = 0; i + 12 <= body.length; i += 4) expect(raw).not.toContain(body.slice(i, i + 12));
      expect(raw).not.toContain(Buffer.from(secret).toString('base64').slice(0, 16));
    }
    const doc = JSON.parse(raw) as { refreshToken: Record<string, unknown> };
    expect(Object.keys(doc.refreshToken).sort()).toEqual(['ciphertext', 'keyVersion', 'wrappedKey']);
    expect(doc.refreshToken.keyVersion).toBe('local-v1');
  });
});

describe('hostile bodies', () => {
  it('answers malformed JSON with a JSON 400 naming the body, on every body route', async () => {
    const token = await stack.idToken('mallory');
    for (const path of ['/v1/exports', '/v1/authorizations', '/v1/authorizations:reset', '/v1/exports/0123456789abcdef0123:cancel']) {
      const res = await rawRequest(path, { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, chunks: [Buffer.from('{"resources": [')] });
      expect(res.status, path).toBe(400);
      expect(res.type).toMatch(/application\/json/);
      expect(res.body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', field: 'body' } });
    }
  });

  it('answers an unsupported charset or encoding with a JSON 415', async () => {
    const token = await stack.idToken('mallory');
    const variants: Array<Record<string, string>> = [{ 'Content-Type': 'application/json; charset=latin-9' }, { 'Content-Type': 'application/json', 'Content-Encoding': 'br-x' }];
    for (const headers of variants) {
      const res = await rawRequest('/v1/exports', { headers: { Authorization: `Bearer ${token}`, ...headers }, chunks: [Buffer.from('{}')] });
      expect(res.status).toBe(415);
      expect(res.type).toMatch(/application\/json/);
      expect(res.body).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    }
  });

  it('refuses a body over 16 KB with 413, with or without Content-Length (chunked)', async () => {
    const token = await stack.idToken('mallory');
    const big = Buffer.from(JSON.stringify({ resources: ['x'.repeat(17 * 1024)] }));
    const withLength = await rawRequest('/v1/exports', { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': String(big.length) }, chunks: [big] });
    const chunked = await rawRequest('/v1/exports', {
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      chunks: [big.subarray(0, 5000), big.subarray(5000, 12000), big.subarray(12000)],
    });
    for (const res of [withLength, chunked]) {
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ error: { code: 'BODY_TOO_LARGE' } });
    }
  });
});

describe('abuse limits', () => {
  it('answers 429 with Retry-After beyond the concurrent and the daily limit; a replay never counts', async () => {
    const { token } = await authorizedUser(stack, 'oscar', ['play.library', 'play.devices', 'play.grouping']);
    const began = Date.now();
    stack.portability.faults.jobDuration('play.library', 600_000);
    stack.portability.faults.jobDuration('play.devices', 600_000);
    const first = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['play.library'] }, { 'Idempotency-Key': 'k1' });
    const second = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['play.devices'] });
    expect([first.status, second.status]).toEqual([202, 202]);
    const third = await api(stack, token, 'POST', '/v1/exports', { resources: ['play.grouping'] });
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ error: { code: 'CONCURRENT_EXPORT_LIMIT' } });
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    // The idempotent replay of the first is answered as before, not limited.
    const replay = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['play.library'] }, { 'Idempotency-Key': 'k1' });
    expect(replay.status).toBe(202);
    expect(replay.body.exportId).toBe(first.body.exportId);

    // Cancel both: nothing runs, but three were started today with the next one... the daily limit is 3.
    for (const e of [first, second]) expect((await api(stack, token, 'POST', `/v1/exports/${e.body.exportId}:cancel`)).status).toBe(200);
    const fourth = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['play.grouping'] });
    expect(fourth.status).toBe(202);
    await waitForExport(stack, token, fourth.body.exportId);
    const fifth = await api(stack, token, 'POST', '/v1/exports', { resources: ['play.grouping'] });
    expect(fifth.status).toBe(429);
    expect(fifth.body).toMatchObject({ error: { code: 'DAILY_EXPORT_LIMIT' } });
    const retryAfter = Number(fifth.headers.get('retry-after'));
    // The oldest of the three frees its slot 24 hours after it was made: made and answered within
    // this test, so 24 hours less at most the seconds the test itself took, however long that was.
    const tookSeconds = Math.ceil((Date.now() - began) / 1000);
    expect(retryAfter).toBeGreaterThanOrEqual(86_400 - tookSeconds - 1);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect((await db.collection('exports').where('userId', '==', 'oscar').get()).size).toBe(3);
  });
});

describe('deletion', () => {
  it('DELETE removes the archives, the jobs, the idempotency record and the export; 404 for another user', async () => {
    const { token } = await authorizedUser(stack, 'peggy', ['chrome.history', 'chrome.bookmarks']);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {}, { 'Idempotency-Key': 'peggy-1' });
    const done = await waitForExport(stack, token, started.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const id = done.exportId;
    expect((await objectNames(stack, `peggy/${id}/`)).length).toBe(2);

    const { token: other } = await authorizedUser(stack, 'trent', ['chrome.history']);
    const foreign = await api(stack, other, 'DELETE', `/v1/exports/${id}`);
    expect(foreign.status).toBe(404);
    expect((await objectNames(stack, `peggy/${id}/`)).length).toBe(2);

    const del = await api(stack, token, 'DELETE', `/v1/exports/${id}`);
    expect(del.status).toBe(204);
    expect(await objectNames(stack, `peggy/${id}/`)).toEqual([]);
    expect((await db.doc(`exports/${id}`).get()).exists).toBe(false);
    expect((await db.collection('jobs').where('exportId', '==', id).get()).size).toBe(0);
    expect((await db.collection('idempotency').where('exportId', '==', id).get()).size).toBe(0);
    expect((await api(stack, token, 'GET', `/v1/exports/${id}`)).status).toBe(404);
    expect((await api(stack, token, 'DELETE', `/v1/exports/${id}`)).status).toBe(404);

    // Reset, and nothing of peggy's remains: no grant, no export, no job, no started consent, no object.
    expect((await db.collection('consentStates').where('userId', '==', 'peggy').get()).size).toBeGreaterThan(0);
    expect((await api(stack, token, 'POST', '/v1/authorizations:reset')).status).toBe(200);
    expect((await db.doc(paths.grant('peggy')).get()).exists).toBe(false);
    for (const c of ['exports', 'jobs', 'idempotency', 'consentStates']) expect((await db.collection(c).where('userId', '==', 'peggy').get()).size, c).toBe(0);
    expect(await objectNames(stack, 'peggy/')).toEqual([]);
  });

  it('DELETE of a running export cancels it at Google first, then deletes it', async () => {
    const { token } = await authorizedUser(stack, 'rupert', ['maps.reviews']);
    stack.portability.faults.jobDuration('maps.reviews', 600_000);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    await waitForExport(stack, token, started.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    expect((await api(stack, token, 'DELETE', `/v1/exports/${started.body.exportId}`)).status).toBe(204);
    expect(stack.portability.jobs().find((j) => j.resources.includes('maps.reviews'))?.state).toBe('CANCELLED');
    expect((await db.doc(`exports/${started.body.exportId}`).get()).exists).toBe(false);
  });
});

describe('private task endpoints', () => {
  it('refuse a wrong audience, email, expiry or issuer with 401/403, and nothing changes', async () => {
    const { token } = await authorizedUser(stack, 'sybil', ['youtube.channel']);
    stack.portability.faults.jobDuration('youtube.channel', 600_000);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    const waiting = await waitForExport(stack, token, started.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    const job = waiting.jobs[0]!;
    // Hold the queue: the job's own polling must not change it while the forged calls arrive.
    stack.tasks.pause();
    await expect.poll(() => stack.tasks.inFlightCount(), { timeout: 30_000 }).toBe(0);
    const before = (await db.doc(`jobs/${job.jobId}`).get()).data();
    const callsBefore = stack.portability.calls.length;
    const issuer = stack.tasksOidcIssuer;
    const stranger = await createLocalOidcIssuer({ issuer: 'https://accounts.google.com' });
    const otherIssuer = await createLocalOidcIssuer({ issuer: 'https://evil.example' });
    const { checkUrl, copyUrl } = stack.config.tasks;
    const forged: Array<[string, string]> = [
      ['audience of the copy URL', await issuer.sign({ aud: copyUrl, email: TASKS_SA, email_verified: true, sub: '1' })],
      ['another service account', await issuer.sign({ aud: checkUrl, email: 'someone@evil.iam.gserviceaccount.com', email_verified: true, sub: '1' })],
      ['unverified email', await issuer.sign({ aud: checkUrl, email: TASKS_SA, email_verified: false, sub: '1' })],
      ['expired', await issuer.sign({ aud: checkUrl, email: TASKS_SA, email_verified: true, sub: '1' }, -120)],
      ['signed by an unknown key', await stranger.sign({ aud: checkUrl, email: TASKS_SA, email_verified: true, sub: '1' })],
      ['another issuer', await otherIssuer.sign({ aud: checkUrl, email: TASKS_SA, email_verified: true, sub: '1' })],
    ];
    for (const [what, jwt] of forged) {
      const res = await fetch(checkUrl, {
        method: 'POST',
        headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ jobId: job.jobId, step: 'check', seq: (before as { seq: number }).seq }),
      });
      expect([401, 403], what).toContain(res.status);
      expect(((await res.json()) as { error: { code: string } }).error.code, what).toMatch(/UNAUTHENTICATED|PERMISSION_DENIED/);
    }
    // The sweeper's endpoint takes only its own audience too.
    const sweep = await fetch(stack.config.tasks.sweepUrl, { method: 'POST', headers: { Authorization: `Bearer ${forged[0]![1]}` } });
    expect([401, 403]).toContain(sweep.status);
    expect((await db.doc(`jobs/${job.jobId}`).get()).data()).toEqual(before);
    expect(stack.portability.calls.slice(callsBefore).filter((c) => c.method === 'getState' && c.jobId === (before as { archiveJobId?: string }).archiveJobId)).toEqual([]);
    stack.tasks.resume();
    // The real token is accepted: the same request goes through (so the refusals above were the tokens').
    const accepted = await stack.deliverTask({ jobId: job.jobId, step: 'check', seq: (before as { seq: number }).seq });
    expect(accepted).toBe(200);
  });
});

describe('token claims', () => {
  it('the API refuses user ID tokens without iat or exp, living over an hour, or issued or signed in later than now, each by name', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['no iat', { iat: undefined }, /iat claim is missing/],
      ['no exp', { exp: undefined }, /exp claim is missing/],
      ['iat a year ahead', { iat: now + 365 * 86_400, exp: now + 365 * 86_400 + 3600 }, /iat claim is in the future/],
      ['exp = 1e20', { exp: 1e20 }, /lifetime \(exp - iat\) is longer than 1 hour/],
      ['auth_time in the future', { auth_time: now + 3600 }, /auth_time claim is in the future/],
    ];
    for (const [what, claims, message] of cases) {
      const token = await stack.oauth.idIssuer.sign({ sub: 'trudy', aud: stack.oauth.idTokenAudience, ...claims });
      const res = await api<{ error: { code: string; message: string } }>(stack, token, 'GET', '/v1/exports');
      expect(res.status, what).toBe(401);
      expect(res.body.error.code, what).toBe('UNAUTHENTICATED');
      expect(res.body.error.message, what).toMatch(message);
    }
    const genuine = await stack.idToken('trudy');
    expect((await api(stack, genuine, 'GET', '/v1/exports')).status).toBe(200);
  });

  it('the private functions refuse OIDC tokens without exp or iat, living over an hour, or with email_verified not exactly true', async () => {
    const issuer = stack.tasksOidcIssuer;
    const now = Math.floor(Date.now() / 1000);
    const { checkUrl, sweepUrl, scheduleUrl } = stack.config.tasks;
    const claims = (aud: string, over: Record<string, unknown>): Record<string, unknown> => ({ aud, email: TASKS_SA, email_verified: true, sub: '1', ...over });
    const cases: Array<[string, Record<string, unknown>, number, RegExp]> = [
      ['no exp', { exp: undefined }, 401, /exp claim is missing/],
      ['no iat', { iat: undefined }, 401, /iat claim is missing/],
      ['exp = 1e20', { exp: 1e20 }, 401, /lifetime \(exp - iat\) is longer than 1 hour/],
      ['iat a day ahead', { iat: now + 86_400, exp: now + 86_400 + 3600 }, 401, /iat claim is in the future/],
      ['email_verified missing', { email_verified: undefined }, 403, /email is not verified/],
      ['email_verified "false"', { email_verified: 'false' }, 403, /email is not verified/],
      ['email_verified "true" (a string)', { email_verified: 'true' }, 403, /email is not verified/],
    ];
    for (const url of [checkUrl, sweepUrl, scheduleUrl]) {
      for (const [what, over, status, message] of cases) {
        const jwt = await issuer.sign(claims(url, over));
        // An empty task body: a token that passed would reach the handler (200 DROPPED, or a tick).
        const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' }, body: '{}' });
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(res.status, `${url} ${what}`).toBe(status);
        expect(body.error.code, `${url} ${what}`).toBe(status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED');
        expect(body.error.message, `${url} ${what}`).toMatch(message);
      }
    }
    // The same request with a genuine token gets through (so the refusals above were the claims').
    const ok = await fetch(checkUrl, { method: 'POST', headers: { Authorization: `Bearer ${await issuer.sign(claims(checkUrl, {}))}`, 'Content-Type': 'application/json' }, body: '{}' });
    expect(ok.status).toBe(200);
  });
});
