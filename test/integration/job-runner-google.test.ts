/**
 * The job runner's calls to Google, through the real API client against the Data Portability API
 * simulator (on a clock the test moves) and the real Firestore store: adopting the archive job a
 * lost earlier attempt started (only when it is ours), the user's cancel carried out at Google,
 * Google's own cancel and failures, the retry of a FAILED job under its lease, throttling, a
 * revoked grant, a part task, and the terminal failure the task handler records when a task's
 * retries are spent. What Google saw is read from the simulator's call log.
 */
import { randomBytes } from 'node:crypto';
import { FieldValue } from '@google-cloud/firestore';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { PortabilityApiClient } from '../../functions/src/adapters/portability-api-client';
import { PortabilityApiError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Job, JobError } from '../../functions/src/domain/model';
import type { ArchiveCopier } from '../../functions/src/domain/ports/archive-copier';
import type { ExportStore } from '../../functions/src/domain/ports/export-store';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens, quotaUserOf } from '../../functions/src/pipeline/access-tokens';
import type { JobRunnerDeps } from '../../functions/src/pipeline/job-runner';
import { GoogleAccounts, type SimAccessType, type SimGrant } from '../../local-stack/google-accounts';
import { startPortabilityApiSimulator, type PortabilityApiSimulator, type SimMethod } from '../../local-stack/portability-api-simulator';
import { testRunner } from '../support/job-fixtures';

const RESOURCE = 'myactivity.search';
const MINUTE = 60_000;
let t = Date.UTC(2026, 11, 1, 9, 0, 0);
let accounts: GoogleAccounts;
let sim: PortabilityApiSimulator;
let client: PortabilityApiClient;
let db: ReturnType<typeof createFirestore>;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-job-runner-google' });
  store = new FirestoreExportStore(db);
  accounts = new GoogleAccounts(() => t);
  sim = await startPortabilityApiSimulator({ accounts, jobDurationMs: 10 * MINUTE, archiveBytes: 20_000 });
  client = new PortabilityApiClient({ apiRoot: sim.apiRoot, timeoutMs: 10_000 });
});

afterAll(async () => {
  await sim?.stop();
  await db?.terminate();
});

beforeEach(() => sim.faults.clear());

const hex = (n: number): string => randomBytes(n).toString('hex');

/** A user who consented at Google (the simulator's grant) and in our store, whose access token is `token`. */
async function consentedUser(accessType: SimAccessType = 'ONE_TIME'): Promise<{ userId: string; grant: SimGrant; token: string }> {
  const userId = `u-${hex(6)}`;
  const grant = accounts.createGrant({ googleUserId: `g-${userId}`, resources: [RESOURCE], accessType, days: 30 });
  const token = accounts.mintAccessToken(grant.grantId, 24 * 60 * MINUTE).token;
  // Our token client is replaced below by one that answers the stored "refresh token" as the access token.
  await store.putGrant({ userId, refreshToken: await cipher.encrypt(token, userId), resources: [RESOURCE], oneTimeResources: [RESOURCE], timeBasedResources: [], state: 'ACTIVE', createdAt: 0, updatedAt: 0 });
  return { userId, grant, token };
}

/** One export of the user with one job in the given state. */
async function jobOf(userId: string, over: Partial<Job>): Promise<Job> {
  const exportId = hex(10);
  const job: Job = { ...newJob({ id: hex(10), exportId, userId, resource: RESOURCE }, Date.now()), ...over };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: [RESOURCE], createdAt: Date.now(), updatedAt: Date.now() }, [job]);
  return job;
}

/** A WAITING job following the simulator's archive job `archiveJobId`. */
const waitingOn = (userId: string, archiveJobId: string, over: Partial<Job> = {}): Promise<Job> =>
  jobOf(userId, { state: 'WAITING', seq: 1, archiveJobId, archiveJobIds: [archiveJobId], ...over });

