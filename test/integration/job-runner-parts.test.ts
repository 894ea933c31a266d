/**
 * Large archives copied as byte ranges in separate tasks, on the real Firestore store (emulator),
 * the real copier, the Cloud Storage stand-in and a signed-URL stand-in: the copy step records a
 * plan and enqueues one 'copy-part' task per range; the part that completes the set hands over to
 * a copy task that composes, checks the combined CRC32C against the source and goes on. The
 * queue is driven by hand, so tasks run shuffled, twice, concurrently or never (then the sweeper
 * path must bring the missing part back).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { taskIdFor } from '../../functions/src/adapters/cloud-tasks-queue';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { HttpRequest, HttpResponse } from '../../functions/src/http/http-types';
import { createTaskHandler } from '../../functions/src/http/task-handler';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens } from '../../functions/src/pipeline/access-tokens';
import { JobRunner } from '../../functions/src/pipeline/job-runner';
import type { TaskOutcome } from '../../functions/src/pipeline/task-outcome';
import { Sweeper } from '../../functions/src/pipeline/sweeper';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { removeFixtures, startArchiveHttpServer, writeArchiveFixture, type ArchiveFixture, type ArchiveHttpServer } from '../support/archive-http-server';

const BUCKET = 'job-runner-parts';
const MiB = 1024 * 1024;
let db: Firestore;
let store: FirestoreExportStore;
let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;
let big: ArchiveFixture;
let small: ArchiveFixture;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
const logger = createLogger({ level: 'silent' });

/** What getState answers for each job: its archives' paths on the signed-URL stand-in. */
const archivesOf = new Map<string, string[]>();
const api: PortabilityApi = {
  initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
  getState: async (_token, archiveJobId) => ({
    name: `archiveJobs/${archiveJobId}/portabilityArchiveState`,
    state: 'COMPLETE',
    urls: (archivesOf.get(archiveJobId) ?? []).map((p) => `${source.origin}${p}?X-Goog-Signature=secret-${randomBytes(4).toString('hex')}`),
  }),
  retry: async () => ({ archiveJobId: 'g2' }),
  cancel: async () => undefined,
  resetAuthorization: async () => undefined,
  checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
};

/** `parallel: null` leaves copying in parts unconfigured. */
function runner(queued: PipelineTask[], parallel: { minBytes: number; parts: number } | null = { minBytes: MiB, parts: 4 }): JobRunner {
  const tokens = new AccessTokens(store, async () => cipher, async () => ({ exchangeCode: async () => { throw new Error('unused'); }, refresh: async () => ({ accessToken: 'ya29.test', expiresAt: Date.now() + 3_600_000 }) }));
  return new JobRunner({
    store,
    api,
    tokens,
    queue: { enqueue: async (t) => void queued.push(t) },
    copier: async () => new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true }),
    policy: { initialSeconds: 300, maxSeconds: 3600, copyLeaseSeconds: 600 },
    maxArchiveRetries: 3,
    cipher,
    copySliceSeconds: 60,
    copyChunkBytes: 262_144,
    ...(parallel ? { parallelCopy: parallel } : {}),
    logger,
  });
}

/** A COPYING job whose Google archive job serves `paths`, as the check step leaves it. */
async function copyingJob(userId: string, paths: string[]): Promise<Job> {
  await store.putGrant({
    userId,
    refreshToken: await cipher.encrypt('1//refresh', userId),
    resources: ['myactivity.search'],
    oneTimeResources: ['myactivity.search'],
    timeBasedResources: [],
    state: 'ACTIVE',
    createdAt: 0,
    updatedAt: 0,
  });
  const now = Date.now();
  const exportId = randomBytes(10).toString('hex');
  const archiveJobId = `g-${randomBytes(6).toString('hex')}`;
  archivesOf.set(archiveJobId, paths);
  const job: Job = {
    ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'myactivity.search' }, now),
    state: 'COPYING',
    seq: 3,
    archiveJobId,
    archiveJobIds: [archiveJobId],
    readyAt: now,
    nextCheckAt: now + 600_000,
  };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: now, updatedAt: now }, [job]);
  return job;
}

const copyTask = (job: Job, seq = job.seq): PipelineTask => ({ step: 'copy', jobId: job.id, seq, delaySeconds: 0 });
const jobNow = async (job: Job): Promise<Job> => (await db.doc(`jobs/${job.id}`).get()).data() as Job;
const names = async (prefix: string): Promise<string[]> => (await storage.bucket(BUCKET).getFiles({ prefix }))[0].map((f) => f.name).sort();
const prefixOf = (job: Job): string => `${job.userId}/${job.exportId}/`;

