/**
 * The export service's use cases on the real Firestore emulator (export and consent-state stores)
 * with a controllable clock. Google's side (token endpoint, Data Portability API) is simulated by
 * recording stubs of its ports, so each answer Google may give (a bad code, an outage with
 * Retry-After, a revoked grant) is set per test and every call it was sent is checked.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreConsentStateStore } from '../../functions/src/adapters/firestore-consent-state-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { pkceChallenge } from '../../functions/src/domain/consent-url';
import { AuthorizationCodeError, ConsentRevokedError, PortabilityApiError, RequestError, UnavailableError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Grant, Job } from '../../functions/src/domain/model';
import type { ExchangedTokens } from '../../functions/src/domain/ports/google-oauth';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import { SCOPE_PREFIX } from '../../functions/src/domain/resource-groups';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens, quotaUserOf } from '../../functions/src/pipeline/access-tokens';
import { ConsentFlow } from '../../functions/src/pipeline/consent-flow';
import { ExportService, type ExportServiceDeps } from '../../functions/src/pipeline/export-service';
import { toExportView, toJobView } from '../../functions/src/pipeline/export-views';
import { refusalOf, rejectionOf } from '../support/rejections';

/** What a caller gets: the answer as JSON encodes it (fields left undefined are not sent). */
const wire = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const REDIRECT = 'http://localhost:5173/oauth/callback';
const T0 = Date.UTC(2100, 0, 1);
const HOUR = 3_600_000;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
let store: FirestoreExportStore;
let consentStore: FirestoreConsentStateStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  const db = createFirestore({ projectId: 'demo-export-service' });
  store = new FirestoreExportStore(db);
  consentStore = new FirestoreConsentStateStore(db);
});

const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;
const scopes = (...groups: string[]): string => ['openid', ...groups.map((g) => SCOPE_PREFIX + g)].join(' ');

type Call = [method: string, ...args: unknown[]];

/** The service with recording stubs of Google; `google` and `exchange` say what Google answers. */
function world(over: Partial<ExportServiceDeps> = {}) {
  const clock = { t: T0 };
  const calls: Call[] = [];
  const tasks: PipelineTask[] = [];
  const deleted: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const google: { [K in keyof PortabilityApi]?: (...args: unknown[]) => Promise<unknown> } = {};
  const answer = (method: keyof PortabilityApi, fallback: unknown) =>
    async (...args: unknown[]) => {
      calls.push([method, ...args]);
      const behave = google[method];
      return behave ? behave(...args) : fallback;
    };
  const api = {
    initiate: answer('initiate', undefined),
    getState: answer('getState', undefined),
    retry: answer('retry', undefined),
    cancel: answer('cancel', undefined),
    resetAuthorization: answer('resetAuthorization', undefined),
    checkAccessType: answer('checkAccessType', { oneTimeResources: ['chrome.history'], timeBasedResources: ['myactivity.search'] }),
  } as unknown as PortabilityApi;
  const exchange: { next: () => Promise<ExchangedTokens> } = {
    next: async () => ({ accessToken: 'ya29.exchanged', refreshToken: '1//refresh', expiresAt: clock.t + HOUR, scope: scopes('myactivity.search', 'chrome.history') }),
  };
  const refreshes = { count: 0, fail: undefined as Error | undefined };
  const oauth = {
    exchangeCode: async (code: string, redirectUri: string, verifier: string) => {
      calls.push(['exchangeCode', code, redirectUri, verifier]);
      return exchange.next();
    },
    refresh: async () => {
      refreshes.count++;
      if (refreshes.fail) throw refreshes.fail;
      return { accessToken: 'ya29.refreshed', expiresAt: clock.t + HOUR };
    },
  };
  const tokens = new AccessTokens(store, async () => cipher, async () => oauth, () => clock.t);
  const consent = new ConsentFlow({ store: consentStore, cipher: async () => cipher, authUrl: 'https://accounts.google.test/auth', clientId: 'cid', redirectUris: [REDIRECT], stateTtlSeconds: 600, now: () => clock.t });
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => (logs.push(JSON.parse(line) as Record<string, unknown>), true) } });
  const svc = new ExportService({
    consent,
    store,
    api: async () => api,
    oauth: async () => oauth,
    tokens,
    cipher: async () => cipher,
    queue: async () => ({ enqueue: async (t: PipelineTask) => void tasks.push(t) }),
    logger,
    archives: async () => ({ deletePrefix: async (prefix: string) => (deleted.push(prefix), 1) }),
    policy: { initialSeconds: 300, maxSeconds: 3600 },
    now: () => clock.t,
    ...over,
  });
  const said = (message: string) => logs.filter((l) => l.message === message);
  return { svc, clock, calls, tasks, deleted, logs, said, google, exchange, refreshes, tokens, consent };
}