function harness(over: Partial<JobRunnerDeps> = {}) {
  const queued: PipelineTask[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const tokens = new AccessTokens(store, async () => cipher, async () => ({
    exchangeCode: async () => {
      throw new Error('unused');
    },
    refresh: async (refreshToken: string) => ({ accessToken: refreshToken, expiresAt: Date.now() + 3_600_000 }),
  }));
  const runner = testRunner(store, cipher, client, {
    tokens,
    queue: { enqueue: async (task) => void queued.push(task) },
    logger: createLogger({ level: 'info', destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) > 0 } }),
    ...over,
  });
  const logged = (message: string) => lines.filter((l) => l.message === message);
  return { runner, queued, logged };
}

const task = (job: Job, step: PipelineTask['step'], seq = job.seq): PipelineTask => ({ step, jobId: job.id, seq, delaySeconds: 0 });
const stored = async (job: Job): Promise<Job> => (await db.doc(`jobs/${job.id}`).get()).data() as Job;
/** The calls Google received for this user (the simulator logs the hashed quotaUser, never a token). */
const callsOf = (userId: string, method?: SimMethod) => sim.calls.filter((c) => c.quotaUser === quotaUserOf(userId) && (method === undefined || c.method === method));
/** An archive job started at Google directly (as by an earlier attempt whose answer was lost). */
const startedAtGoogle = async (userId: string, token: string, window: { startTime?: string; endTime?: string } = {}): Promise<string> =>
  (await client.initiate(token, { resources: [RESOURCE], ...window }, quotaUserOf(userId))).archiveJobId;

describe('initiate: an archive job Google already runs for the group', () => {
  it('is adopted when it was requested no earlier than a minute before this job was created', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    // Google's exportTime is when it was requested (t); the job was created up to 60 s later.
    const job = await jobOf(u.userId, { createdAt: t + MINUTE });
    const h = harness();
    expect(await h.runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'initiated' });
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 1, archiveJobId: running, archiveJobIds: [running] });
    expect(h.queued).toEqual([{ step: 'check', jobId: job.id, seq: 1, delaySeconds: 300 }]);
    expect(h.logged('adopted the running archive job')).toEqual([expect.objectContaining({ jobId: job.id, archiveJobId: running })]);
    expect(callsOf(u.userId).map((c) => [c.method, c.status])).toEqual([['initiate', 200], ['initiate', 409], ['getState', 200]]);
  });

  it('is refused when it was requested earlier than that: another request of the user\'s, RESOURCE_GROUP_BUSY', async () => {
    const u = await consentedUser();
    await startedAtGoogle(u.userId, u.token);
    const job = await jobOf(u.userId, { createdAt: t + MINUTE + 1 });
    expect(await harness().runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    expect(await stored(job)).toMatchObject({
      state: 'FAILED',
      archiveJobIds: [],
      error: { code: 'RESOURCE_GROUP_BUSY', message: 'Google is already exporting this data for another request (a different time window); export it again when that one has ended' },
    });
    expect(await stored(job)).not.toHaveProperty('lease');
  });

  it('is refused when its window starts elsewhere, though it ends where this job\'s does', async () => {
    const u = await consentedUser();
    await startedAtGoogle(u.userId, u.token, { startTime: '2026-03-01T00:00:00Z', endTime: '2026-06-01T00:00:00Z' });
    const job = await jobOf(u.userId, { startTime: '2026-01-01T00:00:00Z', endTime: '2026-06-01T00:00:00Z' });
    expect(await harness().runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    expect((await stored(job)).error?.message).toContain('(a different time window)');
  });

  it('is refused, for a job without a window, when Google\'s job was asked for one (another export\'s attempt, not ours)', async () => {
    // An export with a start only: its job was cancelled while its initiate call was in flight, and the call reached Google.
    const u = await consentedUser();
    await startedAtGoogle(u.userId, u.token, { startTime: '2026-03-01T00:00:00Z' });
    const job = await jobOf(u.userId, { createdAt: t });
    expect(await harness().runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    expect((await stored(job)).error?.message).toContain('(a different time window)');
  });

  it('is refused when another job of ours follows it, naming that export; Google\'s job is left alone', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    const other = await waitingOn(u.userId, running);
    const job = await jobOf(u.userId, { createdAt: t });
    expect(await harness().runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    expect((await stored(job)).error?.message).toBe(`Google is already exporting this data for another request (export ${other.exportId}); export it again when that one has ended`);
    expect(await stored(other)).toMatchObject({ state: 'WAITING', archiveJobId: running });
    expect(callsOf(u.userId, 'cancel')).toEqual([]);
  });

  it('names every export whose job follows it', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    const first = await waitingOn(u.userId, running);
    const second = await waitingOn(u.userId, running);
    const job = await jobOf(u.userId, { createdAt: t });
    expect(await harness().runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    const named = /\(export ([^)]*)\)/.exec((await stored(job)).error?.message ?? '')?.[1];
    expect(named?.split(', ').sort()).toEqual([first.exportId, second.exportId].sort());
  });
});

