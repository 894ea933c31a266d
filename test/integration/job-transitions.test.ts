/**
 * JobTransitions on the real Firestore emulator: what happens around a committed decision. The
 * schedule side hears of a job's end once (not on progress, not on a stale or repeated end); the
 * task queue is made only when a decision has effects; a state change is logged once, progress
 * not; the events the change wrote are handed to the relay.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import type { PipelineEvent } from '../../functions/src/domain/events';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { PipelineTask, TaskQueue } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import type { EventRelay } from '../../functions/src/pipeline/event-relay';
import { JobTransitions } from '../../functions/src/pipeline/job-transitions';

const T0 = Date.UTC(2100, 0, 1);
let db: ReturnType<typeof createFirestore>;
let store: FirestoreExportStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-job-transitions' });
  store = new FirestoreExportStore(db, { events: true });
});

afterAll(async () => {
  await db?.terminate();
});

const id = (): string => randomBytes(10).toString('hex');

/** A one-group export whose job is WAITING at Google (seq 1). */
async function waitingJob(): Promise<Job> {
  const exportId = id();
  const userId = `u-${id()}`;
  const job: Job = { ...newJob({ id: id(), exportId, userId, resource: 'myactivity.search' }, T0), state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: T0, updatedAt: T0 }, [job]);
  return job;
}

function harness(over: { onJobFinished?: (job: Job) => Promise<void>; store?: FirestoreExportStore; audit?: { sealAfterCommit: (userId: string) => Promise<void> } } = {}) {
  const finished: Job[] = [];
  const enqueued: PipelineTask[] = [];
  const relayed: PipelineEvent[][] = [];
  const lines: Array<Record<string, unknown>> = [];
  let queuesMade = 0;
  const queue: TaskQueue = { enqueue: async (t) => void enqueued.push(t) };
  const transitions = new JobTransitions({
    store: over.store ?? store,
    queue: async () => {
      queuesMade++;
      return queue;
    },
    policy: { initialSeconds: 300, maxSeconds: 3600 },
    logger: createLogger({ level: 'info', destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) > 0 } }),
    now: () => T0 + 1000,
    onJobFinished: over.onJobFinished ?? (async (j) => void finished.push(j)),
    relay: { relay: async (events: readonly PipelineEvent[]) => void relayed.push([...events]) } as unknown as EventRelay,
    ...(over.audit ? { audit: over.audit } : {}),
  });
  return { transitions, finished, enqueued, relayed, lines, queuesMade: () => queuesMade, changes: () => lines.filter((l) => l.message === 'job state changed') };
}