async function grantFor(userId: string, over: Partial<Grant> = {}): Promise<void> {
  await store.putGrant({
    userId,
    refreshToken: await cipher.encrypt('1//stored', userId),
    resources: ['chrome.history', 'myactivity.search', 'youtube.subscriptions'],
    oneTimeResources: [],
    timeBasedResources: [],
    state: 'ACTIVE',
    createdAt: T0,
    updatedAt: T0,
    ...over,
  });
}


/** Starts a consent for the user and sends a code back under its state, as the frontend does. */
async function authorizeOnce(w: ReturnType<typeof world>, userId: string): Promise<unknown> {
  const { state } = await w.svc.startAuthorization(userId, { resources: ['myactivity.search'], redirectUri: REDIRECT });
  return w.svc.authorize(userId, 'code', state);
}

/** A user with a grant and a running export of these groups. */
async function runningExport(resources: string[], over: Partial<ExportServiceDeps> = {}) {
  const w = world(over);
  const userId = newUser();
  await grantFor(userId);
  const { view } = await w.svc.startExport(userId, { resources });
  return { w, userId, view };
}

/** Moves a job to another state directly in the store (as the runner would have). */
async function setJob(jobId: string, change: (j: Job) => Job): Promise<void> {
  expect(await store.updateJob(jobId, change)).toBeDefined();
}