describe('initiate: cancel, throttling and leases', () => {
  it('ends a job cancelled before any archive job started, without calling Google', async () => {
    const u = await consentedUser();
    const job = await jobOf(u.userId, { cancelRequested: Date.now() - 1000 });
    const h = harness();
    expect(await h.runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'cancelled before any archive job started' });
    expect(await stored(job)).toMatchObject({ state: 'CANCELLED', archiveJobIds: [] });
    expect(callsOf(u.userId)).toEqual([]);
    expect(h.queued).toEqual([]);
  });

  it('answers Google\'s 429 with its Retry-After and releases the lease for the redelivery', async () => {
    const u = await consentedUser();
    const job = await jobOf(u.userId, {});
    sim.faults.failNextCalls('initiate', 429, 1, 42);
    const h = harness();
    expect(await h.runner.run(task(job, 'initiate'))).toEqual({ kind: 'throttle', detail: 'Data Portability API throttled', retryAfterSeconds: 42 });
    expect(await stored(job)).toMatchObject({ state: 'INITIATING', seq: 0 });
    expect(await stored(job)).not.toHaveProperty('lease');
    expect(await h.runner.run(task(job, 'initiate'))).toEqual({ kind: 'done', detail: 'initiated' });
    expect(callsOf(u.userId, 'initiate').map((c) => c.status)).toEqual([429, 200]);
  });

  it('keeps the lease another delivery took after this one\'s had lapsed: a failed call releases only its own', async () => {
    const u = await consentedUser();
    const job = await jobOf(u.userId, {});
    const until = Date.now() + 10 * MINUTE;
    // While this delivery's call hangs past its lease, another delivery starts Google's job and retries it under a new lease.
    const api: PortabilityApi = Object.assign(Object.create(client) as PortabilityApiClient, {
      initiate: async () => {
        await db.doc(`jobs/${job.id}`).update({ state: 'WAITING', seq: 1, archiveJobId: 'g-other', archiveJobIds: ['g-other'], lease: { until } });
        throw new PortabilityApiError(503, 'UNAVAILABLE', 'The service is currently unavailable.');
      },
    });
    expect(await harness({ api }).runner.run(task(job, 'initiate'))).toMatchObject({ kind: 'retry' });
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 1, lease: { until } });
  });

  it('drops a delivery whose job moved on, or was deleted, before it could take the lease', async () => {
    // Google's job FAILED: the check wants to retry it, under the lease.
    const u = await consentedUser();
    sim.faults.failNextJobs(RESOURCE, 1, u.grant.googleUserId);
    const failed = await startedAtGoogle(u.userId, u.token);
    t += 11 * MINUTE;
    const job = await waitingOn(u.userId, failed, { seq: 2 });
    // This delivery read the job at seq 2; another has since moved it to seq 3 (still WAITING) and leased it.
    await db.doc(`jobs/${job.id}`).update({ seq: 3, lease: { until: Date.now() + 10 * MINUTE } });
    const readEarlier = (snapshot: Job): ExportStore => Object.assign(Object.create(store) as FirestoreExportStore, { getJob: async () => snapshot });
    expect(await harness({ store: readEarlier(job) }).runner.run(task(job, 'check'))).toEqual({ kind: 'dropped', detail: 'job moved on' });
    // Moved on and no longer leased (the other delivery's call is over): still not this delivery's to call.
    await db.doc(`jobs/${job.id}`).update({ lease: FieldValue.delete() });
    expect(await harness({ store: readEarlier(job) }).runner.run(task(job, 'check'))).toEqual({ kind: 'dropped', detail: 'job moved on' });
    const deleted = { ...job, id: hex(10) };
    expect(await harness({ store: readEarlier(deleted) }).runner.run(task(deleted, 'check'))).toEqual({ kind: 'dropped', detail: 'job moved on' });
    expect(callsOf(u.userId, 'retry')).toEqual([]);
  });
});

