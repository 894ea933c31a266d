/**
 * No secret reaches a log line, stdout/stderr or an API answer, across the whole pipeline.
 *
 * The local stack runs with every JSON log line of the functions captured at LOG_LEVEL 'trace'
 * (the most verbose level), and this process's stdout/stderr writes and console calls captured
 * too. A realistic mix goes through the public API: multi-URL archives, a job Google FAILED and
 * that is retried, a signed URL expiring in the middle of a copy, 429/500/503 from Google, an
 * outage of the token endpoint, a cancel, bad input, bad codes and bad ID tokens, a scheduled
 * (time-based) export, deletion, a reset, a sweep and duplicate task deliveries. Every secret
 * handed in or minted on the way is collected: refresh and access tokens, authorization codes,
 * the users' ID tokens, the task OIDC tokens, signed-URL query strings and signatures, resumable
 * upload session ids, the OAuth client secret and the token encryption key. Each scenario then
 * searches every text captured during it for any 16 consecutive characters of any of them, so
 * each leak check owns its traffic and runs alone as well as in order.
 *
 * Seen without test hooks: tokens and signed URLs through `node:diagnostics_channel` (every request
 * any in-process server received, every Location header it sent), this process's `fetch` (wrapped
 * before the stack is built, so the functions' adapters use the wrapper), and the two OIDC issuers'
 * `sign` (the Cloud Tasks stand-in signs each delivery's token with the stack's issuer object).
 * Not seen: writes straight to file descriptors 1/2 (a logger made without a destination); the
 * functions have only the logger the stack gives them, whose lines are all captured here.
 */
import diagnostics from 'node:diagnostics_channel';
import type http from 'node:http';
import { Writable } from 'node:stream';
import { format } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, consentAtGoogle, startConsent, waitForExport, type ExportBody } from '../support/api-client';
import { pkceChallenge, randomToken } from '../../functions/src/domain/consent-url';

const PROJECT = 'demo-secrets-logs';
const REDIRECT = 'http://localhost:5173/oauth/callback';
/** A leak is any run of this many characters of a secret (a whole token is far longer). */
const WINDOW = 16;

type SecretKind =
  | 'refresh token'
  | 'access token'
  | 'authorization code'
  | 'PKCE code verifier'
  | 'user ID token'
  | 'task OIDC token'
  | 'signed URL query string'
  | 'X-Goog-Signature'
  | 'upload session id'
  | 'OAuth client secret'
  | 'TOKEN_ENCRYPTION_KEY';

/**
 * Each secret, with the spans of it that are secret when only a part is: a signed URL's query
 * string is a secret, but its parameter names (`&X-Goog-Signature=`) are public words a log may
 * name; a run counts when it overlaps a span. Undefined spans: the whole value.
 */
const secrets = new Map<SecretKind, Map<string, Array<[number, number]> | undefined>>();
function addSecret(kind: SecretKind, value: string | undefined | null, spans?: Array<[number, number]>): void {
  if (!value || value.length < WINDOW) return;
  let map = secrets.get(kind);
  if (!map) secrets.set(kind, (map = new Map()));
  map.set(value, spans);
}
const secretCounts = (): Partial<Record<SecretKind, number>> => Object.fromEntries([...secrets].map(([k, v]) => [k, v.size]));

// ---------- what is searched ----------

const logLines: string[] = [];
let logPartial = '';
const logDestination = new Writable({
  write(chunk: Buffer | string, _enc, done) {
    const parts = (logPartial + chunk.toString()).split('\n');
    logPartial = parts.pop() ?? '';
    for (const line of parts) if (line) logLines.push(line);
    done();
  },
});

const outputChunks: string[] = [];
/** Every answer of the stack's own functions (API and task endpoints): status and body. */
const answers: string[] = [];
let functionOrigins: string[] = [];

// ---------- where secrets are seen ----------

/** Records what a URL carries: a signed download URL's query string and signature, an upload session id. */
function recordUrl(raw: string | undefined): void {
  if (!raw) return;
  let u: URL;
  try {
    u = new URL(raw, 'http://127.0.0.1');
  } catch {
    return;
  }
  if (u.pathname.startsWith('/download/') && u.search) {
    const query = u.search.slice(1);
    // The values that make the URL a credential: when it was signed, for how long, the signature.
    const spans = ['X-Goog-Date', 'X-Goog-Expires', 'X-Goog-Signature'].flatMap((name): Array<[number, number]> => {
      const m = new RegExp(`(?:^|&)${name}=([^&]*)`).exec(query);
      return m?.[1] ? [[m.index + m[0].length - m[1].length, m.index + m[0].length]] : [];
    });
    addSecret('signed URL query string', query, spans);
    addSecret('X-Goog-Signature', u.searchParams.get('X-Goog-Signature'));
  }
  addSecret('upload session id', u.searchParams.get('upload_id'));
}

