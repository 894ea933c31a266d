/**
 * An export's state follows its jobs through a tally on the export's document: a job that ends
 * writes its line of it without reading the export (its transaction reads its own document
 * only), and the export's final state is settled right after the last end, or by the sweeper
 * when that instance died (issue 17, bench 9).
 */
import { randomBytes } from 'node:crypto';
import { FieldValue, type Firestore } from '@google-cloud/firestore';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { ExportSettler } from '../../functions/src/adapters/firestore-export-tally';
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
  store = new FirestoreExportStore(db, { events: true });
});

afterEach(() => {
  vi.restoreAllMocks();
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
  it('a job of a 40-job export ends in a transaction that reads its own document only, then one read each of the marker and the export', async () => {
    const { jobs } = await exportOf(40);
    const before = { ...counts };
    await end(jobs[0] as Job, 'SUCCEEDED');
    // One transaction (the job's), no retry; the settle that follows reads without one.
    expect({ reads: counts.reads - before.reads, transactions: counts.transactions - before.transactions }).toEqual({ reads: 3, transactions: 1 });
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
    await end(jobs[2] as Job, 'CANCELLED', Date.now() + 60_000);
    // Dated by its last job's end.
    expect(await store.getExport(exportId)).toMatchObject({ state: 'CANCELLED', updatedAt: (await store.getJob((jobs[2] as Job).id))?.updatedAt });
  });

  it('an export whose last job\'s instance died before settling: readers see the final state at once, the sweeper writes it and its event once', async () => {
    const { exportId, jobs } = await exportOf(2);
    const at = Date.now();
    await end(jobs[0] as Job, 'SUCCEEDED', at);
    vi.spyOn(ExportSettler.prototype, 'settle').mockRejectedValueOnce(new Error('the instance died'));
    const last = (await store.updateJob((jobs[1] as Job).id, (cur) => ({ ...cur, state: 'FAILED', seq: cur.seq + 1, updatedAt: at + 5, nextCheckAt: undefined })))!;
    // The job's end is committed, with its own event; the export's event is not written yet.
    expect(last.events.map((e) => e.id)).toEqual([`job/${jobs[1]!.id}/FAILED`]);
    expect((await db.doc(paths.export(exportId)).get()).get('state')).toBe('RUNNING');
    expect(await store.getExport(exportId)).toMatchObject({ state: 'PARTIAL', updatedAt: at + 5 });
    expect((await db.doc(`outbox/export:${exportId}:PARTIAL`).get()).exists).toBe(false);
    // A sweep before the grace period leaves it; after it, settles it once.
    expect((await store.settleExports(at + 4, 500)).events.filter((e) => e.id.includes(exportId))).toEqual([]);
    const swept = await store.settleExports(at + 5, 500);
    expect(swept.events.filter((e) => e.id.includes(exportId)).map((e) => e.id)).toEqual([`export/${exportId}/PARTIAL`]);
    expect((await db.doc(paths.export(exportId)).get()).data()).toMatchObject({ state: 'PARTIAL', updatedAt: at + 5 });
    expect((await db.doc(`outbox/export:${exportId}:PARTIAL`).get()).exists).toBe(true);
    expect((await db.doc(`exportSettles/${exportId}`).get()).exists).toBe(false);
    expect((await store.settleExports(at + 5, 500)).events.filter((e) => e.id.includes(exportId))).toEqual([]);
  });

  it('a settle never removes the marker of a job that ended while it ran', async () => {
    const { exportId, jobs } = await exportOf(2);
    const settler = new ExportSettler(db, { events: true });
    // Every settle but this test's own is lost (their instances died): the markers stay.
    const realSettle = ExportSettler.prototype.settle;
    vi.spyOn(ExportSettler.prototype, 'settle').mockImplementation(function (this: ExportSettler, id: string) {
      return this === settler ? realSettle.call(this, id) : Promise.reject(new Error('the instance died'));
    });
    await end(jobs[0] as Job, 'SUCCEEDED');
    // This settle reads the marker; before it removes it, the second job ends.
    const proto = ExportSettler.prototype as unknown as { settleExport: (id: string) => Promise<unknown> };
    const realSettleExport = proto.settleExport;
    vi.spyOn(proto, 'settleExport').mockImplementationOnce(async function (this: unknown, id: string) {
      const seen = await realSettleExport.call(this, id);
      await end(jobs[1] as Job, 'SUCCEEDED');
      return seen;
    });
    expect(await settler.settle(exportId)).toEqual({ events: [], audited: false });
    // The marker survived the settle that began before the second end: the sweeper finishes.
    expect((await db.doc(`exportSettles/${exportId}`).get()).exists).toBe(true);
    expect((await db.doc(paths.export(exportId)).get()).get('state')).toBe('RUNNING');
    vi.restoreAllMocks();
    expect((await store.settleExports(Date.now() + 1, 500)).events.map((e) => e.id)).toContain(`export/${exportId}/SUCCEEDED`);
    expect((await db.doc(paths.export(exportId)).get()).get('state')).toBe('SUCCEEDED');
  });

  it('a job whose export\'s document is gone still ends', async () => {
    const { exportId, jobs } = await exportOf(1);
    await db.doc(paths.export(exportId)).delete();
    await end(jobs[0] as Job, 'CANCELLED');
    expect((await store.getJob((jobs[0] as Job).id))?.state).toBe('CANCELLED');
    expect(await store.getExport(exportId)).toBeUndefined();
  });

  it('an export created with a job already ended counts it from the start', async () => {
    const exportId = randomBytes(10).toString('hex');
    const userId = `tally-${exportId}`;
    const now = Date.now();
    const live = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'chrome.history' }, now), state: 'COPYING' as const, seq: 3 };
    const refused = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'maps.reviews' }, now), state: 'FAILED' as const, finishedAt: now };
    await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['chrome.history', 'maps.reviews'], createdAt: now, updatedAt: now }, [live, refused]);
    expect((await store.getExport(exportId))?.state).toBe('RUNNING');
    await end(live, 'SUCCEEDED', now + 10);
    expect(await store.getExport(exportId)).toMatchObject({ state: 'PARTIAL', updatedAt: now + 10 });
  });
});