describe('check: what Google says of the archive job', () => {
  it('still running: counts the check and asks again later; complete: moves to COPYING and enqueues the copy', async () => {
    const u = await consentedUser();
    const job = await waitingOn(u.userId, await startedAtGoogle(u.userId, u.token));
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'still running' });
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 2, checks: 1 });
    t += 11 * MINUTE;
    expect(await h.runner.run(task(job, 'check', 2))).toEqual({ kind: 'done', detail: 'archive ready' });
    expect(await stored(job)).toMatchObject({ state: 'COPYING', seq: 3 });
    expect(h.queued.map((q) => [q.step, q.seq])).toEqual([['check', 2], ['copy', 3]]);
  });

  it('cancelled at Google (by the user, in their Google account): ends the job CANCELLED', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    const job = await waitingOn(u.userId, running);
    await client.cancel(u.token, running, quotaUserOf(u.userId));
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'cancelled at Google' });
    expect(await stored(job)).toMatchObject({ state: 'CANCELLED', seq: 2 });
    expect(h.queued).toEqual([]);
  });

  it('throttled by Google: answers its Retry-After; unavailable: a plain retry; the job unchanged', async () => {
    const u = await consentedUser();
    const job = await waitingOn(u.userId, await startedAtGoogle(u.userId, u.token));
    sim.faults.failNextCalls('getState', 429, 1, 17);
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'throttle', detail: 'Data Portability API throttled', retryAfterSeconds: 17 });
    sim.faults.failNextCalls('getState', 503, 1);
    expect(await h.runner.run(task(job, 'check'))).toMatchObject({ kind: 'retry' });
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 1, checks: 0 });
  });

  it('an archive job Google does not know for this user: the job fails, it is not retried forever', async () => {
    const u = await consentedUser();
    const job = await waitingOn(u.userId, '00000000-0000-4000-8000-000000000000');
    expect(await harness().runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'job failed: INVALID_REQUEST' });
    expect(await stored(job)).toMatchObject({ state: 'FAILED', error: { code: 'INVALID_REQUEST' } });
  });

  it('the grant revoked at Google: the job fails with CONSENT_REVOKED', async () => {
    const u = await consentedUser();
    const job = await waitingOn(u.userId, await startedAtGoogle(u.userId, u.token));
    accounts.revoke(u.grant.grantId);
    expect(await harness().runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'job failed: CONSENT_REVOKED' });
    expect(await stored(job)).toMatchObject({ state: 'FAILED', error: { code: 'CONSENT_REVOKED' } });
  });

  it('an error nobody classified (the token client misconfigured) goes up to Cloud Tasks, the job unchanged', async () => {
    const u = await consentedUser();
    const job = await waitingOn(u.userId, await startedAtGoogle(u.userId, u.token));
    const tokens = new AccessTokens(store, async () => cipher, async () => ({
      exchangeCode: async () => {
        throw new Error('unused');
      },
      refresh: async () => {
        throw new Error('invalid_client: the OAuth client secret is wrong');
      },
    }));
    await expect(harness({ tokens }).runner.run(task(job, 'check'))).rejects.toThrow('invalid_client');
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 1 });
  });
});

