/**
 * The check step on the real Firestore store, against a Google that would retry a FAILED archive
 * job any number of times: the pipeline's own cap (maxArchiveRetries) decides when to give up,
 * and each retry is one archiveJobs.retry call, followed by the new job id.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import type { PipelineTask, PortabilityApi } from '../../functions/src/domain/ports';
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