/** Deterministic shuffle (seeded), so a failure can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Runs queued tasks (taking new ones as they appear) until the queue is empty; returns each outcome. */
async function drain(r: JobRunner, queued: PipelineTask[], opts: { seed?: number; concurrent?: boolean } = {}): Promise<Array<{ task: PipelineTask; outcome: TaskOutcome }>> {
  const ran: Array<{ task: PipelineTask; outcome: TaskOutcome }> = [];
  while (queued.length > 0) {
    // A pipeline that keeps making tasks (say, planning the same archive again and again) fails here, not by timing out.
    if (ran.length > 50) throw new Error(`still enqueuing tasks after ${ran.length}: ${JSON.stringify(queued.slice(0, 5))}`);
    const batch = opts.seed !== undefined ? shuffled(queued.splice(0), opts.seed) : queued.splice(0);
    if (opts.concurrent) {
      ran.push(...(await Promise.all(batch.map(async (task) => ({ task, outcome: await r.run(task) })))));
    } else {
      for (const task of batch) ran.push({ task, outcome: await r.run(task) });
    }
  }
  return ran;
}

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-job-runner-parts', ignoreUndefinedProperties: true });
  // The store has its own client (as a function does); the test reads what it wrote through another.
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-job-runner-parts' }));
  dir = await mkdtemp(path.join(os.tmpdir(), 'job-runner-parts-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-job-runner-parts' });
  await storage.bucket(BUCKET).create();
  big = await writeArchiveFixture(dir, 'big.zip', 3 * MiB + 12_345);
  small = await writeArchiveFixture(dir, 'small.zip', 200_000);
  source.serve('/big.zip', { fixture: big });
  source.serve('/small.zip', { fixture: small });
  source.serve('/lying.zip', { fixture: big, googHash: 'crc32c=AAAAAA==' });
});

afterAll(async () => {
  await db?.terminate();
  await Promise.all([gcs?.stop(), source?.stop()]);
  if (dir) await removeFixtures(dir);
});

