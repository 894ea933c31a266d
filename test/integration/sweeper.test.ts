/**
 * The sweeper on the real Firestore store with a controllable clock: a job is overdue only once
 * its next step is later than the grace period, is re-enqueued once per grace window (two sweeps
 * in one window enqueue one task), at its own seq and step.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { Sweeper } from '../../functions/src/pipeline/sweeper';

const GRACE_S = 120;
const T0 = Date.UTC(2100, 0, 1);
let store: FirestoreExportStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-sweeper' }));
});

async function jobAt(over: Partial<Job>): Promise<Job> {
  const exportId = randomBytes(10).toString('hex');
  const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId: 'sweep-user', resource: 'myactivity.search' }, T0), ...over };
  await store.createExport({ id: exportId, userId: 'sweep-user', state: 'RUNNING', resources: ['myactivity.search'], createdAt: T0, updatedAt: T0 }, [job]);
  return job;
}

function sweeperAt(clock: { t: number }, queued: PipelineTask[]): Sweeper {
  return new Sweeper({ store, queue: { enqueue: async (t) => void queued.push(t) }, policy: { initialSeconds: 300, maxSeconds: 3600 }, graceSeconds: GRACE_S, logger: createLogger({ level: 'silent' }), now: () => clock.t });
}

describe('the sweeper', () => {
  it('re-enqueues each live job once it is overdue by more than the grace period, once per window, at its seq and step', async () => {
    const initiating = await jobAt({ state: 'INITIATING', seq: 0, nextCheckAt: T0 });
    const waiting = await jobAt({ state: 'WAITING', seq: 3, nextCheckAt: T0 + 1000, archiveJobId: 'g1', archiveJobIds: ['g1'] });
    const copying = await jobAt({ state: 'COPYING', seq: 5, nextCheckAt: T0, archiveJobId: 'g1', archiveJobIds: ['g1'] });
    const queued: PipelineTask[] = [];
    const clock = { t: T0 + GRACE_S * 1000 - 1 };
    // Within the grace period: not overdue yet.
    expect(await sweeperAt(clock, queued).sweep()).toEqual({ overdue: 0, requeued: 0, settled: 0, events: 0 });
    clock.t = T0 + GRACE_S * 1000 + 500;
    expect(await sweeperAt(clock, queued).sweep()).toEqual({ overdue: 2, requeued: 2, settled: 0, events: 0 });
    clock.t += 1000;
    const window = Math.floor(clock.t / (GRACE_S * 1000));
    expect(await sweeperAt(clock, queued).sweep()).toEqual({ overdue: 1, requeued: 1, settled: 0, events: 0 });
    const byJob = Object.fromEntries(queued.map((t) => [t.jobId, [t.step, t.seq]]));
    expect(byJob).toEqual({ [initiating.id]: ['initiate', 0], [waiting.id]: ['check', 3], [copying.id]: ['copy', 5] });
    expect(queued.every((t) => t.redelivery === window && t.delaySeconds === 0)).toBe(true);
    // A sweep again in the same window finds them postponed by a grace period: nothing new.
    expect(await sweeperAt(clock, queued).sweep()).toEqual({ overdue: 0, requeued: 0, settled: 0, events: 0 });
    // Still lost when the postponed step is itself overdue: swept again, under a later window's name.
    clock.t += 2 * GRACE_S * 1000;
    expect((await sweeperAt(clock, queued).sweep()).requeued).toBe(3);
    expect(new Set(queued.slice(3).map((t) => t.redelivery))).toEqual(new Set([Math.floor(clock.t / (GRACE_S * 1000))]));
  });
});

describe('the sweeper\'s warning', () => {
  it('names each re-enqueued job with how long its step was overdue', async () => {
    const own = new FirestoreExportStore(createFirestore({ projectId: 'demo-sweeper-warning' }));
    const exportId = randomBytes(10).toString('hex');
    const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId: 'sweep-user', resource: 'myactivity.search' }, T0), seq: 2, nextCheckAt: T0 };
    await own.createExport({ id: exportId, userId: 'sweep-user', state: 'RUNNING', resources: ['myactivity.search'], createdAt: T0, updatedAt: T0 }, [job]);
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'warn', destination: { write: (l: string) => (lines.push(JSON.parse(l) as Record<string, unknown>), true) } });
    const sweeper = new Sweeper({ store: own, queue: { enqueue: async () => undefined }, policy: { initialSeconds: 300, maxSeconds: 3600 }, graceSeconds: GRACE_S, logger, now: () => T0 + 300_400 });
    expect(await sweeper.sweep()).toEqual({ overdue: 1, requeued: 1, settled: 0, events: 0 });
    expect(lines).toMatchObject([{ message: 'overdue job re-enqueued', jobId: job.id, state: 'INITIATING', step: 'initiate', overdueSeconds: 300 }]);
  });
});