describe('authorize', () => {
  it('exchanges the code with the consent\'s redirect URI and PKCE verifier, stores the encrypted grant and remembers the access token', async () => {
    const w = world();
    const userId = newUser();
    const started = await w.svc.startAuthorization(userId, { resources: ['myactivity.search', 'chrome.history'], redirectUri: REDIRECT });
    w.exchange.next = async () => ({ accessToken: 'ya29.first', refreshToken: '1//r1', expiresAt: T0 + HOUR, scope: scopes('myactivity.search', 'chrome.history'), refreshTokenExpiresAt: T0 + 30 * 24 * HOUR });
    const result = await w.svc.authorize(userId, 'code-1', started.state);
    expect(result).toEqual({ resources: ['myactivity.search', 'chrome.history'], oneTimeResources: ['chrome.history'], timeBasedResources: ['myactivity.search'] });
    const [exchange, check] = w.calls;
    expect(exchange?.slice(0, 3)).toEqual(['exchangeCode', 'code-1', REDIRECT]);
    const challenge = new URL(started.authorizationUrl).searchParams.get('code_challenge');
    expect(pkceChallenge(String(exchange?.[3]))).toBe(challenge);
    expect(check).toEqual(['checkAccessType', 'ya29.first', quotaUserOf(userId)]);
    const grant = await store.getGrant(userId);
    expect(grant).toMatchObject({
      userId,
      resources: ['myactivity.search', 'chrome.history'],
      oneTimeResources: ['chrome.history'],
      timeBasedResources: ['myactivity.search'],
      state: 'ACTIVE',
      expiresAt: T0 + 30 * 24 * HOUR,
      createdAt: T0,
      updatedAt: T0,
    });
    expect(JSON.stringify(grant)).not.toContain('1//r1');
    expect(await cipher.decrypt(grant!.refreshToken, userId)).toBe('1//r1');
    // The exchanged access token is used without a refresh.
    expect(await w.tokens.forUser(userId)).toBe('ya29.first');
    expect(w.refreshes.count).toBe(0);
    expect(w.said('authorization stored')).toMatchObject([{ userId, resources: 2, timeBased: 1 }]);
  });

  it('a second consent keeps the grant\'s creation time and, without refresh_token_expires_in, stores no end', async () => {
    const w = world();
    const userId = newUser();
    await grantFor(userId, { expiresAt: T0 + HOUR, createdAt: T0 - 5 * HOUR });
    w.clock.t = T0 + 2 * HOUR;
    const { state } = await w.svc.startAuthorization(userId, { resources: ['myactivity.search'], redirectUri: REDIRECT });
    await w.svc.authorize(userId, 'code-2', state);
    const grant = await store.getGrant(userId);
    expect(grant).toMatchObject({ createdAt: T0 - 5 * HOUR, updatedAt: T0 + 2 * HOUR, state: 'ACTIVE' });
    expect(grant).not.toHaveProperty('expiresAt');
  });

  it('answers a code Google refuses with 400 INVALID_AUTHORIZATION_CODE, an outage with 503, and passes anything else on; nothing is stored', async () => {
    const w = world();
    const userId = newUser();
    const attempt = async (err: Error) => {
      w.exchange.next = async () => Promise.reject(err);
      return rejectionOf(authorizeOnce(w, userId));
    };
    for (const err of [new AuthorizationCodeError('invalid_grant: Bad Request'), new ConsentRevokedError('revoked')]) {
      const e = await attempt(err);
      expect(e).toBeInstanceOf(RequestError);
      expect(e).toMatchObject({ status: 400, code: 'INVALID_AUTHORIZATION_CODE', field: 'code', message: `Google did not accept the authorization code: ${err.message}` });
    }
    const outage = Object.assign(new Error('token endpoint 503'), { transient: true });
    expect(await attempt(outage)).toMatchObject({ name: 'UnavailableError', message: 'Google\'s token endpoint is unavailable; start the consent again' });
    const odd = new Error('unexpected');
    expect(await attempt(odd)).toBe(odd);
    expect(await store.getGrant(userId)).toBeUndefined();
    expect(w.calls.filter(([m]) => m === 'checkAccessType')).toEqual([]);
  });

  it('refuses tokens without a refresh token or without a dataportability scope, before asking Google anything else', async () => {
    const w = world();
    const userId = newUser();
    const attempt = async (tokens: ExchangedTokens) => {
      w.exchange.next = async () => tokens;
      return refusalOf(authorizeOnce(w, userId));
    };
    expect(await attempt({ accessToken: 'a', expiresAt: T0 + HOUR, scope: scopes('myactivity.search') })).toMatchObject({
      status: 400,
      code: 'NO_REFRESH_TOKEN',
      field: 'code',
      message: 'Google returned no refresh token: request the code with access_type=offline and prompt=consent, then send the new code',
    });
    expect(await attempt({ accessToken: 'a', refreshToken: 'r', expiresAt: T0 + HOUR, scope: 'openid email' })).toMatchObject({
      status: 400,
      code: 'NO_DATAPORTABILITY_SCOPES',
      field: 'code',
      message: 'The user granted none of the dataportability.* scopes',
    });
    expect(w.calls.filter(([m]) => m === 'checkAccessType')).toEqual([]);
    expect(await store.getGrant(userId)).toBeUndefined();
  });

  it('maps a failing checkAccessType: an outage to 503 with its Retry-After (30 s without one), a rejected token to 403 NEEDS_CONSENT, the rest as it is', async () => {
    const w = world();
    const userId = newUser();
    const attempt = async (thrown: unknown) => {
      w.google.checkAccessType = async () => Promise.reject(thrown);
      return rejectionOf(authorizeOnce(w, userId));
    };
    const slow = await attempt(new PortabilityApiError(503, 'UNAVAILABLE', 'busy', undefined, {}, 7));
    expect(slow).toBeInstanceOf(UnavailableError);
    expect(slow).toMatchObject({ retryAfterSeconds: 7, message: 'The Data Portability API is unavailable; try again' });
    expect(await attempt(new PortabilityApiError(503, 'UNAVAILABLE', 'busy'))).toMatchObject({ retryAfterSeconds: 30 });
    const rejected = await attempt(new PortabilityApiError(401, 'UNAUTHENTICATED', 'bad token'));
    expect(rejected).toBeInstanceOf(RequestError);
    expect(rejected).toMatchObject({ status: 403, code: 'NEEDS_CONSENT', message: 'Google rejected the authorization: the user must consent again' });
    const invalid = new PortabilityApiError(400, 'INVALID_ARGUMENT', 'bad request');
    expect(await attempt(invalid)).toBe(invalid);
    const odd = await attempt('a string');
    expect(odd).toBeInstanceOf(Error);
    expect((odd as Error).message).toBe('a string');
    expect(await store.getGrant(userId)).toBeUndefined();
  });
});

