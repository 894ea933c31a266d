/**
 * Two deliveries of the same task that both get past the job runner's early checks (the job was
 * read at the task's seq by both) and race to commit: the compare-and-set inside the transaction
 * must let exactly one of them change the job and enqueue the next step.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import type { Job } from '../../functions/src/domain/model';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import type { PortabilityApi, PortabilityArchiveState } from '../../functions/src/domain/ports/portability-api';
import type { JobRunner } from '../../functions/src/pipeline/job-runner';
import { testRunner, waitingJob } from '../support/job-fixtures';

let db: Firestore;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));

/** getState answers once `parties` calls are waiting in it: every delivery has passed run()'s checks by then. */
function barrierApi(parties: number, state: PortabilityArchiveState): { api: PortabilityApi; calls: () => number } {
  let waiting = 0;
  let release!: () => void;
  const allIn = new Promise<void>((resolve) => (release = resolve));
  const api: PortabilityApi = {
    initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
    getState: async () => {
      if (++waiting === parties) release();
      await allIn;
      return state;
    },
    retry: async () => ({ archiveJobId: 'g2' }),
    cancel: async () => undefined,
    resetAuthorization: async () => undefined,
    checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
  };
  return { api, calls: () => waiting };
}

const runner = (api: PortabilityApi, queued: PipelineTask[]): JobRunner => testRunner(store, cipher, api, { queue: { enqueue: async (t) => void queued.push(t) } });
const waiting = (userId: string): Promise<Job> => waitingJob(store, cipher, userId, { seq: 4, checks: 2, waitingSince: Date.now() });

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-job-runner-races', ignoreUndefinedProperties: true });
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-job-runner-races' }));
});

afterAll(async () => {
  await db?.terminate();
});

describe('deliveries of one step racing to commit', () => {
  it('two checks at the same seq that both find the archive still running: exactly one commits', async () => {
    const job = await waiting('race-still-running');
    const { api, calls } = barrierApi(2, { name: 'archiveJobs/g1/portabilityArchiveState', state: 'IN_PROGRESS', urls: [] });
    const queued: PipelineTask[] = [];
    const task: PipelineTask = { step: 'check', jobId: job.id, seq: job.seq, delaySeconds: 0 };
    await Promise.all([runner(api, queued).run(task), runner(api, queued).run(task)]);
    expect(calls()).toBe(2);
    // Both would count a check and enqueue the next one if the transaction did not compare seq.
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'WAITING', seq: job.seq + 1, checks: job.checks + 1 });
    expect(queued.map((t) => [t.step, t.seq])).toEqual([['check', job.seq + 1]]);
  });

  it('three copies of a check that finds the archive COMPLETE: one moves the job to COPYING and enqueues one copy', async () => {
    const job = await waiting('race-complete');
    const { api } = barrierApi(3, { name: 'archiveJobs/g1/portabilityArchiveState', state: 'COMPLETE', urls: ['https://storage.googleapis.com/a/1.zip?sig=1'] });
    const queued: PipelineTask[] = [];
    const task: PipelineTask = { step: 'check', jobId: job.id, seq: job.seq, delaySeconds: 0 };
    const outcomes = await Promise.all([0, 1, 2].map(() => runner(api, queued).run(task)));
    expect(outcomes.filter((o) => o.kind === 'done')).toHaveLength(3);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'COPYING', seq: job.seq + 1 });
    expect(queued.map((t) => [t.step, t.seq])).toEqual([['copy', job.seq + 1]]);
  });
});
