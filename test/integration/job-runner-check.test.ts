/**
 * The initiate and check steps on the real Firestore store. Against a Google that would retry a
 * FAILED archive job any number of times, the pipeline's own cap (maxArchiveRetries) decides when
 * to give up, and each retry is one archiveJobs.retry call, followed by the new job id. Initiate
 * adopts a running job, releases its lease on a transient failure, and ends on a refusal.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { PortabilityApiError } from '../../functions/src/domain/errors';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import { testRunner, waitingJob } from '../support/job-fixtures';

let db: Firestore;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));

/** Every archive job is FAILED; every retry succeeds with a new id (g1 → g2 → …). */
function alwaysFailing(): { api: PortabilityApi; retried: string[] } {
  const retried: string[] = [];
  const api: PortabilityApi = {
    initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
    getState: async (_t, id) => ({ name: `archiveJobs/${id}/portabilityArchiveState`, state: 'FAILED', urls: [] }),
    retry: async (_t, id) => {
      retried.push(id);
      return { archiveJobId: `g${retried.length + 1}` };
    },
    cancel: async () => undefined,
    resetAuthorization: async () => undefined,
    checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
  };
  return { api, retried };
}

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-job-runner-check', ignoreUndefinedProperties: true });
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-job-runner-check' }));
});

afterAll(async () => {
  await db?.terminate();
});

describe('the check step of a FAILED archive job', () => {
  it('retries up to maxArchiveRetries times, one retry call each, then fails the job with ARCHIVE_FAILED', async () => {
    const job = await waitingJob(store, cipher, 'check-cap');
    const { api, retried } = alwaysFailing();
    const queued: PipelineTask[] = [];
    const runner = testRunner(store, cipher, api, { maxArchiveRetries: 3, queue: { enqueue: async (t) => void queued.push(t) } });
    let seq = job.seq;
    for (let i = 0; i < 3; i++) {
      expect(await runner.run({ step: 'check', jobId: job.id, seq, delaySeconds: 0 })).toMatchObject({ kind: 'done', detail: 'retried' });
      seq++;
      expect(queued.at(-1)).toMatchObject({ step: 'check', seq });
    }
    expect(retried).toEqual(['g1', 'g2', 'g3']);
    const last = await runner.run({ step: 'check', jobId: job.id, seq, delaySeconds: 0 });
    expect(last).toMatchObject({ kind: 'done', detail: 'job failed: ARCHIVE_FAILED' });
    // No fourth retry was asked for, although this Google would have granted it.
    expect(retried).toHaveLength(3);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({
      state: 'FAILED',
      retries: 3,
      archiveJobId: 'g4',
      archiveJobIds: ['g1', 'g2', 'g3', 'g4'],
      error: { code: 'ARCHIVE_FAILED', message: 'Google could not prepare the archive (failed 4 times, retries exhausted)' },
    });
    expect(queued).toHaveLength(3);
  });

  it('with maxArchiveRetries 0, fails at the first FAILED without calling retry', async () => {
    const job = await waitingJob(store, cipher, 'check-cap-zero');
    const { api, retried } = alwaysFailing();
    const outcome = await testRunner(store, cipher, api, { maxArchiveRetries: 0 }).run({ step: 'check', jobId: job.id, seq: job.seq, delaySeconds: 0 });
    expect(outcome).toMatchObject({ kind: 'done', detail: 'job failed: ARCHIVE_FAILED' });
    expect(retried).toEqual([]);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', retries: 0, error: { message: 'Google could not prepare the archive (failed 1 times, retries exhausted)' } });
  });
});