describe('check: a FAILED archive job is retried under the job\'s lease', () => {
  async function failedAtGoogle(): Promise<{ u: Awaited<ReturnType<typeof consentedUser>>; job: Job; failed: string }> {
    const u = await consentedUser();
    sim.faults.failNextJobs(RESOURCE, 1, u.grant.googleUserId);
    const failed = await startedAtGoogle(u.userId, u.token);
    t += 11 * MINUTE;
    return { u, job: await waitingOn(u.userId, failed), failed };
  }

  it('a delivery that finds the lease held backs off without asking Google for another job', async () => {
    const { u, job } = await failedAtGoogle();
    await db.doc(`jobs/${job.id}`).update({ lease: { until: Date.now() + 20_000 } });
    const outcome = await harness().runner.run(task(job, 'check'));
    expect(outcome).toMatchObject({ kind: 'throttle', detail: 'another delivery of this step is calling Google' });
    expect(callsOf(u.userId, 'retry')).toEqual([]);
  });

  it('a duplicate delivery arriving while the retry call is in flight backs off: Google is asked for one new job', async () => {
    const { u, job } = await failedAtGoogle();
    let duplicate: unknown;
    const h = harness();
    const api: PortabilityApi = Object.assign(Object.create(client) as PortabilityApiClient, {
      retry: async (token: string, id: string, quotaUser: string) => {
        duplicate ??= await harness().runner.run(task(job, 'check'));
        return client.retry(token, id, quotaUser);
      },
    });
    expect(await harness({ api }).runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'retried' });
    expect(duplicate).toMatchObject({ kind: 'throttle', detail: 'another delivery of this step is calling Google' });
    expect(callsOf(u.userId, 'retry').map((c) => c.status)).toEqual([200]);
    expect(h.queued).toEqual([]);
    expect(await stored(job)).toMatchObject({ seq: 2, retries: 1 });
  });

  it('a transient failure of the retry call releases the lease; the redelivery retries, follows the new job and says so', async () => {
    const { u, job, failed } = await failedAtGoogle();
    sim.faults.failNextCalls('retry', 503, 1);
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toMatchObject({ kind: 'retry' });
    expect(await stored(job)).not.toHaveProperty('lease');
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'retried' });
    const retried = sim.jobs().find((j) => j.retryOf === failed);
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 2, retries: 1, archiveJobId: retried?.id, archiveJobIds: [failed, retried?.id] });
    expect(callsOf(u.userId, 'retry').map((c) => c.status)).toEqual([503, 200]);
    expect(h.logged('archive job failed at Google; retried')).toEqual([expect.objectContaining({ jobId: job.id, archiveJobId: failed, newArchiveJobId: retried?.id, retry: 1 })]);
  });

  it('Google refusing another retry ends the job ARCHIVE_FAILED', async () => {
    const { job } = await failedAtGoogle();
    sim.faults.retriesAllowed(0);
    expect(await harness().runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'job failed: ARCHIVE_FAILED' });
    expect((await stored(job)).error?.message).toMatch(/^Google could not prepare the archive and refused another retry: /);
  });
});

