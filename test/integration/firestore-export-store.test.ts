/**
 * The export store on the real Firestore emulator, each method on its own: grants under any user
 * id, creation with idempotency and admission (what the ledger's facts are read from), paging,
 * job updates that re-derive the export's state, and the compare-and-set writes of progress and
 * due times.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { decodePageToken, FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { paths } from '../../functions/src/adapters/firestore-paths';
import { newJob } from '../../functions/src/domain/job';
import type { ExportRecord, Grant, Job } from '../../functions/src/domain/model';
import { createLogger } from '../../functions/src/logging';
import { JobTransitions } from '../../functions/src/pipeline/job-transitions';
import { refusalOf } from '../support/rejections';

const T0 = Date.UTC(2100, 0, 1);
const DAY = 86_400_000;
let db: ReturnType<typeof createFirestore>;
let store: FirestoreExportStore;
let transitions: JobTransitions;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-firestore-export-store' });
  store = new FirestoreExportStore(db);
  transitions = new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy: { initialSeconds: 300, maxSeconds: 3600 }, logger: createLogger({ level: 'silent' }), now: () => T0 });
});

const id = (): string => randomBytes(10).toString('hex');
const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;

function exportOf(userId: string, resources: string[], over: Partial<ExportRecord> = {}): { record: ExportRecord; jobs: Job[] } {
  const record: ExportRecord = { id: id(), userId, state: 'RUNNING', resources, createdAt: T0, updatedAt: T0, ...over };
  return { record, jobs: resources.map((resource) => newJob({ id: id(), exportId: record.id, userId, resource }, record.createdAt)) };
}

async function created(userId: string, resources: string[], over: Partial<ExportRecord> = {}): Promise<{ record: ExportRecord; jobs: Job[] }> {
  const e = exportOf(userId, resources, over);
  await store.createExport(e.record, e.jobs, undefined, {});
  return e;
}

const end = (state: Job['state'], at = T0 + 1000) => (j: Job): Job => ({ ...j, state, seq: j.seq + 1, updatedAt: at, finishedAt: at });

describe('grants', () => {
  it('stores, reads, compares-and-sets and deletes a grant, under user ids Firestore could not name a document by', async () => {
    for (const userId of ['__reserved__', 'a/b/c', newUser()]) {
      const grant: Grant = { userId, refreshToken: { keyVersion: 'k', ciphertext: 'c' } as unknown as Grant['refreshToken'], resources: ['chrome.history'], oneTimeResources: [], timeBasedResources: [], state: 'ACTIVE', createdAt: T0, updatedAt: T0 };
      await store.putGrant(grant);
      expect(await store.getGrant(userId)).toEqual(grant);
      expect(await store.setGrantState(userId, 'NEEDS_CONSENT', 'ACTIVE')).toBe(false);
      expect((await store.getGrant(userId))?.state).toBe('ACTIVE');
      const before = Date.now();
      expect(await store.setGrantState(userId, 'ACTIVE', 'NEEDS_CONSENT')).toBe(true);
      const after = await store.getGrant(userId);
      expect(after?.state).toBe('NEEDS_CONSENT');
      expect(after?.updatedAt).toBeGreaterThanOrEqual(before);
      await store.deleteGrant(userId);
      expect(await store.getGrant(userId)).toBeUndefined();
      expect(await store.setGrantState(userId, 'ACTIVE', 'NEEDS_CONSENT')).toBe(false);
    }
  });
});

describe('creating exports', () => {
  it('replays an Idempotency-Key with the first export and its jobs; the key\'s record expires seven days after', async () => {
    const userId = newUser();
    const first = exportOf(userId, ['chrome.history', 'myactivity.search']);
    expect((await store.createExport(first.record, first.jobs, { userId, key: 'k1' })).created).toBe(true);
    const second = exportOf(userId, ['youtube.subscriptions']);
    const replay = await store.createExport(second.record, second.jobs, { userId, key: 'k1' });
    expect(replay).toEqual({ created: false, record: first.record, jobs: [...first.jobs].sort((a, b) => a.resource.localeCompare(b.resource)) });
    expect(await store.getExport(second.record.id)).toBeUndefined();
    const idem = (await db.doc(paths.idempotency(userId, 'k1')).get()).data();
    expect(idem).toMatchObject({ exportId: first.record.id, userId });
    expect((idem?.expireAt as { toMillis(): number }).toMillis()).toBe(T0 + 7 * DAY);
    // Another user's same key is another key.
    const theirs = exportOf(newUser(), ['chrome.history']);
    expect((await store.createExport(theirs.record, theirs.jobs, { userId: theirs.record.userId, key: 'k1' })).created).toBe(true);
  });

  it('admits by the ledger\'s current facts: a group is busy while its job lives, an export counts while it runs', async () => {
    const userId = newUser();
    const limits = { exportsPerDay: 10, concurrentExports: 1 };
    const a = exportOf(userId, ['chrome.history']);
    await store.createExport(a.record, a.jobs, undefined, { limits });
    const busy = exportOf(userId, ['chrome.history']);
    expect(await refusalOf(store.createExport(busy.record, busy.jobs, undefined, {}))).toMatchObject({ status: 409, code: 'RESOURCE_GROUP_BUSY' });
    const other = exportOf(userId, ['myactivity.search']);
    expect(await refusalOf(store.createExport(other.record, other.jobs, undefined, { limits }))).toMatchObject({ status: 429, code: 'CONCURRENT_EXPORT_LIMIT' });
    // The job ends (the export with it): the group and the slot are free.
    await store.updateJob(a.jobs[0]!.id, end('SUCCEEDED'));
    expect((await store.createExport(busy.record, busy.jobs, undefined, { limits })).created).toBe(true);
    // Without an admission the ledger is neither read nor written.
    const free = exportOf(userId, ['chrome.history']);
    expect((await store.createExport(free.record, free.jobs)).created).toBe(true);
    expect((await store.liveJobsOfUser(userId)).map((j) => j.id)).toEqual([busy.jobs[0]!.id]);
  });
});

describe('reading exports and jobs', () => {
  it('pages a user\'s exports newest first (the id breaking ties), and refuses a page token it did not issue', async () => {
    const userId = newUser();
    const made: ExportRecord[] = [];
    for (const [i, at] of [T0, T0 + 1, T0 + 1, T0 + 2].entries()) made.push((await created(userId, [`g${i}`], { createdAt: at })).record);
    await created(newUser(), ['g0'], { createdAt: T0 + 5 });
    const order = [...made].sort((a, b) => b.createdAt - a.createdAt || (b.id < a.id ? -1 : 1)).map((r) => r.id);
    const first = await store.listExports(userId, { limit: 3 });
    expect(first.exports.map((r) => r.id)).toEqual(order.slice(0, 3));
    const rest = await store.listExports(userId, { limit: 3, pageToken: first.nextPageToken! });
    expect(rest).toEqual({ exports: [made.find((r) => r.id === order[3])] });
    expect(await store.listExports(userId, { limit: 4 })).not.toHaveProperty('nextPageToken');
    for (const bad of ['%%%', Buffer.from('[1]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url')]) {
      expect(await refusalOf(store.listExports(userId, { limit: 3, pageToken: bad }))).toMatchObject({ status: 400, field: 'pageToken' });
    }
  });

  it('lists a page of exports with every job of each, as listJobs has them, in the same order and pages', async () => {
    const userId = newUser();
    const made = [await created(userId, ['b', 'a', 'c'], { createdAt: T0 }), await created(userId, ['z'], { createdAt: T0 + 1 }), await created(userId, ['m', 'k'], { createdAt: T0 + 2 })];
    await created(newUser(), ['a'], { createdAt: T0 + 3 });
    await store.updateJob(made[0]!.jobs[1]!.id, end('SUCCEEDED'));
    const first = await store.listExportsWithJobs(userId, { limit: 2 });
    const plain = await store.listExports(userId, { limit: 2 });
    expect(first.exports.map((e) => e.record)).toEqual(plain.exports);
    expect(first.nextPageToken).toBe(plain.nextPageToken);
    for (const e of first.exports) expect(e.jobs).toEqual(await store.listJobs(e.record.id));
    expect(first.exports.map((e) => e.jobs.map((j) => j.resource))).toEqual([['k', 'm'], ['z']]);
    const rest = await store.listExportsWithJobs(userId, { limit: 2, pageToken: first.nextPageToken! });
    expect(rest.exports.map((e) => [e.record.id, e.jobs.map((j) => [j.resource, j.state])])).toEqual([[made[0]!.record.id, [['a', 'SUCCEEDED'], ['b', 'INITIATING'], ['c', 'INITIATING']]]]);
    expect(rest).not.toHaveProperty('nextPageToken');
    // An export whose records are being deleted lists the jobs that remain.
    await db.doc(paths.job(made[2]!.jobs[0]!.id)).delete();
    expect((await store.listExportsWithJobs(userId, { limit: 1 })).exports[0]!.jobs.map((j) => j.id)).toEqual([made[2]!.jobs[1]!.id]);
    expect(await refusalOf(store.listExportsWithJobs(userId, { limit: 1, pageToken: '%%%' }))).toMatchObject({ status: 400, field: 'pageToken' });
  });

  it('decodes only the tokens it encodes', () => {
    const token = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    expect(decodePageToken(token([5, 'abc']))).toEqual({ createdAt: 5, id: 'abc' });
    for (const v of [[5, 'abc', 1], ['5', 'abc'], [5, 6], { 0: 5, 1: 'abc', length: 2 }, null]) expect(decodePageToken(token(v))).toBeUndefined();
    expect(decodePageToken('not json')).toBeUndefined();
  });

  it('lists an export\'s jobs by group, finds the jobs following a Google job, and reads one', async () => {
    const userId = newUser();
    const { record, jobs } = await created(userId, ['youtube.subscriptions', 'chrome.history']);
    expect((await store.listJobs(record.id)).map((j) => j.resource)).toEqual(['chrome.history', 'youtube.subscriptions']);
    const googleJob = `g-${id()}`;
    await store.updateJob(jobs[0]!.id, (j) => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: googleJob, archiveJobIds: [googleJob] }));
    expect((await store.jobsFollowing(googleJob)).map((j) => j.id)).toEqual([jobs[0]!.id]);
    expect(await store.jobsFollowing('nobody')).toEqual([]);
    expect(await store.getJob(id())).toBeUndefined();
  });
});

describe('updating jobs', () => {
  it('writes the decision whole (dropped fields go), writes nothing when the decision is none, and answers a missing job with undefined', async () => {
    const { jobs } = await created(newUser(), ['chrome.history']);
    const jobId = jobs[0]!.id;
    const { nextCheckAt: _n, ...without } = jobs[0]!;
    const update = await store.updateJob(jobId, () => ({ ...without, checks: 4 }));
    expect(update?.before).toEqual(jobs[0]);
    expect(await store.getJob(jobId)).toEqual({ ...without, checks: 4 });
    expect(await store.updateJob(jobId, () => undefined)).toBeUndefined();
    expect(await store.getJob(jobId)).toEqual({ ...without, checks: 4 });
    expect(await store.updateJob(id(), (j) => j)).toBeUndefined();
  });

  it('re-derives the export\'s state when a job ends, at the job\'s time, and only then', async () => {
    const { record, jobs } = await created(newUser(), ['chrome.history', 'myactivity.search']);
    const [a, b] = jobs as [Job, Job];
    await store.updateJob(a.id, (j) => ({ ...j, checks: 1, updatedAt: T0 + 500 }));
    expect(await store.getExport(record.id)).toMatchObject({ state: 'RUNNING', updatedAt: T0 });
    await store.updateJob(a.id, end('SUCCEEDED', T0 + 1000));
    expect(await store.getExport(record.id)).toMatchObject({ state: 'RUNNING', updatedAt: T0 });
    await store.updateJob(b.id, end('FAILED', T0 + 2000));
    expect(await store.getExport(record.id)).toMatchObject({ state: 'PARTIAL', updatedAt: T0 + 2000 });
    // An ended job changed again (a late field) does not re-derive.
    await store.updateJob(b.id, (j) => ({ ...j, updatedAt: T0 + 3000 }));
    expect((await store.getExport(record.id))?.updatedAt).toBe(T0 + 2000);
    const single = await created(newUser(), ['chrome.history']);
    await store.updateJob(single.jobs[0]!.id, end('CANCELLED', T0 + 4000));
    expect(await store.getExport(single.record.id)).toMatchObject({ state: 'CANCELLED', updatedAt: T0 + 4000 });
  });

  it('records progress only for a copying job at the same seq (the copy-progress event through the store)', async () => {
    const { jobs } = await created(newUser(), ['chrome.history']);
    const jobId = jobs[0]!.id;
    const progress = (seq: number, bytesCopied: number) => transitions.apply(jobId, { type: 'copy-progress', bytesCopied }, { seq });
    expect((await progress(0, 10)).applied).toBe(false);
    await store.updateJob(jobId, (j) => ({ ...j, state: 'COPYING', seq: 2 }));
    expect((await progress(1, 10)).applied).toBe(false);
    expect((await progress(2, 512)).applied).toBe(true);
    expect((await store.getJob(jobId))?.bytesCopied).toBe(512);
    expect((await transitions.apply(id(), { type: 'copy-progress', bytesCopied: 1 }, { seq: 2 })).applied).toBe(false);
  });

  it('postpones a live job only at its seq, never one without a due time (the sweeper\u2019s redelivered event)', async () => {
    const { jobs } = await created(newUser(), ['chrome.history', 'myactivity.search']);
    const [live, ended] = jobs as [Job, Job];
    const redeliver = (jobId: string, seq: number) => transitions.apply(jobId, { type: 'redelivered', nextCheckAt: T0 + 9, redelivery: 1 }, { seq });
    expect((await redeliver(live.id, 1)).applied).toBe(false);
    expect((await redeliver(live.id, 0)).applied).toBe(true);
    expect((await store.getJob(live.id))?.nextCheckAt).toBe(T0 + 9);
    await store.updateJob(ended.id, (j) => {
      const { nextCheckAt: _n, ...rest } = j;
      return { ...rest, state: 'FAILED', seq: 1 };
    });
    expect((await redeliver(ended.id, 1)).applied).toBe(false);
    expect(await store.getJob(ended.id)).not.toHaveProperty('nextCheckAt');
  });
});

describe('live and overdue jobs', () => {
  it('lists the user\'s live jobs from the ledger, none for a user without one', async () => {
    const userId = newUser();
    expect(await store.liveJobsOfUser(userId)).toEqual([]);
    const { jobs } = await created(userId, ['chrome.history', 'myactivity.search']);
    await store.updateJob(jobs[1]!.id, end('SUCCEEDED'));
    expect((await store.liveJobsOfUser(userId)).map((j) => j.id)).toEqual([jobs[0]!.id]);
  });

  it('lists overdue jobs by due time, up to the limit', async () => {
    const own = new FirestoreExportStore(createFirestore({ projectId: 'demo-firestore-overdue' }));
    const userId = newUser();
    const e = exportOf(userId, ['a', 'b', 'c', 'd']);
    const dues = [T0 + 30, T0 + 10, T0 + 20, T0 + 40];
    await own.createExport(e.record, e.jobs.map((j, i) => ({ ...j, nextCheckAt: dues[i] })));
    expect((await own.listOverdueJobs(T0 + 30, 2)).map((j) => j.nextCheckAt)).toEqual([T0 + 10, T0 + 20]);
    expect((await own.listOverdueJobs(T0 + 30, 10)).map((j) => j.nextCheckAt)).toEqual([T0 + 10, T0 + 20, T0 + 30]);
  });
});