describe('the initiate step', () => {
  const initiating = (userId: string) => waitingJob(store, cipher, userId, { state: 'INITIATING', seq: 0, archiveJobId: undefined, archiveJobIds: [] });
  const task = (jobId: string): PipelineTask => ({ step: 'initiate', jobId, seq: 0, delaySeconds: 0 });
  const apiWith = (initiate: PortabilityApi['initiate']): PortabilityApi => ({ ...alwaysFailing().api, initiate });

  it('starts the archive job, records its id and enqueues the first check; a second delivery finds the job moved on', async () => {
    const job = await initiating('init-ok');
    const calls: unknown[][] = [];
    const queued: PipelineTask[] = [];
    const runner = testRunner(store, cipher, apiWith(async (...args) => (calls.push(args), { archiveJobId: 'g7', accessType: 'ACCESS_TYPE_ONE_TIME' })), { queue: { enqueue: async (t) => void queued.push(t) } });
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'initiated' });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toBe('ya29.t');
    expect(calls[0]?.[1]).toEqual({ resources: ['myactivity.search'] });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'WAITING', seq: 1, archiveJobId: 'g7', archiveJobIds: ['g7'] });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).not.toHaveProperty('lease');
    expect(queued).toEqual([{ step: 'check', jobId: job.id, seq: 1, delaySeconds: 300 }]);
    expect(await runner.run(task(job.id))).toMatchObject({ kind: 'dropped', detail: 'stale task (seq 0, job at 1)' });
    expect(calls).toHaveLength(1);
  });

  // Google's running job, as getState describes it: the window it was asked for.
  // Named afresh each time: the emulator outlives a run (a mutation run repeats this file), and an
  // earlier run's job following the same id would make this one refuse it.
  const alreadyRunning = (window: { startTime?: string; exportTime?: string }, id = `g-running-${randomBytes(4).toString('hex')}`): PortabilityApi => ({
    ...apiWith(async () => {
      throw new PortabilityApiError(409, 'ALREADY_EXISTS', 'running', 'ALREADY_EXISTS_ONE_TIME', { job_id: id });
    }),
    getState: async () => ({ name: `archiveJobs/${id}/portabilityArchiveState`, state: 'IN_PROGRESS', urls: [], ...window }),
  });

  it('passes the time window, and adopts the job Google says is already running when its window is this job\'s', async () => {
    const job = await initiating('init-adopt');
    await db.doc(`jobs/${job.id}`).update({ startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' });
    const seen: unknown[] = [];
    const api = alreadyRunning({ startTime: '2026-01-01T00:00:00Z', exportTime: '2026-02-01T00:00:00.000Z' }, `g-running-${job.id}`);
    const runner = testRunner(store, cipher, { ...api, initiate: async (t, req, q) => (seen.push(req), api.initiate(t, req, q)) });
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'initiated' });
    expect(seen).toEqual([{ resources: ['myactivity.search'], startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' }]);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'WAITING', archiveJobId: `g-running-${job.id}` });
  });

  it('does not adopt a running job whose window is another request\'s: RESOURCE_GROUP_BUSY', async () => {
    const job = await initiating('init-foreign');
    await db.doc(`jobs/${job.id}`).update({ startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' });
    const runner = testRunner(store, cipher, alreadyRunning({ startTime: '2025-01-01T00:00:00Z', exportTime: '2025-06-01T00:00:00Z' }));
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'job failed: RESOURCE_GROUP_BUSY' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', archiveJobIds: [], error: { code: 'RESOURCE_GROUP_BUSY' } });
  });

  it('on a transient failure answers retry and releases the lease, so the redelivery can call again', async () => {
    const job = await initiating('init-transient');
    let n = 0;
    const runner = testRunner(store, cipher, apiWith(async () => {
      if (n++ === 0) throw new PortabilityApiError(503, 'UNAVAILABLE', 'busy');
      return { archiveJobId: 'g8', accessType: 'ACCESS_TYPE_ONE_TIME' };
    }));
    expect(await runner.run(task(job.id))).toMatchObject({ kind: 'retry' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'INITIATING', seq: 0 });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).not.toHaveProperty('lease');
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'initiated' });
    expect(n).toBe(2);
  });

  it('a delivery that finds the lease held backs off (503 with Retry-After) without calling Google', async () => {
    const job = await initiating('init-leased');
    await db.doc(`jobs/${job.id}`).update({ lease: { until: Date.now() + 30_000 } });
    let called = 0;
    const outcome = await testRunner(store, cipher, apiWith(async () => (called++, { archiveJobId: 'g9', accessType: 'ACCESS_TYPE_ONE_TIME' }))).run(task(job.id));
    expect(outcome).toMatchObject({ kind: 'throttle', detail: 'another delivery of this step is calling Google' });
    expect((outcome as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(0);
    expect((outcome as { retryAfterSeconds: number }).retryAfterSeconds).toBeLessThanOrEqual(30);
    expect(called).toBe(0);
  });

  it('ends the job on a refusal (one-time consent used), keeping the error code', async () => {
    const job = await initiating('init-refused');
    const runner = testRunner(store, cipher, apiWith(async () => {
      throw new PortabilityApiError(429, 'RESOURCE_EXHAUSTED', 'used', 'RESOURCE_EXHAUSTED_ONE_TIME', { previous_job_ids: 'a' });
    }));
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'job failed: ONE_TIME_CONSENT_USED' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', error: { code: 'ONE_TIME_CONSENT_USED' } });
    expect(await runner.run(task(job.id))).toEqual({ kind: 'dropped', detail: 'job already FAILED' });
  });

  it('reads a FAILED_PRECONDITION of initiate as Google\'s 24-hour cooldown, not as a malformed request', async () => {
    const job = await initiating('init-cooldown');
    const runner = testRunner(store, cipher, apiWith(async () => {
      throw new PortabilityApiError(400, 'FAILED_PRECONDITION', 'exported in the last 24 hours');
    }));
    expect(await runner.run(task(job.id))).toEqual({ kind: 'done', detail: 'job failed: TIME_BASED_COOLDOWN' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN' } });
  });

  it('adopts a running job of a request without an end whose state gives no exportTime (nothing says it is another request)', async () => {
    const job = await initiating('init-adopt-no-time');
    const api = alreadyRunning({}, `g-untimed-${job.id}`);
    expect(await testRunner(store, cipher, api).run(task(job.id))).toEqual({ kind: 'done', detail: 'initiated' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'WAITING', archiveJobId: `g-untimed-${job.id}` });
  });

  it('drops unknown jobs and steps that do not match the job\'s state', async () => {
    const runner = testRunner(store, cipher, alwaysFailing().api);
    expect(await runner.run(task('0123456789abcdef0123'))).toEqual({ kind: 'dropped', detail: 'unknown job' });
    const job = await initiating('init-wrong-step');
    expect(await runner.run({ step: 'check', jobId: job.id, seq: 0, delaySeconds: 0 })).toEqual({ kind: 'dropped', detail: 'job is INITIATING, not WAITING' });
  });
});