describe('JobTransitions around a committed decision', () => {
  it('tells the schedule side of an end once: not on a step that continues, not on a stale or repeated end', async () => {
    const job = await waitingJob();
    const h = harness();
    expect((await h.transitions.apply(job.id, { type: 'still-running' }, { seq: 1 })).applied).toBe(true);
    expect(h.finished).toEqual([]);
    const failed = { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } } as const;
    // Stale: the job is at seq 2 now.
    expect((await h.transitions.apply(job.id, failed, { seq: 1 })).applied).toBe(false);
    expect(h.finished).toEqual([]);
    expect((await h.transitions.apply(job.id, failed, { seq: 2 })).applied).toBe(true);
    expect(h.finished.map((j) => [j.id, j.state])).toEqual([[job.id, 'FAILED']]);
    // The same end again (a duplicate delivery, a cancel after it) is refused and told nobody.
    expect((await h.transitions.apply(job.id, failed)).applied).toBe(false);
    expect((await h.transitions.apply(job.id, { type: 'cancelled' })).applied).toBe(false);
    expect(h.finished).toHaveLength(1);
  });

  it('makes the task queue only for a decision with effects, and enqueues them at the new seq', async () => {
    const job = await waitingJob();
    const h = harness();
    // A lease changes nothing to enqueue: no queue client is made.
    expect((await h.transitions.apply(job.id, { type: 'lease-taken', until: T0 + 60_000 }, { seq: 1 })).applied).toBe(true);
    expect(h.queuesMade()).toBe(0);
    expect((await h.transitions.apply(job.id, { type: 'lease-released' }, { seq: 1 })).applied).toBe(true);
    expect(h.queuesMade()).toBe(0);
    expect((await h.transitions.apply(job.id, { type: 'still-running' }, { seq: 1 })).applied).toBe(true);
    expect(h.queuesMade()).toBe(1);
    expect(h.enqueued).toEqual([expect.objectContaining({ step: 'check', jobId: job.id, seq: 2 })]);
  });

  it('logs a change of seq or state once, and bookkeeping that changes neither not at all', async () => {
    const job = await waitingJob();
    const h = harness();
    await h.transitions.apply(job.id, { type: 'lease-taken', until: T0 + 60_000 }, { seq: 1 });
    await h.transitions.apply(job.id, { type: 'lease-released' }, { seq: 1 });
    expect(h.changes()).toEqual([]);
    await h.transitions.apply(job.id, { type: 'still-running' }, { seq: 1 });
    expect(h.changes()).toEqual([expect.objectContaining({ jobId: job.id, event: 'still-running', state: 'WAITING' })]);
    await h.transitions.apply(job.id, { type: 'archive-complete' }, { seq: 2 });
    expect(h.changes().map((l) => [l.event, l.state])).toEqual([
      ['still-running', 'WAITING'],
      ['archive-complete', 'COPYING'],
    ]);
  });

  it('hands the events the change wrote to the relay: the job\'s end and its export\'s', async () => {
    const job = await waitingJob();
    const h = harness();
    await h.transitions.apply(job.id, { type: 'still-running' }, { seq: 1 });
    await h.transitions.apply(job.id, { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } }, { seq: 2 });
    expect(h.relayed.map((events) => events.map((e) => e.id))).toEqual([[], [`job/${job.id}/FAILED`, `export/${job.exportId}/FAILED`]]);
  });

  it('applies a user\'s event at any seq (no seq given), a step\'s only at its own', async () => {
    const job = await waitingJob();
    const h = harness();
    await h.transitions.apply(job.id, { type: 'still-running' }, { seq: 1 });
    // The user's cancel names no seq: it applies to the job as it is now (seq 2); a stale step's does not.
    expect((await h.transitions.apply(job.id, { type: 'cancelled' }, { seq: 1 })).applied).toBe(false);
    const cancelled = await h.transitions.apply(job.id, { type: 'cancelled' });
    expect(cancelled).toMatchObject({ applied: true, before: { seq: 2 }, job: { state: 'WAITING', cancelRequested: T0 + 1000 } });
  });

  it('keeps the committed end when the schedule side cannot be told, and warns about it', async () => {
    const job = await waitingJob();
    const h = harness({ onJobFinished: async () => { throw new Error('schedule store down'); } });
    const out = await h.transitions.apply(job.id, { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } }, { seq: 1 });
    expect(out).toMatchObject({ applied: true, job: { state: 'FAILED' } });
    expect(((await db.doc(`jobs/${job.id}`).get()).data() as Job).state).toBe('FAILED');
    expect(h.lines.filter((l) => l.message === 'could not report the finished job to its schedule')).toEqual([expect.objectContaining({ jobId: job.id, severity: 'WARNING' })]);
  });

  it('has the audit drafts a change wrote sealed for its user, and only then', async () => {
    const audited = new FirestoreExportStore(db, { audit: { keepDays: 30 } });
    const sealed: string[] = [];
    const h = harness({ store: audited, audit: { sealAfterCommit: async (userId) => void sealed.push(userId) } });
    const job = await waitingJob();
    await h.transitions.apply(job.id, { type: 'archive-complete' }, { seq: 1 });
    await h.transitions.apply(job.id, { type: 'copy-progress', bytesCopied: 5 }, { seq: 2 });
    expect(sealed).toEqual([]);
    // The copy's end writes the "archives copied" draft with the change.
    await h.transitions.apply(job.id, { type: 'copied', archives: [{ bucket: 'b', name: 'n', size: 5, crc32c: 'AAAAAA==' }] }, { seq: 2 });
    expect(sealed).toEqual([job.userId]);
    // Without an audit trail configured, a change that wrote drafts still commits (the sweeper seals them).
    const other = await waitingJob();
    const bare = harness({ store: audited });
    await bare.transitions.apply(other.id, { type: 'archive-complete' }, { seq: 1 });
    expect(await bare.transitions.apply(other.id, { type: 'copied', archives: [{ bucket: 'b', name: 'n', size: 5, crc32c: 'AAAAAA==' }] }, { seq: 2 })).toMatchObject({ applied: true, job: { state: 'SUCCEEDED' } });
  });
});