describe('check: the user cancelled while Google runs the archive job', () => {
  it('cancels it at Google, then ends the job CANCELLED', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    const job = await waitingOn(u.userId, running, { cancelRequested: Date.now() });
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'cancelled at Google' });
    expect(callsOf(u.userId, 'cancel').map((c) => [c.jobId, c.status])).toEqual([[running, 200]]);
    expect(sim.jobs().find((j) => j.id === running)?.state).toBe('CANCELLED');
    expect(await stored(job)).toMatchObject({ state: 'CANCELLED', seq: 2 });
    expect(await stored(job)).not.toHaveProperty('cancelRequested');
    expect(h.queued).toEqual([]);
  });

  it('an archive job Google finished meanwhile is not cancellable there: noted, and the job still ends CANCELLED', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    t += 11 * MINUTE;
    const job = await waitingOn(u.userId, running, { cancelRequested: Date.now() });
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'cancelled at Google' });
    expect(callsOf(u.userId, 'cancel').map((c) => c.status)).toEqual([400]);
    expect(await stored(job)).toMatchObject({ state: 'CANCELLED' });
    expect(h.logged('archive job not cancellable at Google')).toEqual([expect.objectContaining({ jobId: job.id, archiveJobId: running, reason: 'invalid' })]);
  });

  it('Google unavailable: the cancel is tried again by the redelivery, the job waits meanwhile', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    const job = await waitingOn(u.userId, running, { cancelRequested: Date.now() });
    sim.faults.failNextCalls('cancel', 503, 1);
    const h = harness();
    expect(await h.runner.run(task(job, 'check'))).toMatchObject({ kind: 'retry' });
    expect(await stored(job)).toMatchObject({ state: 'WAITING', seq: 1 });
    expect(await h.runner.run(task(job, 'check'))).toEqual({ kind: 'done', detail: 'cancelled at Google' });
    expect(callsOf(u.userId, 'cancel').map((c) => c.status)).toEqual([503, 200]);
  });
});

describe('a part task and a task whose retries are spent', () => {
  it('copy-part copies the part it names from a fresh signed URL and records it in the plan', async () => {
    const u = await consentedUser();
    const running = await startedAtGoogle(u.userId, u.token);
    t += 11 * MINUTE;
    const plan = { archive: 0, count: 2, size: 20_000, crc32c: 'AAAAAA==', done: [] };
    const job = await jobOf(u.userId, { state: 'COPYING', seq: 3, archiveJobId: running, archiveJobIds: [running], readyAt: Date.now(), copy: { done: [], parts: plan } });
    const copied: Array<{ host: string; part: number; count: number }> = [];
    const copier: ArchiveCopier = {
      copy: async () => {
        throw new Error('one stream is not this task\'s');
      },
      copyPart: async (url, _name, part, count) => void copied.push({ host: new URL(url).host, part, count }),
      composeParts: async () => {
        throw new Error('composing is the copy task\'s');
      },
      deletePrefix: async () => 0,
    };
    const h = harness({ copier: async () => copier, parallelCopy: { minBytes: 10_000, parts: 2 } });
    expect(await h.runner.run({ ...task(job, 'copy-part'), part: 1 })).toEqual({ kind: 'done', detail: 'part 2 of 2 copied' });
    expect(copied).toEqual([{ host: sim.archiveHost, part: 1, count: 2 }]);
    expect(await stored(job)).toMatchObject({ state: 'COPYING', seq: 3, copy: { parts: { done: [1] } } });
  });

  it('failById fails a live job with the error given, leaves an ended one as it is, and ignores an unknown id', async () => {
    const u = await consentedUser();
    const live = await waitingOn(u.userId, 'g-a');
    const ended = await waitingOn(u.userId, 'g-b', { state: 'SUCCEEDED', seq: 5 });
    const { runner } = harness();
    const error: JobError = { code: 'RETRY_BUDGET_EXHAUSTED', message: 'gave up after the task\'s retries' };
    await runner.failById(live.id, error);
    await runner.failById(ended.id, error);
    await runner.failById(hex(10), error);
    expect(await stored(live)).toMatchObject({ state: 'FAILED', seq: 2, error });
    expect(await stored(ended)).toMatchObject({ state: 'SUCCEEDED', seq: 5 });
    expect(await stored(ended)).not.toHaveProperty('error');
    // fail() with a job read before it moved on changes nothing.
    expect(await runner.fail(live, error)).toEqual({ kind: 'dropped', detail: 'job moved on' });
  });
});