describe('startExport', () => {
  it('refuses without an active grant, for groups not granted, for none, and for a bad window, writing nothing', async () => {
    const w = world();
    const userId = newUser();
    expect(await refusalOf(w.svc.startExport(userId, {}))).toMatchObject({ status: 409, code: 'NO_AUTHORIZATION', message: 'No Google authorization is stored for this user: POST /v1/authorizations first' });
    await grantFor(userId, { state: 'NEEDS_CONSENT' });
    expect(await refusalOf(w.svc.startExport(userId, {}))).toMatchObject({ status: 409, code: 'NEEDS_CONSENT', message: 'The Google authorization expired or was revoked: the user must consent again' });
    await grantFor(userId);
    expect(await refusalOf(w.svc.startExport(userId, { resources: ['saved.collections', 'chrome.history', 'play.store'] }))).toMatchObject({
      status: 400,
      field: 'resources',
      message: 'Not granted by the user: play.store, saved.collections',
    });
    expect(await refusalOf(w.svc.startExport(userId, { resources: [] }))).toMatchObject({ status: 400, field: 'resources', message: 'At least one resource group is required' });
    expect(await refusalOf(w.svc.startExport(userId, { endTime: new Date(T0 + HOUR).toISOString() }))).toMatchObject({
      status: 400,
      code: 'INVALID_ARGUMENT',
      field: 'endTime',
    });
    expect((await store.listExports(userId, { limit: 10 })).exports).toEqual([]);
    expect(w.tasks).toEqual([]);
  });

  it('creates one INITIATING job per granted group (sorted, once each) and enqueues each one\'s initiate', async () => {
    const w = world();
    const userId = newUser();
    await grantFor(userId, { resources: ['youtube.subscriptions', 'chrome.history'] });
    const { view, created } = await w.svc.startExport(userId, {});
    expect(created).toBe(true);
    expect(view).toMatchObject({ state: 'RUNNING', resources: ['chrome.history', 'youtube.subscriptions'], createdAt: new Date(T0).toISOString(), updatedAt: new Date(T0).toISOString() });
    expect(wire(view)).not.toHaveProperty('startTime');
    expect(view.jobs.map((j) => [j.resource, j.state, j.attempts])).toEqual([
      ['chrome.history', 'INITIATING', 0],
      ['youtube.subscriptions', 'INITIATING', 0],
    ]);
    expect(w.tasks).toEqual(view.jobs.map((j) => ({ step: 'initiate', jobId: j.jobId, seq: 0, delaySeconds: 0 })));
    expect(w.said('export started')).toMatchObject([{ userId, exportId: view.exportId, resources: ['chrome.history', 'youtube.subscriptions'] }]);

    const other = newUser();
    await grantFor(other);
    const startTime = new Date(T0 - 48 * HOUR).toISOString();
    const endTime = new Date(T0 - HOUR).toISOString();
    const windowed = await w.svc.startExport(other, { resources: ['myactivity.search', 'chrome.history', 'myactivity.search'], startTime, endTime });
    expect(windowed.view).toMatchObject({ resources: ['chrome.history', 'myactivity.search'], startTime, endTime });
    expect(await store.getExport(windowed.view.exportId)).toMatchObject({ startTime, endTime });
    for (const job of await store.listJobs(windowed.view.exportId)) expect(job).toMatchObject({ startTime, endTime, userId: other });
  });

  it('replays the same request under the same Idempotency-Key (enqueueing its initiates again) and refuses a different one', async () => {
    const w = world();
    const userId = newUser();
    await grantFor(userId);
    const first = await w.svc.startExport(userId, { resources: ['chrome.history'] }, 'key-1');
    w.clock.t += 1000;
    const again = await w.svc.startExport(userId, { resources: ['chrome.history'] }, 'key-1');
    expect(again.created).toBe(false);
    expect(again.view.exportId).toBe(first.view.exportId);
    expect(again.view.jobs.map((j) => j.jobId)).toEqual(first.view.jobs.map((j) => j.jobId));
    const jobId = first.view.jobs[0]!.jobId;
    expect(w.tasks).toEqual([1, 2].map(() => ({ step: 'initiate', jobId, seq: 0, delaySeconds: 0 })));
    expect(w.said('export started')).toHaveLength(1);
    expect(await refusalOf(w.svc.startExport(userId, { resources: ['chrome.history'], endTime: new Date(T0 - HOUR).toISOString() }, 'key-1'))).toMatchObject({
      status: 409,
      code: 'IDEMPOTENCY_KEY_REUSED',
      message: 'This Idempotency-Key was used for a different request',
    });
    expect(await refusalOf(w.svc.startExport(userId, { resources: ['myactivity.search'] }, 'key-1'))).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('applies the per-user limits it is given, and none when it is given none', async () => {
    const limited = world({ limits: { exportsPerDay: 1, concurrentExports: 5 } });
    const userId = newUser();
    await grantFor(userId);
    await limited.svc.startExport(userId, { resources: ['chrome.history'] });
    expect(await refusalOf(limited.svc.startExport(userId, { resources: ['myactivity.search'] }))).toMatchObject({ status: 429 });
    const free = world();
    const other = newUser();
    await grantFor(other);
    await free.svc.startExport(other, { resources: ['chrome.history'] });
    expect((await free.svc.startExport(other, { resources: ['myactivity.search'] })).created).toBe(true);
  });
});

describe('reading exports', () => {
  it('answers a malformed, missing or another user\'s export id with the same 404', async () => {
    const w = world();
    const owner = newUser();
    await grantFor(owner);
    const { view } = await w.svc.startExport(owner, { resources: ['chrome.history'] });
    expect((await w.svc.getExport(owner, view.exportId)).exportId).toBe(view.exportId);
    for (const [user, id] of [
      [newUser(), view.exportId],
      [owner, 'not-an-id'],
      [owner, `${view.exportId}/jobs/x`],
      [owner, randomBytes(10).toString('hex')],
    ] as const) {
      expect(await refusalOf(w.svc.getExport(user, id))).toMatchObject({ status: 404, code: 'NOT_FOUND', message: 'Export not found' });
      expect(await refusalOf(w.svc.cancelExport(user, id))).toMatchObject({ status: 404 });
    }
  });

  it('lists a user\'s exports newest first, a page at a time, with their jobs; the last page has no token', async () => {
    const w = world();
    const userId = newUser();
    await grantFor(userId);
    const ids: string[] = [];
    for (const resource of ['chrome.history', 'myactivity.search', 'youtube.subscriptions']) {
      ids.push((await w.svc.startExport(userId, { resources: [resource] })).view.exportId);
      w.clock.t += 1000;
    }
    const first = await w.svc.listExports(userId, { limit: 2 });
    expect(first.exports.map((e) => e.exportId)).toEqual([ids[2], ids[1]]);
    expect(first.exports.map((e) => e.jobs.map((j) => j.resource))).toEqual([['youtube.subscriptions'], ['myactivity.search']]);
    const last = await w.svc.listExports(userId, { limit: 2, pageToken: first.nextPageToken! });
    expect(last.exports.map((e) => e.exportId)).toEqual([ids[0]]);
    expect(wire(last)).not.toHaveProperty('nextPageToken');
  });
});

describe('cancelExport', () => {
  it('refuses an export that already ended', async () => {
    const { w, userId, view } = await runningExport(['chrome.history']);
    await setJob(view.jobs[0]!.jobId, (j) => ({ ...j, state: 'FAILED', seq: j.seq + 1, finishedAt: T0 }));
    expect(await refusalOf(w.svc.cancelExport(userId, view.exportId))).toMatchObject({ status: 409, code: 'EXPORT_FINISHED', message: 'The export already ended as FAILED' });
  });

  it('cancels an initiating job, cancels a waiting one at Google first, leaves a copying one; a cancelled export can be cancelled again', async () => {
    const { w, userId, view } = await runningExport(['chrome.history', 'myactivity.search', 'youtube.subscriptions']);
    const [initiating, waiting, copying] = view.jobs.map((j) => j.jobId) as [string, string, string];
    await setJob(waiting, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g-wait', archiveJobIds: ['g-wait'] }));
    await setJob(copying, (j) => ({ ...j, state: 'COPYING', seq: 2, archiveJobId: 'g-copy', archiveJobIds: ['g-copy'] }));
    w.clock.t += 5000;
    const after = await w.svc.cancelExport(userId, view.exportId);
    expect(after.jobs.map((j) => [j.resource, j.state])).toEqual([
      ['chrome.history', 'CANCELLED'],
      ['myactivity.search', 'CANCELLED'],
      ['youtube.subscriptions', 'COPYING'],
    ]);
    expect(w.calls).toEqual([['cancel', 'ya29.refreshed', 'g-wait', quotaUserOf(userId)]]);
    expect((await store.getJob(initiating))?.finishedAt).toBe(T0 + 5000);
    expect(w.tasks.filter((t) => t.step !== 'initiate')).toEqual([]);
    expect(after.state).toBe('RUNNING');
    // An export whose jobs were all cancelled is CANCELLED, and a second cancel answers its view.
    await grantFor(userId, { resources: ['saved.collections'] });
    const other = (await w.svc.startExport(userId, { resources: ['saved.collections'] })).view;
    expect((await w.svc.cancelExport(userId, other.exportId)).state).toBe('CANCELLED');
    expect((await w.svc.cancelExport(userId, other.exportId)).state).toBe('CANCELLED');
    expect(w.calls).toHaveLength(1);
  });

  it('answers 503 with Google\'s Retry-After when Google does not answer the cancel, leaving the job waiting', async () => {
    const { w, userId, view } = await runningExport(['chrome.history']);
    const jobId = view.jobs[0]!.jobId;
    await setJob(jobId, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    w.google.cancel = async () => Promise.reject(new PortabilityApiError(503, 'UNAVAILABLE', 'busy', undefined, {}, 12));
    const err = await rejectionOf(w.svc.cancelExport(userId, view.exportId));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ retryAfterSeconds: 12, message: 'Google did not answer the cancellation; try again' });
    w.google.cancel = async () => Promise.reject(new PortabilityApiError(503, 'UNAVAILABLE', 'busy'));
    expect(await rejectionOf(w.svc.cancelExport(userId, view.exportId))).toMatchObject({ retryAfterSeconds: 30 });
    expect((await store.getJob(jobId))?.state).toBe('WAITING');
  });

  it('cancels the job when Google\'s job cannot be cancelled any more, or the grant is gone', async () => {
    const { w, userId, view } = await runningExport(['chrome.history', 'myactivity.search']);
    const [ended, revoked] = view.jobs.map((j) => j.jobId) as [string, string];
    await setJob(ended, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g-ended', archiveJobIds: ['g-ended'] }));
    await setJob(revoked, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g-revoked', archiveJobIds: ['g-revoked'] }));
    // The first cancel finds Google's job already ended; meanwhile the grant is revoked, so the
    // second job's token refresh fails.
    w.google.cancel = async () => {
      w.refreshes.fail = new ConsentRevokedError();
      w.tokens.forget(userId);
      throw new PortabilityApiError(400, 'INVALID_ARGUMENT', 'job is not running');
    };
    const after = await w.svc.cancelExport(userId, view.exportId);
    expect(after.jobs.map((j) => j.state)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(w.calls.filter(([m]) => m === 'cancel')).toHaveLength(1);
    expect(w.said('archive job not cancellable at Google').map((l) => [l.jobId, l.reason])).toEqual([
      [ended, 'invalid'],
      [revoked, 'consent-revoked'],
    ]);
  });

  it('does not call Google while a call that starts a Google job is in flight: the job is marked and keeps its seq', async () => {
    const { w, userId, view } = await runningExport(['chrome.history', 'myactivity.search']);
    const [leased, lapsed] = view.jobs.map((j) => j.jobId) as [string, string];
    await setJob(leased, (j) => ({ ...j, state: 'WAITING', seq: 3, archiveJobId: 'g1', archiveJobIds: ['g1'], lease: { until: T0 + 60_000 } }));
    await setJob(lapsed, (j) => ({ ...j, state: 'WAITING', seq: 3, archiveJobId: 'g2', archiveJobIds: ['g2'], lease: { until: T0 } }));
    await w.svc.cancelExport(userId, view.exportId);
    expect(w.calls.map(([m, , id]) => [m, id])).toEqual([['cancel', 'g2']]);
    expect(await store.getJob(leased)).toMatchObject({ state: 'WAITING', seq: 3, cancelRequested: T0 });
    expect((await store.getJob(lapsed))?.state).toBe('CANCELLED');
  });

  it('when Google\'s job is replaced (a retry) during the cancel, flags the job and enqueues a check at its new seq', async () => {
    const { w, userId, view } = await runningExport(['chrome.history']);
    const jobId = view.jobs[0]!.jobId;
    await setJob(jobId, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    w.google.cancel = async () => setJob(jobId, (j) => ({ ...j, seq: 2, archiveJobId: 'g2', archiveJobIds: ['g1', 'g2'] }));
    await w.svc.cancelExport(userId, view.exportId);
    expect(await store.getJob(jobId)).toMatchObject({ state: 'WAITING', seq: 3, cancelRequested: T0 });
    expect(w.tasks.filter((t) => t.step === 'check')).toEqual([{ step: 'check', jobId, seq: 3, delaySeconds: 0 }]);
  });
});

describe('resetAuthorization', () => {
  it('refuses a user with no grant', async () => {
    expect(await refusalOf(world().svc.resetAuthorization(newUser()))).toMatchObject({ status: 404, message: 'Authorization not found' });
  });

  it('resets at Google, fails the live jobs CONSENT_REVOKED, removes what copies wrote, and forgets the grant, the consents and the token', async () => {
    const { w, userId, view } = await runningExport(['chrome.history', 'myactivity.search', 'youtube.subscriptions']);
    const [initiating, copying, done] = view.jobs.map((j) => j.jobId) as [string, string, string];
    await setJob(copying, (j) => ({ ...j, state: 'COPYING', seq: 2, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    await setJob(done, (j) => ({ ...j, state: 'SUCCEEDED', seq: 4, finishedAt: T0 }));
    const pending = await w.svc.startAuthorization(userId, { resources: ['chrome.history'], redirectUri: REDIRECT });
    w.tokens.remember(userId, 'ya29.cached', T0 + HOUR);
    w.clock.t += 1000;
    expect(await w.svc.resetAuthorization(userId)).toEqual({ reset: true });
    expect(w.calls).toEqual([['resetAuthorization', 'ya29.cached', quotaUserOf(userId)]]);
    for (const id of [initiating, copying]) expect(await store.getJob(id)).toMatchObject({ state: 'FAILED', error: { code: 'CONSENT_REVOKED' }, finishedAt: T0 + 1000 });
    expect((await store.getJob(done))?.state).toBe('SUCCEEDED');
    expect(w.deleted).toEqual([`${userId}/${view.exportId}/myactivity.search/`]);
    expect(await store.getGrant(userId)).toBeUndefined();
    expect(await refusalOf(w.consent.claim(userId, pending.state))).toMatchObject({ code: 'INVALID_STATE' });
    await expect(w.tokens.forUser(userId)).rejects.toThrow('No Google authorization is stored for this user');
    expect(w.said('authorization reset')).toMatchObject([{ userId, jobsEnded: 2 }]);
  });

  it('goes on when Google already dropped the grant, and keeps everything when Google is unavailable or refuses otherwise', async () => {
    const dropped = async (w: ReturnType<typeof world>, userId: string) => {
      await grantFor(userId);
      await w.svc.resetAuthorization(userId);
      expect(await store.getGrant(userId)).toBeUndefined();
    };
    const revokedAtRefresh = world();
    revokedAtRefresh.refreshes.fail = new ConsentRevokedError();
    await dropped(revokedAtRefresh, newUser());
    expect(revokedAtRefresh.calls).toEqual([]);
    const unauthenticated = world();
    unauthenticated.google.resetAuthorization = async () => Promise.reject(new PortabilityApiError(401, 'UNAUTHENTICATED', 'expired'));
    await dropped(unauthenticated, newUser());

    for (const [thrown, expected] of [
      [new PortabilityApiError(503, 'UNAVAILABLE', 'busy', undefined, {}, 9), { retryAfterSeconds: 9 }],
      [new PortabilityApiError(400, 'INVALID_ARGUMENT', 'bad request'), { message: 'bad request' }],
    ] as const) {
      const w = world();
      const userId = newUser();
      await grantFor(userId);
      const { view } = await w.svc.startExport(userId, { resources: ['chrome.history'] });
      w.google.resetAuthorization = async () => Promise.reject(thrown);
      expect(await rejectionOf(w.svc.resetAuthorization(userId))).toMatchObject(expected);
      expect((await store.getGrant(userId))?.state).toBe('ACTIVE');
      expect((await store.getJob(view.jobs[0]!.jobId))?.state).toBe('INITIATING');
    }
  });

  it('without an archive bucket, ends a copying job all the same', async () => {
    const { w, userId, view } = await runningExport(['chrome.history'], { archives: undefined });
    await setJob(view.jobs[0]!.jobId, (j) => ({ ...j, state: 'COPYING', seq: 2, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    await w.svc.resetAuthorization(userId);
    expect((await store.getJob(view.jobs[0]!.jobId))?.state).toBe('FAILED');
  });
});

describe('the views', () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  const job = (over: Partial<Job>): Job => ({ ...newJob({ id: 'j1', exportId: 'e1', userId: 'u', resource: 'chrome.history' }, T0), ...over });
  const archive = { bucket: 'b', name: 'u/e1/chrome.history/archive-1-of-1.zip', size: 3, crc32c: 'AAAAAA==' };

  it('show a job\'s fields only where they mean something: bytes while copying, archives once succeeded', () => {
    expect(toJobView(job({ archiveJobIds: ['g1', 'g2'], updatedAt: T0 + 5 }))).toEqual({
      jobId: 'j1',
      resource: 'chrome.history',
      state: 'INITIATING',
      attempts: 2,
      createdAt: iso(T0),
      updatedAt: iso(T0 + 5),
    });
    expect(toJobView(job({ state: 'COPYING', bytesCopied: 7, bytesTotal: 70, exportTime: '2100-01-01T00:00:00Z', window: 'incremental' }))).toMatchObject({ bytesCopied: 7, bytesTotal: 70, exportTime: '2100-01-01T00:00:00Z', window: 'incremental' });
    const done = toJobView(job({ state: 'SUCCEEDED', bytesCopied: 3, archives: [archive], finishedAt: T0 + 9 }));
    // Each archive says when the bucket's retention deletes it: ARCHIVE_RETENTION_DAYS after the job finished.
    expect(done).toMatchObject({ archives: [{ ...archive, expiresAt: iso(T0 + 9 + 30 * 86_400_000) }], finishedAt: iso(T0 + 9) });
    expect(toJobView(job({ state: 'SUCCEEDED', archives: [archive], finishedAt: T0 }), 7).archives).toEqual([{ ...archive, expiresAt: iso(T0 + 7 * 86_400_000) }]);
    expect(done).not.toHaveProperty('bytesCopied');
    const failed = toJobView(job({ state: 'FAILED', archives: [archive], error: { code: 'ARCHIVE_FAILED', message: 'm' }, finishedAt: T0 }));
    expect(failed).toMatchObject({ error: { code: 'ARCHIVE_FAILED', message: 'm' }, finishedAt: iso(T0) });
    expect(failed).not.toHaveProperty('archives');
    expect(wire(failed)).not.toHaveProperty('window');
  });

  it('show an export as last changed when it or any of its jobs last changed, and a scheduled one with its run', () => {
    const record = { id: 'e1', userId: 'u', state: 'RUNNING' as const, resources: ['chrome.history'], createdAt: T0, updatedAt: T0 + 10 };
    expect(toExportView(record, [job({ updatedAt: T0 + 5 })]).updatedAt).toBe(iso(T0 + 10));
    expect(toExportView(record, [job({ updatedAt: T0 + 5 }), job({ id: 'j2', updatedAt: T0 + 50 })]).updatedAt).toBe(iso(T0 + 50));
    const plain = toExportView(record, []);
    for (const absent of ['startTime', 'endTime', 'scheduleId', 'run']) expect(wire(plain)).not.toHaveProperty(absent);
    expect(toExportView({ ...record, scheduleId: 's1', run: 3, startTime: 'a', endTime: 'b' }, [])).toMatchObject({ scheduleId: 's1', run: 3, startTime: 'a', endTime: 'b', createdAt: iso(T0) });
  });
});

describe('what changes between a read and the write that follows it', () => {
  it('keys are the user\'s own: another key, or another user\'s same key, is another export; a replay enqueues only what still waits to initiate', async () => {
    const { w, userId } = await runningExport(['chrome.history']);
    const first = await w.svc.startExport(userId, { resources: ['myactivity.search'] }, 'key-a');
    const second = await w.svc.startExport(userId, { resources: ['youtube.subscriptions'] }, 'key-b');
    expect(second.created).toBe(true);
    const other = newUser();
    await grantFor(other);
    expect((await w.svc.startExport(other, { resources: ['myactivity.search'] }, 'key-a')).view.exportId).not.toBe(first.view.exportId);
    // The first export's job moved on: its replay does not initiate it again.
    await setJob(first.view.jobs[0]!.jobId, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    w.tasks.length = 0;
    expect((await w.svc.startExport(userId, { resources: ['myactivity.search'] }, 'key-a')).created).toBe(false);
    expect(w.tasks).toEqual([]);
  });

  it('a job whose archive became ready while its cancel was sent is left to copy, and nothing is enqueued for it', async () => {
    const { w, userId, view } = await runningExport(['chrome.history']);
    const jobId = view.jobs[0]!.jobId;
    await setJob(jobId, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    w.google.cancel = async () => setJob(jobId, (j) => ({ ...j, state: 'COPYING', seq: 2 }));
    w.tasks.length = 0;
    expect((await w.svc.cancelExport(userId, view.exportId)).jobs.map((j) => j.state)).toEqual(['COPYING']);
    expect(w.tasks).toEqual([]);
    expect(w.said('export cancellation requested')).toMatchObject([{ userId, exportId: view.exportId }]);
  });

  it('a reset does not count a job that ended between its listing and its update', async () => {
    const w0 = world();
    const userId = newUser();
    await grantFor(userId);
    const { view } = await w0.svc.startExport(userId, { resources: ['chrome.history'] });
    const jobId = view.jobs[0]!.jobId;
    const racing = Object.assign(Object.create(store) as FirestoreExportStore, {
      liveJobsOfUser: async (u: string) => {
        const live = await store.liveJobsOfUser(u);
        await setJob(jobId, (j) => ({ ...j, state: 'SUCCEEDED', seq: j.seq + 1, finishedAt: T0 }));
        return live;
      },
    });
    const w = world({ store: racing });
    await w.svc.resetAuthorization(userId);
    expect((await store.getJob(jobId))?.state).toBe('SUCCEEDED');
    expect(w.said('authorization reset')).toMatchObject([{ userId, jobsEnded: 0 }]);
  });
});
