/**
 * The erasure worker on the Firestore emulator with a controllable clock: it ends a copying job
 * through the state machine, then deletes no object while the copy's lease is live (it enqueues
 * itself for when the lease ends), and finishes once it has passed.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { ERASURE_COLLECTIONS } from '../../functions/src/adapters/erasure-collections';
import { FirestoreErasureStore } from '../../functions/src/adapters/firestore-erasure-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { ErasureTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { ErasureWorker } from '../../functions/src/pipeline/erasure-worker';
import { JobTransitions } from '../../functions/src/pipeline/job-transitions';

const T0 = Date.UTC(2100, 0, 1);
const LEASE_MS = 60_000;

describe('the erasure worker and leases', () => {
  let store: FirestoreExportStore;
  let erasures: FirestoreErasureStore;
  beforeAll(() => {
    process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
    const db = createFirestore({ projectId: 'demo-erasure-worker' });
    store = new FirestoreExportStore(db);
    erasures = new FirestoreErasureStore(db);
  });

  it('deletes no object while an ended job\'s copy lease is live, and finishes once it passed', async () => {
    const userId = 'ew-copying';
    const exportId = randomBytes(10).toString('hex');
    const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'myactivity.search' }, T0), state: 'COPYING', seq: 4, nextCheckAt: T0 + LEASE_MS, archiveJobId: 'g', archiveJobIds: ['g'] };
    await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: T0, updatedAt: T0 }, [job], undefined, {});
    const clock = { t: T0 + 1000 };
    const deletes: string[] = [];
    const queued: ErasureTask[] = [];
    const logger = createLogger({ level: 'silent' });
    const worker = new ErasureWorker({
      erasures,
      store,
      jobs: new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy: { initialSeconds: 300, maxSeconds: 3600 }, logger, now: () => clock.t }),
      api: async () => ({}) as PortabilityApi,
      tokens: { forUser: async () => 'unused', forget: () => undefined },
      bucket: async () => ({ deletePrefix: async (p: string) => (deletes.push(p), 0) }),
      queue: async () => ({ enqueueErasure: async (t) => void queued.push(t) }),
      collections: ERASURE_COLLECTIONS.map((c) => c.collection),
      logger,
      now: () => clock.t,
    });
    await erasures.begin(userId, clock.t, clock.t);
    const task = { userKey: userDocId(userId), run: 1 };

    expect(await worker.run(task)).toMatchObject({ kind: 'done', detail: 'waiting for leases to end' });
    // Ended through the state machine at once; nothing deleted yet; woken when the lease ends.
    expect(await store.getJob(job.id)).toMatchObject({ state: 'FAILED', error: { code: 'CONSENT_REVOKED' } });
    expect(deletes).toEqual([]);
    expect(queued).toEqual([{ ...task, delaySeconds: 59, wake: `w${clock.t}` }]);

    clock.t = T0 + LEASE_MS - 1;
    expect(await worker.run(task)).toMatchObject({ detail: 'waiting for leases to end' });
    expect(deletes).toEqual([]);

    clock.t = T0 + LEASE_MS;
    expect(await worker.run(task)).toMatchObject({ kind: 'done', detail: 'erasure finished' });
    expect(deletes).toEqual([`${userId}/`]);
    expect(await store.getJob(job.id)).toBeUndefined();
    expect(await erasures.get(task.userKey)).toMatchObject({ state: 'DONE', removed: { jobs: 1, exports: 1, ledgers: 1 } });
  });
});
