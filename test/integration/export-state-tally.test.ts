/**
 * An export's state is written by the transaction of the job that ends last, from the export's
 * own document: a job ending reads its own document and its export's, never its siblings', so
 * the jobs of a wide export that end together do not conflict pairwise (issue 17, bench 9).
 */
import { randomBytes } from 'node:crypto';
import { FieldValue, type Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { paths } from '../../functions/src/adapters/firestore-paths';
import { newJob } from '../../functions/src/domain/job';
import type { Job, JobState } from '../../functions/src/domain/model';
import { RESOURCE_GROUPS } from '../../functions/src/domain/resource-groups';
import { countingFirestore, type FirestoreOpCounts } from '../../bench/firestore-op-counter';

const projectId = 'demo-export-state-tally';
let db: Firestore;
let counts: FirestoreOpCounts;
let store: FirestoreExportStore;

beforeAll(() => {
  const host = inject('firestoreEmulatorHost');
  process.env.FIRESTORE_EMULATOR_HOST = host;
  ({ db, counts } = countingFirestore(projectId, host));
  store = new FirestoreExportStore(db);
});

afterAll(async () => {
  await db?.terminate();
});

async function exportOf(n: number): Promise<{ exportId: string; jobs: Job[] }> {
  const exportId = randomBytes(10).toString('hex');
  const userId = `tally-${exportId}`;
  const resources = RESOURCE_GROUPS.slice(0, n);
  const now = Date.now();
  const jobs = resources.map((resource) => ({ ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource }, now), state: 'COPYING' as const, seq: 3 }));
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: [...resources], createdAt: now, updatedAt: now }, jobs);
  return { exportId, jobs };
}

const end = (j: Job, state: JobState, at = Date.now()): Promise<unknown> =>
  store.updateJob(j.id, (cur) => (cur.state === 'COPYING' ? { ...cur, state, seq: cur.seq + 1, updatedAt: at, nextCheckAt: undefined } : undefined));

describe('the export state tally', () => {
  it('a job of a 40-job export ends reading 2 documents, not its 39 siblings', async () => {
    const { jobs } = await exportOf(40);
    const before = counts.reads;
    await end(jobs[0] as Job, 'SUCCEEDED');
    expect(counts.reads - before).toBe(2);
  });

  it('jobs ending all at once: the export is RUNNING until the last, then its derived state, written at the last end', async () => {
    const { exportId, jobs } = await exportOf(12);
    const at = Date.now();
    await Promise.all(jobs.slice(0, 11).map((j, i) => end(j, i === 3 ? 'FAILED' : 'SUCCEEDED', at + i)));
    expect((await store.getExport(exportId))?.state).toBe('RUNNING');
    await end(jobs[11] as Job, 'SUCCEEDED', at + 100);
    const record = await store.getExport(exportId);
    expect(record?.state).toBe('PARTIAL');
    expect(record?.updatedAt).toBe(at + 100);
    // The tally is the adapter's own: callers see the record as they created it.
    expect(Object.keys(record ?? {}).sort()).toEqual(['createdAt', 'id', 'resources', 'state', 'updatedAt', 'userId']);
  });

  it('all twelve ending in parallel: SUCCEEDED exactly once every job has', async () => {
    const { exportId, jobs } = await exportOf(12);
    await Promise.all(jobs.map((j) => end(j, 'SUCCEEDED')));
    expect((await store.getExport(exportId))?.state).toBe('SUCCEEDED');
    expect((await store.listJobs(exportId)).every((j) => j.state === 'SUCCEEDED')).toBe(true);
  });

  it('an export written before the tally still derives its state from its jobs', async () => {
    const { exportId, jobs } = await exportOf(3);
    await db.doc(paths.export(exportId)).update({ jobIds: FieldValue.delete(), endedJobs: FieldValue.delete() });
    await end(jobs[0] as Job, 'CANCELLED');
    await end(jobs[1] as Job, 'CANCELLED');
    expect((await store.getExport(exportId))?.state).toBe('RUNNING');
    await end(jobs[2] as Job, 'CANCELLED');
    expect((await store.getExport(exportId))?.state).toBe('CANCELLED');
  });
});