/** Signed URLs and session URIs inside a JSON answer (getState's signedUrls, among others). */
function recordUrlsInText(text: string): void {
  for (const m of text.matchAll(/https?:\/\/[^"\s\\]+/g)) recordUrl(m[0]);
}

function bearer(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  return h?.startsWith('Bearer ') ? h.slice(7) : undefined;
}

function issuerOf(jwt: string): string | undefined {
  try {
    return (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: string }).iss;
  } catch {
    return undefined;
  }
}

/** Every request any in-process server received (functions, simulators, stand-ins). */
const onRequest = (msg: unknown): void => {
  const req = (msg as { request: http.IncomingMessage }).request;
  recordUrl(req.url);
  const token = bearer(req.headers.authorization);
  if (!token) return;
  // The issuer says what it is; anything else bearer-shaped (garbage sent on purpose) is kept too.
  if (token.startsWith('ya29.')) addSecret('access token', token);
  else addSecret(issuerOf(token)?.startsWith('https://securetoken.google.com/') ? 'user ID token' : 'task OIDC token', token);
};
const onResponse = (msg: unknown): void => {
  const res = (msg as { response: http.ServerResponse }).response;
  const location = res.getHeader('location');
  if (typeof location === 'string') recordUrl(location);
};

const realFetch = globalThis.fetch;
const realStdoutWrite = process.stdout.write.bind(process.stdout);
const realStderrWrite = process.stderr.write.bind(process.stderr);
const consoleMethods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
const realConsole = Object.fromEntries(consoleMethods.map((m) => [m, console[m]])) as Record<(typeof consoleMethods)[number], (...args: unknown[]) => void>;

function captureOutput(): void {
  const wrap = (real: typeof realStdoutWrite) =>
    ((chunk: unknown, ...rest: unknown[]) => {
      outputChunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return (real as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
  process.stdout.write = wrap(realStdoutWrite);
  process.stderr.write = wrap(realStderrWrite);
  for (const m of consoleMethods) {
    console[m] = (...args: unknown[]) => {
      outputChunks.push(format(...args));
      realConsole[m](...args);
    };
  }
}

function releaseOutput(): void {
  process.stdout.write = realStdoutWrite as typeof process.stdout.write;
  process.stderr.write = realStderrWrite as typeof process.stderr.write;
  for (const m of consoleMethods) console[m] = realConsole[m];
}

/**
 * This process's fetch, which the functions (archive copier, Data Portability client) and the
 * tests share: records the URLs it is asked for, the signed URLs in JSON answers, and the answers
 * of the stack's own functions (their error messages must not echo a secret either).
 */
async function recordingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  recordUrl(url);
  const res = await realFetch(input, init);
  if ((res.headers.get('content-type') ?? '').includes('json')) {
    const text = await res.clone().text();
    if (functionOrigins.some((o) => url.startsWith(o))) answers.push(`${res.status} ${text}`);
    else recordUrlsInText(text);
  } else if (functionOrigins.some((o) => url.startsWith(o))) {
    answers.push(`${res.status} ${await res.clone().text()}`);
  }
  return res;
}

let stack: LocalStack;

beforeAll(async () => {
  // Installed before the stack starts: the adapters take `fetch` when they are built.
  globalThis.fetch = recordingFetch as typeof fetch;
  diagnostics.subscribe('http.server.request.start', onRequest);
  diagnostics.subscribe('http.server.response.finish', onResponse);
  captureOutput();
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 300,
    archiveBytes: 120_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'trace',
    logDestination,
  });
  functionOrigins = [stack.apiUrl, ...[stack.config.tasks.checkUrl, stack.config.tasks.copyUrl, stack.config.tasks.sweepUrl, stack.config.tasks.scheduleUrl].map((u) => new URL(u).origin)];
  // Every token the two issuers sign: the users' ID tokens, and the OIDC tokens Cloud Tasks and
  // Cloud Scheduler attach (the Cloud Tasks stand-in signs with this same object for each delivery).
  const idSign = stack.oauth.idIssuer.sign.bind(stack.oauth.idIssuer);
  stack.oauth.idIssuer.sign = async (claims, ttl) => {
    const t = await idSign(claims, ttl);
    addSecret('user ID token', t);
    return t;
  };
  const taskSign = stack.tasksOidcIssuer.sign.bind(stack.tasksOidcIssuer);
  stack.tasksOidcIssuer.sign = async (claims, ttl) => {
    const t = await taskSign(claims, ttl);
    addSecret('task OIDC token', t);
    return t;
  };
  addSecret('OAuth client secret', stack.env.OAUTH_CLIENT_SECRET);
  addSecret('TOKEN_ENCRYPTION_KEY', stack.env.TOKEN_ENCRYPTION_KEY);
});

afterAll(async () => {
  await stack?.stop();
  diagnostics.unsubscribe('http.server.request.start', onRequest);
  diagnostics.unsubscribe('http.server.response.finish', onResponse);
  globalThis.fetch = realFetch;
  releaseOutput();
});

async function start(token: string, body: unknown = {}, headers: Record<string, string> = {}) {
  return api<ExportBody>(stack, token, 'POST', '/v1/exports', body, headers);
}

function logged(message: string): boolean {
  return logLines.some((l) => l.includes(`"message":"${message}"`));
}

describe('a realistic mix through the public API, logged at trace level', () => {
  it('authorizations: good codes, an unknown code, a used code, a token endpoint outage', () =>
    withoutLeaks(['authorization code', 'PKCE code verifier', 'user ID token', 'refresh token'], async () => {
      const idToken = await stack.idToken('hank');
      // An unknown code, shaped like Google's, is handed in: it is a secret too.
      const bogus = `4/0sim-${'Zq9'.repeat(12)}`;
      addSecret('authorization code', bogus);
      const unknown = await api(stack, idToken, 'POST', '/v1/authorizations', { code: bogus, state: (await startConsent(stack, idToken, ['play.installs'])).state });
      expect(unknown.status).toBe(400);

      // The token endpoint fails (500 then 503): the library may retry; either way the answer is JSON, never the code.
      let consent = await consentAtGoogle((await startConsent(stack, idToken, ['play.installs'])).authorizationUrl, 'google-hank');
      stack.oauth.faults.failNextTokenRequests(500, 1);
      stack.oauth.faults.failNextTokenRequests(503, 5);
      const outage = await api(stack, idToken, 'POST', '/v1/authorizations', consent);
      stack.oauth.faults.reset();
      expect([201, 500, 503], JSON.stringify(outage.body)).toContain(outage.status);
      if (outage.status !== 201) {
        // The state was spent on the failed exchange: the user consents again.
        consent = await consentAtGoogle((await startConsent(stack, idToken, ['play.installs'])).authorizationUrl, 'google-hank');
        expect((await api(stack, idToken, 'POST', '/v1/authorizations', consent)).status).toBe(201);
      }
      // The same code and state again: used.
      const reused = await api(stack, idToken, 'POST', '/v1/authorizations', consent);
      expect(reused.status).toBe(400);
      // A code minted under another consent's PKCE challenge.
      const started = await startConsent(stack, idToken, ['play.installs']);
      const other = stack.oauth.consent({ googleUserId: 'google-hank', resources: ['play.installs'], redirectUri: REDIRECT, codeChallenge: pkceChallenge(randomToken()) });
      expect((await api(stack, idToken, 'POST', '/v1/authorizations', { code: other, state: started.state })).status).toBe(400);
    }));

  it('a signed URL that expires in the middle of a copy', () =>
    withoutLeaks(['signed URL query string', 'X-Goog-Signature', 'upload session id', 'task OIDC token', 'access token'], async () => {
      const { token } = await authorizedUser(stack, 'grace', ['chrome.bookmarks']);
      stack.portability.faults.expireNextDownloadAfterBytes(40_000);
      const res = await start(token);
      expect((await waitForExport(stack, token, res.body.exportId)).state).toBe('SUCCEEDED');
      expect(logged('signed URL expired; fetching fresh URLs')).toBe(true);
    }));

  it('multi-URL archives, a FAILED-then-retried job, 429/500/503 from Google, a cancel', () =>
    withoutLeaks(['signed URL query string', 'X-Goog-Signature', 'upload session id', 'task OIDC token', 'access token', 'user ID token'], async () => {
      const [alice, bob, carol, dave] = await Promise.all([
        authorizedUser(stack, 'alice', ['myactivity.search', 'chrome.history']),
        authorizedUser(stack, 'bob', ['youtube.subscriptions']),
        authorizedUser(stack, 'carol', ['youtube.comments', 'play.library']),
        authorizedUser(stack, 'dave', ['maps.reviews']),
      ]);
      stack.portability.faults.urlsPerJob('myactivity.search', 3);
      stack.portability.faults.failNextJobs('youtube.subscriptions', 1, bob.googleUserId);
      stack.portability.faults.jobDuration('maps.reviews', 600_000);
      const runs = await Promise.all([start(alice.token, {}, { 'Idempotency-Key': 'alice-1' }), start(bob.token), start(dave.token)]);
      // Google answers a 429, 500s and a download 503 while those run.
      stack.portability.faults.failNextCalls('initiate', 429, 1, 1);
      stack.portability.faults.failNextCalls('getState', 500, 2);
      stack.portability.faults.failNextCalls('download', 503, 1, 1);
      const carolRun = await start(carol.token);
      expect([...runs, carolRun].map((r) => r.status)).toEqual([202, 202, 202, 202]);

      await waitForExport(stack, dave.token, runs[2].body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
      const cancelled = await api<ExportBody>(stack, dave.token, 'POST', `/v1/exports/${runs[2].body.exportId}:cancel`);
      expect(cancelled.body.state).toBe('CANCELLED');

      const [a, b, c] = await Promise.all([
        waitForExport(stack, alice.token, runs[0].body.exportId),
        waitForExport(stack, bob.token, runs[1].body.exportId),
        waitForExport(stack, carol.token, carolRun.body.exportId),
      ]);
      expect([a.state, b.state, c.state]).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
      expect(a.jobs.find((j) => j.resource === 'myactivity.search')?.archives).toHaveLength(3);
      expect(b.jobs[0]?.attempts).toBe(2);
      const faulted = stack.portability.calls.filter((x) => [429, 500, 503].includes(x.status)).map((x) => `${x.method} ${x.status}`);
      expect(faulted).toEqual(expect.arrayContaining(['initiate 429', 'getState 500', 'download 503']));
      expect(logged('archive job failed at Google; retried')).toBe(true);

      // A malformed task with the invoker's genuine token is dropped (and logged as such).
      const invoker = await stack.tasksOidcIssuer.sign({ aud: stack.config.tasks.checkUrl, email: stack.env.TASKS_SERVICE_ACCOUNT, email_verified: true, sub: '1000' }, 300);
      const malformed = await fetch(stack.config.tasks.checkUrl, { method: 'POST', headers: { Authorization: `Bearer ${invoker}`, 'Content-Type': 'application/json' }, body: '{"jobId":"x"}' });
      expect(malformed.status).toBe(200);
      expect(logged('dropped a malformed task')).toBe(true);

      // Duplicate deliveries of a finished job's steps, and a sweeper tick: more task tokens, more logs.
      const job = a.jobs[0]!;
      for (const step of ['initiate', 'check', 'copy'] as const) expect(await stack.deliverTask({ jobId: job.jobId, step, seq: 0 })).toBe(200);
      await stack.sweep();
    }));

  it('Google failing past the in-place retries: the steps go back to Cloud Tasks', () =>
    withoutLeaks(['task OIDC token', 'access token'], async () => {
      const { token } = await authorizedUser(stack, 'ivy', ['play.grouping']);
      // Alone, so this job's calls take every fault: three 429s throttle the initiate step, three
      // 500s send the check step back to Cloud Tasks.
      stack.portability.faults.failNextCalls('initiate', 429, 3, 1);
      stack.portability.faults.failNextCalls('getState', 500, 3);
      const res = await start(token);
      expect((await waitForExport(stack, token, res.body.exportId)).state).toBe('SUCCEEDED');
      expect(logLines.some((l) => l.includes('"outcome":"throttle"'))).toBe(true);
      expect(logged('task will be retried')).toBe(true);
    }));

  it('bad input, bad ID tokens and callers without the invoker\'s token are answered 4xx', () =>
    withoutLeaks(['user ID token', 'task OIDC token'], async () => {
      const { token } = await authorizedUser(stack, 'erin', ['play.devices']);
      const cases: Array<[string, string, unknown, number]> = [
        ['POST', '/v1/exports', { resources: ['not.a.group'] }, 400],
        ['POST', '/v1/exports', { startTime: 'yesterday' }, 400],
        ['POST', '/v1/exports', '{"resources":', 400],
        ['POST', '/v1/authorizations', { code: token, state: token }, 400],
        ['POST', '/v1/authorizations', { code: 'x' }, 400],
        ['POST', '/v1/authorizations:start', { resources: ['play.devices'], redirectUri: 'not a url' }, 400],
        ['GET', '/v1/exports?pageToken=%24%24', undefined, 400],
        ['GET', '/v1/exports/0123456789abcdef0123', undefined, 404],
        ['DELETE', '/v1/authorizations', undefined, 405],
      ];
      for (const [method, route, body, status] of cases) expect((await api(stack, token, method, route, body)).status, `${method} ${route}`).toBe(status);

      const expired = await stack.oauth.issueIdToken('erin', { ttlSeconds: -60 });
      const wrongAudience = await stack.oauth.issueIdToken('erin', { audience: 'someone-else' });
      const tampered = `${token.slice(0, -6)}AAAAAA`;
      addSecret('user ID token', tampered);
      for (const bad of [expired, wrongAudience, tampered, `${token}x`]) {
        addSecret('user ID token', bad);
        expect((await api(stack, bad, 'GET', '/v1/exports')).status).toBe(401);
      }
      // A user's ID token and a token for another function's URL, at the task endpoints.
      const forCopy = await stack.tasksOidcIssuer.sign({ aud: stack.config.tasks.copyUrl, email: stack.env.TASKS_SERVICE_ACCOUNT, email_verified: true, sub: '1000' }, 300);
      for (const auth of [token, forCopy]) {
        const res = await fetch(stack.config.tasks.checkUrl, {
          method: 'POST',
          headers: { Authorization: `Bearer ${auth}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ jobId: '0123456789abcdef0123', step: 'check', seq: 0 }),
        });
        expect([401, 403]).toContain(res.status);
      }
    }));

  it('a scheduled export on a time-based grant', () =>
    withoutLeaks(['task OIDC token', 'refresh token'], async () => {
      const { token } = await authorizedUser(stack, 'frank', ['myactivity.youtube'], { accessType: 'TIME_BASED' });
      const created = await api<{ scheduleId: string }>(stack, token, 'POST', '/v1/schedules', {});
      expect(created.status).toBe(201);
      const id = created.body.scheduleId;
      const deadline = Date.now() + 20_000;
      for (;;) {
        const s = await api<{ runs?: Array<{ state: string }> }>(stack, token, 'GET', `/v1/schedules/${id}`);
        if (s.body.runs?.[0]?.state === 'SUCCEEDED') break;
        if (Date.now() > deadline) throw new Error(`schedule run not done: ${JSON.stringify(s.body).slice(0, 300)}`);
        await new Promise((r) => setTimeout(r, 150));
      }
      await stack.tickSchedules();
      expect((await api(stack, token, 'DELETE', `/v1/schedules/${id}`)).status).toBe(200);
    }));

  it('deletion of exports and a reset of the authorization', () =>
    withoutLeaks(['user ID token'], async () => {
      // Its own users: one with a finished export, one with an export cancelled at Google.
      const [olga, pete] = await Promise.all([authorizedUser(stack, 'olga', ['play.installs']), authorizedUser(stack, 'pete', ['saved.collections'])]);
      stack.portability.faults.jobDuration('saved.collections', 600_000);
      const [done, long] = await Promise.all([start(olga.token), start(pete.token)]);
      await waitForExport(stack, olga.token, done.body.exportId);
      await waitForExport(stack, pete.token, long.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
      expect((await api(stack, pete.token, 'POST', `/v1/exports/${long.body.exportId}:cancel`)).status).toBe(200);
      for (const [token, user] of [[olga.token, 'olga'], [pete.token, 'pete']] as const) {
        const list = await api<{ exports: ExportBody[] }>(stack, token, 'GET', '/v1/exports');
        expect(list.body.exports.length, user).toBeGreaterThan(0);
        for (const e of list.body.exports) expect((await api(stack, token, 'DELETE', `/v1/exports/${e.exportId}`)).status).toBe(204);
        expect((await api(stack, token, 'POST', '/v1/authorizations:reset')).status).toBe(200);
      }
      expect(logged('export deleted')).toBe(true);
      expect(logged('authorization reset')).toBe(true);
      // After the reset, an export is refused (409), and a new consent's code works again.
      expect((await start(olga.token, {})).status).toBe(409);
    }));
});

describe('the capture itself', () => {
  it('sees this process\'s stdout and the functions\' log lines', async () => {
    const summary = `secrets-in-logs: capture check ${Date.now()}\n`;
    process.stdout.write(summary);
    expect(outputChunks).toContain(summary);
    const lines = logLines.length;
    // A malformed task with the invoker's genuine token is dropped, and logged as such.
    const invoker = await stack.tasksOidcIssuer.sign({ aud: stack.config.tasks.checkUrl, email: stack.env.TASKS_SERVICE_ACCOUNT, email_verified: true, sub: '1000' }, 300);
    const malformed = await fetch(stack.config.tasks.checkUrl, { method: 'POST', headers: { Authorization: `Bearer ${invoker}`, 'Content-Type': 'application/json' }, body: '{"jobId":"x"}' });
    expect(malformed.status).toBe(200);
    await expect.poll(() => logLines.slice(lines).some((l) => l.includes('"message":"dropped a malformed task"'))).toBe(true);
    // The functions' lines are JSON with a severity.
    for (const l of logLines.slice(lines)) expect(JSON.parse(l)).toHaveProperty('severity');
    expect(counted('OAuth client secret')).toBe(1);
    expect(counted('TOKEN_ENCRYPTION_KEY')).toBe(1);
  });
});

/** Secrets of a kind collected so far. */
function counted(kind: SecretKind): number {
  return secrets.get(kind)?.size ?? 0;
}

/**
 * Runs one scenario's traffic, then searches what was captured during it: no leak, and the
 * scenario really handled secrets of the kinds it names (new ones, collected during it).
 */
async function withoutLeaks(kinds: readonly SecretKind[], traffic: () => Promise<void>): Promise<void> {
  const from = { log: logLines.length, output: outputChunks.length, answers: answers.length, counts: secretCounts() };
  await traffic();
  // Google's side minted these; the simulator keeps them.
  for (const g of stack.accounts.grants.values()) addSecret('refresh token', g.refreshToken);
  for (const t of stack.accounts.accessTokens.keys()) addSecret('access token', t);
  for (const [c, entry] of stack.accounts.codes) {
    addSecret('authorization code', c);
    addSecret('PKCE code verifier', entry.codeVerifier);
  }
  // Let deliveries still in flight finish and log (a deleted schedule may keep a task a day ahead).
  await Promise.race([stack.tasks.idle().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000))]);
  const now = secretCounts();
  for (const kind of kinds) expect(now[kind] ?? 0, `new ${kind}s in this scenario`).toBeGreaterThan(from.counts[kind] ?? 0);
  const leaks = findLeaks([
    ...logLines.slice(from.log).map((l, i): [string, string] => [`log line ${from.log + i + 1}`, l]),
    ['log tail', logPartial],
    ...outputChunks.slice(from.output).map((c, i): [string, string] => [`stdout/stderr chunk ${from.output + i + 1}`, c]),
    ...answers.slice(from.answers).map((a, i): [string, string] => [`API answer ${from.answers + i + 1}`, a]),
  ]);
  expect(leaks).toEqual([]);
  // The search itself finds each kind handled here, whole or cut, inside a log-shaped line.
  for (const kind of kinds) {
    const [v, spans] = [...(secrets.get(kind) ?? new Map<string, Array<[number, number]> | undefined>())].at(-1) as [string, Array<[number, number]> | undefined];
    const mid = spans ? Math.floor(((spans.at(-1) as [number, number])[0] + v.length) / 2) : Math.floor(v.length / 2);
    const cut = v.slice(mid - WINDOW / 2, mid + WINDOW / 2);
    expect(findLeaks([['canary', JSON.stringify({ severity: 'INFO', detail: v })]]), kind).toHaveLength(1);
    expect(findLeaks([['canary', `{"message":"x${cut}y"}`]]), kind).toHaveLength(1);
  }
}

/** Every place (name, text) holding any WINDOW consecutive characters of a collected secret. */
function findLeaks(texts: Array<[string, string]>): string[] {
  const windows = new Map<string, SecretKind>();
  for (const [kind, values] of secrets) {
    for (const [v, spans] of values) {
      for (let i = 0; i + WINDOW <= v.length; i++) {
        if (!spans || spans.some(([a, b]) => i < b && i + WINDOW > a)) windows.set(v.slice(i, i + WINDOW), kind);
      }
    }
  }
  const leaks: string[] = [];
  for (const [where, text] of texts) {
    for (let i = 0; i + WINDOW <= text.length; i++) {
      const kind = windows.get(text.slice(i, i + WINDOW));
      if (kind) {
        // Shows what precedes the secret, never the secret.
        leaks.push(`${where} holds part of the ${kind}, after: ${text.slice(Math.max(0, i - 160), i)}`);
        break;
      }
    }
  }
  return leaks;
}