describe('copying a large archive in parts, one task per part', () => {
  it('plans 4 parts, runs them shuffled with one delivered twice, composes, and goes on to the next archive', async () => {
    const job = await copyingJob('parts-shuffled', ['/big.zip', '/small.zip']);
    const queued: PipelineTask[] = [];
    const r = runner(queued);

    expect(await r.run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'archive 1: 4 of 4 part task(s) enqueued' });
    expect(queued).toEqual([0, 1, 2, 3].map((part) => ({ step: 'copy-part', jobId: job.id, seq: job.seq, part, delaySeconds: 0 })));
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', seq: job.seq, copy: { done: [], parts: { archive: 0, count: 4, size: big.size, crc32c: big.crc32c, done: [] } } });
    // Nothing of the archive was downloaded to decide: the first GET stopped at its headers.
    expect(await names(prefixOf(job))).toEqual([]);

    const parts = queued.splice(0);
    const order = shuffled(parts, 7);
    const twice = order[1] as PipelineTask;
    const ran: Array<{ task: PipelineTask; outcome: TaskOutcome }> = [];
    for (const task of [order[0], twice, twice, ...order.slice(2)] as PipelineTask[]) ran.push({ task, outcome: await r.run(task) });
    expect(ran.map((x) => x.outcome.kind)).toEqual(['done', 'done', 'dropped', 'done', 'done']);
    expect(ran[2]?.outcome.detail).toMatch(/already copied/);
    // The delivery that completed the set moved the job on and asked for a copy task (the composer).
    expect(queued).toEqual([copyTask(job, job.seq + 1)]);
    const planned = await jobNow(job);
    expect(planned).toMatchObject({ seq: job.seq + 1, bytesCopied: big.size, bytesTotal: big.size + small.size, copy: { parts: { done: [0, 1, 2, 3] } } });
    expect(await names(prefixOf(job))).toHaveLength(4);
    // A late duplicate of a part task is stale now.
    expect(await r.run(twice)).toMatchObject({ kind: 'dropped' });

    await drain(r, queued);
    const done = await jobNow(job);
    expect(done).toMatchObject({ state: 'SUCCEEDED', bytesCopied: big.size + small.size });
    expect(done.copy).toBeUndefined();
    expect(done.archives.map((a) => [a.name.replace(/.*\//, ''), a.size, a.crc32c])).toEqual([
      ['archive-1-of-2.zip', big.size, big.crc32c],
      ['archive-2-of-2.zip', small.size, small.crc32c],
    ]);
    // In the bucket: the two archives, no part left; the composite's CRC32C is the source's.
    const objects = await names(prefixOf(job));
    expect(objects.map((n) => n.replace(/.*\//, ''))).toEqual(['archive-1-of-2.zip', 'archive-2-of-2.zip']);
    const [meta] = await storage.bucket(BUCKET).file(objects[0] as string).getMetadata();
    expect(meta.crc32c).toBe(big.crc32c);
    expect(Number(meta.size)).toBe(big.size);
    const [bytes] = await storage.bucket(BUCKET).file(objects[0] as string).download(); // the client checks its CRC32C
    expect(bytes.length).toBe(big.size);
  });

  it('runs the parts concurrently, with duplicates, and still composes once', async () => {
    const job = await copyingJob('parts-concurrent', ['/big.zip']);
    const queued: PipelineTask[] = [];
    const r = runner(queued, { minBytes: MiB, parts: 3 });
    await r.run(copyTask(job));
    expect(queued).toHaveLength(3);
    queued.push(...queued.map((t) => ({ ...t })));
    const ran = await drain(r, queued, { concurrent: true, seed: 3 });
    // Exactly one delivery completed the set; exactly one copy task composed and finished the job.
    expect(ran.filter((x) => /the last one/.test(x.outcome.detail))).toHaveLength(1);
    expect(ran.filter((x) => x.task.step === 'copy' && x.outcome.kind === 'done')).toHaveLength(1);
    const done = await jobNow(job);
    expect(done).toMatchObject({ state: 'SUCCEEDED', archives: [{ size: big.size, crc32c: big.crc32c }] });
    expect(await names(prefixOf(job))).toHaveLength(1);
  });

  it('brings a lost part task back through the sweeper: the copy step enqueues only the missing part', async () => {
    const job = await copyingJob('parts-lost', ['/big.zip']);
    const queued: PipelineTask[] = [];
    const r = runner(queued);
    await r.run(copyTask(job));
    const [first, lost, ...rest] = queued.splice(0) as PipelineTask[];
    for (const task of [first, ...rest] as PipelineTask[]) await r.run(task);
    expect(queued).toEqual([]);
    const stuck = await jobNow(job);
    expect(stuck).toMatchObject({ state: 'COPYING', seq: job.seq, copy: { parts: { done: [0, 2, 3] } } });

    // Later than the copy lease: the sweeper finds the job overdue and sends its copy step again.
    const later = (stuck.nextCheckAt as number) + 60_000;
    const sweeper = new Sweeper({ store, queue: { enqueue: async (t) => void queued.push(t) }, policy: { initialSeconds: 300, maxSeconds: 3600 }, graceSeconds: 30, logger, now: () => later });
    await sweeper.sweep();
    const redelivered = queued.splice(0).filter((t) => t.jobId === job.id);
    expect(redelivered).toEqual([expect.objectContaining({ step: 'copy', seq: job.seq, redelivery: expect.any(Number) })]);
    expect(await r.run(redelivered[0] as PipelineTask)).toMatchObject({ kind: 'done', detail: 'archive 1: 1 of 4 part task(s) enqueued' });
    // The missing part only, under a new task name (the lost one's name may still be taken).
    expect(queued).toEqual([{ step: 'copy-part', jobId: job.id, seq: job.seq, part: lost?.part, delaySeconds: 0, redelivery: redelivered[0]?.redelivery }]);
    expect(taskIdFor(queued[0] as PipelineTask)).not.toBe(taskIdFor(lost as PipelineTask));
    const before = source.requests.length;
    await drain(r, queued);
    expect(source.requests.length - before).toBe(1); // that one range, nothing else downloaded again
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', archives: [{ size: big.size, crc32c: big.crc32c }] });
    expect(await names(prefixOf(job))).toHaveLength(1);
  });

  it('copies a part again when it is gone at compose time', async () => {
    const job = await copyingJob('parts-vanished', ['/big.zip']);
    const queued: PipelineTask[] = [];
    const r = runner(queued);
    await r.run(copyTask(job));
    await drain(r, queued.splice(0, 4));
    const composer = queued.splice(0);
    expect(composer).toEqual([copyTask(job, job.seq + 1)]);
    await storage.bucket(BUCKET).file(`${(await names(prefixOf(job)))[1]}`).delete();
    expect(await r.run(composer[0] as PipelineTask)).toMatchObject({ kind: 'done', detail: 'archive 1: 1 of 4 part task(s) enqueued' });
    expect(queued).toEqual([{ step: 'copy-part', jobId: job.id, seq: job.seq + 1, part: 1, delaySeconds: 0 }]);
    await drain(r, queued);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', archives: [{ crc32c: big.crc32c }] });
  });

  it('fails the job when the composite does not match the source CRC32C, leaving neither composite nor parts', async () => {
    const job = await copyingJob('parts-lying', ['/lying.zip']);
    const queued: PipelineTask[] = [];
    const r = runner(queued);
    queued.push(copyTask(job));
    await drain(r, queued, { seed: 11 });
    const failed = await jobNow(job);
    expect(failed).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: expect.stringContaining('does not match the source') } });
    expect(failed.error?.message).not.toContain('secret');
    expect(await names(prefixOf(job))).toEqual([]);
  });

  it('keeps one stream below the threshold, and for a copier without the ranged pieces', async () => {
    const job = await copyingJob('parts-small', ['/small.zip', '/big.zip']);
    const queued: PipelineTask[] = [];
    // Threshold above the big archive: no part task at all.
    expect(await runner(queued, { minBytes: 64 * MiB, parts: 4 }).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(queued).toEqual([]);
    const other = await copyingJob('parts-off', ['/big.zip']);
    expect(await runner(queued, null).run(copyTask(other))).toMatchObject({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect(queued).toEqual([]);
    expect(await jobNow(other)).toMatchObject({ state: 'SUCCEEDED', archives: [{ crc32c: big.crc32c }] });
  });
});

describe('part tasks on the wire', () => {
  it('are named {hash}-copy-part-{seq}-{part}[-r{window}]', () => {
    const jobId = 'ab'.repeat(10);
    expect(taskIdFor({ jobId, step: 'copy-part', seq: 5, part: 2 })).toMatch(/^[0-9a-f]{24}-copy-part-5-2$/);
    expect(taskIdFor({ jobId, step: 'copy-part', seq: 5, part: 2, redelivery: 9 })).toMatch(/^[0-9a-f]{24}-copy-part-5-2-r9$/);
    expect(taskIdFor({ jobId, step: 'copy', seq: 5 })).toMatch(/^[0-9a-f]{24}-copy-5$/);
  });

  it('the copy handler passes part and redelivery on, and drops a part without copy-part or copy-part without a part', async () => {
    const seen: PipelineTask[] = [];
    const fakeRunner = { run: async (t: PipelineTask) => (seen.push(t), { kind: 'done', detail: 'ok' }), failById: async () => undefined } as unknown as JobRunner;
    const handle = createTaskHandler({
      runner: fakeRunner,
      verifier: { check: async () => undefined },
      steps: ['copy', 'copy-part'],
      retryBudget: 5,
      projectId: 'demo-job-runner-parts',
      logger,
    });
    const deliver = async (body: unknown): Promise<{ status: number; body: unknown }> => {
      const out = { status: 0, body: undefined as unknown };
      const res: HttpResponse = {
        status(code) {
          out.status = code;
          return res;
        },
        set: () => res,
        json(b) {
          out.body = b;
        },
        send(b) {
          out.body = b;
        },
        end() {},
        headersSent: false,
      };
      const req: HttpRequest = { method: 'POST', path: '/', headers: { authorization: 'Bearer x' }, query: {}, body };
      await handle(req, res);
      return out;
    };
    const jobId = 'cd'.repeat(10);
    expect(await deliver({ jobId, step: 'copy-part', seq: 4, part: 3 })).toMatchObject({ status: 200, body: { outcome: 'done' } });
    // A sweeper redelivery says so in its body: the copy step names the part tasks it sends again after it.
    expect(await deliver({ jobId, step: 'copy', seq: 4, redelivery: 7 })).toMatchObject({ status: 200, body: { outcome: 'done' } });
    expect(seen).toEqual([
      { jobId, step: 'copy-part', seq: 4, part: 3, delaySeconds: 0 },
      { jobId, step: 'copy', seq: 4, redelivery: 7, delaySeconds: 0 },
    ]);
    for (const bad of [{ jobId, step: 'copy-part', seq: 4 }, { jobId, step: 'copy', seq: 4, part: 0 }, { jobId, step: 'copy-part', seq: 4, part: 32 }, { jobId, step: 'copy-part', seq: 4, part: -1 }]) {
      expect(await deliver(bad)).toMatchObject({ status: 200, body: { error: { code: 'DROPPED' } } });
    }
    expect(seen).toHaveLength(2);
  });
});
