/**
 * What the copy steps guarantee, driven through the job runner on the real Firestore store
 * (emulator) with scripted copiers (the copier has its own tests against the Cloud Storage
 * stand-in): a signed URL that expired is fetched again, a dropped stream is resumed in place a
 * few times, a rejected archive or a vanished Google archive fails the job COPY_FAILED, progress
 * is recorded at most once a second, a job that ends during its copy loses its objects, the
 * archives' total is measured once, and a large archive's parts are planned, copied and composed.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { ArchiveNeedsPartsError, ArchivePartsMissingError, ArchiveRejectedError, ArchiveUrlExpiredError, CopyInterruptedError, PortabilityApiError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Job, StoredArchive } from '../../functions/src/domain/model';
import type { ArchiveCopier, ArchiveFacts, CopyResumeOptions } from '../../functions/src/domain/ports/archive-copier';
import type { PortabilityApi, PortabilityArchiveState } from '../../functions/src/domain/ports/portability-api';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import { DATA_RETENTION_MS } from '../../functions/src/domain/retry-policies';
import type { ArchiveIndexing } from '../../functions/src/pipeline/archive-indexing';
import type { JobRunner } from '../../functions/src/pipeline/job-runner';
import { testRunner } from '../support/job-fixtures';

let db: Firestore;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));

/** Google's answer per archive job: `n` is the getState call (1-based), so each answer can differ. */
const answers = new Map<string, { calls: number; answer: (n: number) => PortabilityArchiveState | Promise<PortabilityArchiveState> }>();
const complete = (archives: number) => (n: number): PortabilityArchiveState => ({
  name: 'archiveJobs/x/portabilityArchiveState',
  state: 'COMPLETE',
  urls: Array.from({ length: archives }, (_, i) => `https://storage.googleapis.com/a/${i + 1}.zip?sig=${n}`),
});
const api: PortabilityApi = {
  initiate: async () => ({ archiveJobId: 'unused', accessType: 'ACCESS_TYPE_ONE_TIME' }),
  getState: async (_token, archiveJobId) => {
    const a = answers.get(archiveJobId);
    if (!a) throw new Error(`no answer for ${archiveJobId}`);
    a.calls++;
    return a.answer(a.calls);
  },
  retry: async () => ({ archiveJobId: 'unused' }),
  cancel: async () => undefined,
  resetAuthorization: async () => undefined,
  checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
};

type RunnerOpts = { now?: () => number; sliceSeconds?: number; parallel?: { minBytes: number; parts: number }; indexing?: Pick<ArchiveIndexing, 'index'>; store?: FirestoreExportStore };

function runner(copier: ArchiveCopier, queued: PipelineTask[] = [], opts: RunnerOpts = {}): JobRunner {
  return testRunner(opts.store ?? store, cipher, api, {
    queue: { enqueue: async (t) => void queued.push(t) },
    copier: async () => copier,
    copySliceSeconds: opts.sliceSeconds ?? 60,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.parallel ? { parallelCopy: opts.parallel } : {}),
    ...(opts.indexing ? { indexing: opts.indexing } : {}),
  });
}

/** A COPYING job whose Google archive job answers `answer` (by default `archives` complete URLs). */
async function copyingJob(archives: number, over: Partial<Job> = {}, answer: (n: number) => PortabilityArchiveState | Promise<PortabilityArchiveState> = complete(archives)): Promise<Job> {
  const userId = `u-${randomBytes(4).toString('hex')}`;
  await store.putGrant({ userId, refreshToken: await cipher.encrypt('1//refresh', userId), resources: ['myactivity.search'], oneTimeResources: ['myactivity.search'], timeBasedResources: [], state: 'ACTIVE', createdAt: 0, updatedAt: 0 });
  const now = Date.now();
  const exportId = randomBytes(10).toString('hex');
  const archiveJobId = `g-${randomBytes(6).toString('hex')}`;
  answers.set(archiveJobId, { calls: 0, answer });
  const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'myactivity.search' }, now), state: 'COPYING', seq: 3, archiveJobId, archiveJobIds: [archiveJobId], readyAt: now, nextCheckAt: now + 600_000, ...over };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: now, updatedAt: now }, [job]);
  return job;
}

const stored = (name: string, size = 10): StoredArchive => ({ bucket: 'b', name, size, crc32c: 'AAAAAA==' });
const copyTask = (job: Job, seq = job.seq, redelivery?: number): PipelineTask => ({ step: 'copy', jobId: job.id, seq, delaySeconds: 0, ...(redelivery !== undefined ? { redelivery } : {}) });
const partTask = (job: Job, part: number | undefined, seq = job.seq): PipelineTask => ({ step: 'copy-part', jobId: job.id, seq, delaySeconds: 0, ...(part !== undefined ? { part } : {}) } as PipelineTask);
const jobNow = async (job: Job): Promise<Job> => (await db.doc(`jobs/${job.id}`).get()).data() as Job;
const getStateCalls = (job: Job): number => answers.get(job.archiveJobId as string)?.calls ?? 0;
const fileOf = (objectName: string): string => objectName.replace(/.*\//, '');
const prefixOf = (job: Job): string => `${job.userId}/${job.exportId}/${job.resource}/`;

type Call = { url: string; objectName: string; resume?: CopyResumeOptions };

/** A copier that answers each copy call with `behave` (by call number, 1-based) and records the calls and deleted prefixes. */
function scripted(behave: (n: number, call: Call, onProgress?: (bytes: number) => void) => Promise<StoredArchive>, extra: Partial<ArchiveCopier> = {}): ArchiveCopier & { calls: Call[]; deleted: string[] } {
  const calls: Call[] = [];
  const deleted: string[] = [];
  return {
    calls,
    deleted,
    copy: async (url, objectName, onProgress, resume) => {
      const call = { url, objectName, ...(resume ? { resume } : {}) };
      calls.push(call);
      return behave(calls.length, call, onProgress);
    },
    deletePrefix: async (prefix) => {
      deleted.push(prefix);
      return 3;
    },
    ...extra,
  };
}

/**
 * The store, with every job write it applies recorded (`after`), and a switch that makes the next
 * write fail as Firestore would when unavailable.
 */
function observedStore(): { store: FirestoreExportStore; writes: Job[]; failNext: () => void } {
  const writes: Job[] = [];
  let failing = false;
  const observed = new Proxy(store, {
    get(target, key, receiver) {
      if (key !== 'updateJob') return Reflect.get(target, key, receiver) as unknown;
      return async (...args: Parameters<FirestoreExportStore['updateJob']>) => {
        if (failing) {
          failing = false;
          throw new Error('14 UNAVAILABLE: the emulator is down');
        }
        const updated = await target.updateJob(...args);
        if (updated) writes.push(updated.after);
        return updated;
      };
    },
  });
  return { store: observed, writes, failNext: () => void (failing = true) };
}

/** Resolves when the copy's signal aborts (at once if it already has: a slow machine may pass the deadline first). */
async function abortOf(signal: AbortSignal | undefined): Promise<void> {
  if (!signal) throw new Error('the copy got no signal');
  if (signal.aborted) return;
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-copy-step', ignoreUndefinedProperties: true });
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-copy-step' }));
});

afterAll(async () => {
  await db?.terminate();
});

describe('a signed URL that expired', () => {
  it('is fetched again from Google and the copy goes on with the fresh URL', async () => {
    const job = await copyingJob(2);
    const copier = scripted(async (n, call) => {
      if (n === 2 || n === 3) throw new ArchiveUrlExpiredError();
      return stored(call.objectName);
    });
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 2 archive(s)' });
    // Archive 1 with the first URLs; archive 2 expired twice, each time with URLs fetched again.
    expect(copier.calls.map((c) => [fileOf(c.objectName), c.url.replace(/.*\/a\//, '')])).toEqual([
      ['archive-1-of-2.zip', '1.zip?sig=1'],
      ['archive-2-of-2.zip', '2.zip?sig=1'],
      ['archive-2-of-2.zip', '2.zip?sig=2'],
      ['archive-2-of-2.zip', '2.zip?sig=3'],
    ]);
    expect(getStateCalls(job)).toBe(3);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', archives: [{ name: expect.stringMatching(/archive-1-of-2/) }, { name: expect.stringMatching(/archive-2-of-2/) }] });
  });

  it('fails the job COPY_FAILED after three fresh sets of URLs still expired', async () => {
    const job = await copyingJob(1);
    const copier = scripted(async () => {
      throw new ArchiveUrlExpiredError('The signed archive URL has expired (403)');
    });
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'job failed: COPY_FAILED' });
    expect(copier.calls).toHaveLength(4);
    expect(getStateCalls(job)).toBe(4);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'The signed archive URL has expired (403)' } });
  });

  it('fails the job COPY_FAILED when the fresh answer has fewer URLs than before', async () => {
    const job = await copyingJob(2, {}, (n) => complete(n === 1 ? 2 : 1)(n));
    const copier = scripted(async (n, call) => {
      if (n === 2) throw new ArchiveUrlExpiredError();
      return stored(call.objectName);
    });
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'job failed: COPY_FAILED' });
    expect(copier.calls).toHaveLength(2);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'Google returned fewer archive URLs than before' } });
  });
});

describe('failures of a copy', () => {
  it('an archive the copier rejects fails the job at once, without another attempt', async () => {
    const job = await copyingJob(2);
    const copier = scripted(async () => {
      throw new ArchiveRejectedError('The archive does not match its declared CRC32C');
    });
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'job failed: COPY_FAILED' });
    expect(copier.calls).toHaveLength(1);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'The archive does not match its declared CRC32C' } });
  });

  it('a dropped stream is resumed in place twice; the third drop goes to Cloud Tasks, the job still copying', async () => {
    const recovers = await copyingJob(1);
    const flaky = scripted(async (n, call) => {
      if (n <= 2) throw new Error('socket hang up');
      return stored(call.objectName);
    });
    expect(await runner(flaky).run(copyTask(recovers))).toMatchObject({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect(flaky.calls).toHaveLength(3);
    expect(await jobNow(recovers)).toMatchObject({ state: 'SUCCEEDED' });

    const job = await copyingJob(1);
    const broken = scripted(async () => {
      throw new Error('socket hang up');
    });
    await expect(runner(broken).run(copyTask(job))).rejects.toThrow('socket hang up');
    expect(broken.calls).toHaveLength(3);
    expect(getStateCalls(job)).toBe(1);
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', seq: job.seq });
  });

  it('fails the job COPY_FAILED when Google no longer offers the archive, without copying', async () => {
    for (const answer of [{ state: 'FAILED', urls: [] }, { state: 'COMPLETE', urls: [] }] as const) {
      const job = await copyingJob(1, {}, () => ({ name: 'archiveJobs/x/portabilityArchiveState', ...answer, urls: [...answer.urls] }));
      const copier = scripted(async () => {
        throw new Error('must not copy');
      });
      expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'job failed: COPY_FAILED' });
      expect(copier.calls).toEqual([]);
      expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: `The archive is no longer available (state ${answer.state})` } });
    }
  });

  it('classifies a failed getState: a refused token fails the job, an outage is retried', async () => {
    const refused = await copyingJob(1, {}, () => {
      throw new PortabilityApiError(403, 'PERMISSION_DENIED', 'The caller does not have permission');
    });
    const copier = scripted(async () => {
      throw new Error('must not copy');
    });
    expect(await runner(copier).run(copyTask(refused))).toMatchObject({ kind: 'done', detail: 'job failed: RESOURCE_NOT_AUTHORIZED' });
    expect(await jobNow(refused)).toMatchObject({ state: 'FAILED', error: { code: 'RESOURCE_NOT_AUTHORIZED' } });

    // On getState a failed precondition is a refused request, not initiate's 24-hour cooldown.
    const precondition = await copyingJob(1, {}, () => {
      throw new PortabilityApiError(400, 'FAILED_PRECONDITION', 'The archive job is not complete');
    });
    expect(await runner(copier).run(copyTask(precondition))).toMatchObject({ kind: 'done', detail: 'job failed: INVALID_REQUEST' });

    const outage = await copyingJob(1, {}, () => {
      throw new PortabilityApiError(503, 'UNAVAILABLE', 'Backend unavailable');
    });
    expect(await runner(copier).run(copyTask(outage))).toMatchObject({ kind: 'retry' });
    expect(await jobNow(outage)).toMatchObject({ state: 'COPYING', seq: outage.seq });
    expect(copier.calls).toEqual([]);
  });

  it('ends with DATA_EXPIRED only once the 14 days Google keeps the archive are over', async () => {
    const readyAt = Date.now() - DATA_RETENTION_MS - 60_000;
    const job = await copyingJob(1, { readyAt });
    const copier = scripted(async (_n, call) => stored(call.objectName));
    // At the last millisecond of the 14 days it still copies; a millisecond later it does not.
    expect(await runner(copier, [], { now: () => readyAt + DATA_RETENTION_MS }).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 1 archive(s)' });
    const late = await copyingJob(1, { readyAt });
    expect(await runner(copier, [], { now: () => readyAt + DATA_RETENTION_MS + 1 }).run(copyTask(late))).toMatchObject({ kind: 'done', detail: 'job failed: DATA_EXPIRED' });
    expect(copier.calls).toHaveLength(1);
    expect(await jobNow(late)).toMatchObject({ state: 'FAILED', error: { code: 'DATA_EXPIRED' } });
  });
});

describe('what a copy records', () => {
  it('records progress over the archives copied so far, at most once a second', async () => {
    let clock = Date.now();
    const job = await copyingJob(3, { copy: { done: [stored('u/e/r/archive-1-of-3.zip', 1000)] } });
    const { store: observed, writes } = observedStore();
    const copier = scripted(async (n, call, onProgress) => {
      if (n === 1) return stored(call.objectName, 500);
      onProgress?.(100);
      await until(async () => writes.some((w) => w.bytesCopied === 1600), 'the first progress write');
      clock += 999;
      onProgress?.(200); // within the second: not written
      clock += 1;
      onProgress?.(300); // a second after the first: written
      await until(async () => writes.some((w) => w.bytesCopied === 1800), 'the second progress write');
      // Like the real copier, a copy stops when its signal aborts: neither write ended the copy.
      if (call.resume?.signal?.aborted) throw new CopyInterruptedError();
      return stored(call.objectName, 400);
    });
    expect(await runner(copier, [], { now: () => clock, store: observed }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 3 archive(s)' });
    expect(writes.map((w) => [w.state, w.bytesCopied])).toEqual([
      ['COPYING', 0], // archive 2 saved as done
      ['COPYING', 1600],
      ['COPYING', 1800],
      ['SUCCEEDED', 1900],
    ]);
  });

  it('a progress write that fails does not fail the copy', async () => {
    const job = await copyingJob(1);
    const { store: observed, failNext } = observedStore();
    const copier = scripted(async (_n, call, onProgress) => {
      failNext();
      onProgress?.(100);
      await new Promise((r) => setTimeout(r, 50));
      return stored(call.objectName, 400);
    });
    expect(await runner(copier, [], { store: observed }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', bytesCopied: 400 });
  });

  it('passes the chunk size on, saves each new session encrypted for its archive, and keeps the archives done', async () => {
    const job = await copyingJob(3);
    const copier = scripted(async (n, call) => {
      if (n === 2) {
        await call.resume?.onCheckpoint?.({ uploadUri: 'https://storage.googleapis.com/upload?upload_id=SESSION-2', size: 10 });
        throw new Error('socket hang up');
      }
      if (n > 2 && n < 5) throw new Error('socket hang up');
      return stored(call.objectName);
    });
    await expect(runner(copier).run(copyTask(job))).rejects.toThrow('socket hang up');
    expect(copier.calls.map((c) => c.resume?.chunkSize)).toEqual([262_144, 262_144, 262_144, 262_144]);
    // Without copying in parts configured, no archive is left to the ranged copy.
    expect(copier.calls.every((c) => c.resume?.partsFrom === undefined)).toBe(true);
    const raw = await jobNow(job);
    expect(raw).toMatchObject({ state: 'COPYING', seq: job.seq, copy: { done: [{ name: expect.stringMatching(/archive-1-of-3/) }], session: { archive: 1 } } });
    expect(JSON.stringify(raw)).not.toContain('SESSION-2');
    expect(JSON.parse(await cipher.decrypt(raw.copy?.session?.checkpoint as never, job.id))).toEqual({ uploadUri: 'https://storage.googleapis.com/upload?upload_id=SESSION-2', size: 10 });

    // The redelivered task resumes archive 2 from that session; archive 3 starts without one.
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 3 archive(s)' });
    expect(copier.calls.slice(4).map((c) => [fileOf(c.objectName), c.resume?.checkpoint?.uploadUri])).toEqual([
      ['archive-2-of-3.zip', 'https://storage.googleapis.com/upload?upload_id=SESSION-2'],
      ['archive-3-of-3.zip', undefined],
    ]);
  });

  it('records each archive done before the next, so a crash in the next copies only that one again', async () => {
    const job = await copyingJob(2);
    const broken = scripted(async (n, call) => {
      if (n === 1) return stored(call.objectName);
      throw new Error('socket hang up');
    });
    await expect(runner(broken).run(copyTask(job))).rejects.toThrow('socket hang up');
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', copy: { done: [{ name: expect.stringMatching(/archive-1-of-2/) }] } });
    const redelivered = scripted(async (_n, call) => stored(call.objectName));
    expect(await runner(redelivered).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(redelivered.calls.map((c) => fileOf(c.objectName))).toEqual(['archive-2-of-2.zip']);
  });

  it('a rejected archive fails the job even when the slice ended meanwhile', async () => {
    const job = await copyingJob(1);
    const queued: PipelineTask[] = [];
    const copier = scripted(async (_n, call) => {
      await abortOf(call.resume?.signal);
      throw new ArchiveRejectedError('The archive does not match its declared size');
    });
    expect(await runner(copier, queued, { sliceSeconds: 0.2 }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'job failed: COPY_FAILED' });
    expect(queued).toEqual([]);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'The archive does not match its declared size' } });
  });

  it('does not resume a session saved for another archive', async () => {
    const session = { archive: 0, checkpoint: await cipher.encrypt(JSON.stringify({ uploadUri: 'https://storage.googleapis.com/upload?upload_id=OLD' }), 'x') };
    const job = await copyingJob(2, { copy: { done: [stored('u/e/r/archive-1-of-2.zip')], session } });
    const copier = scripted(async (_n, call) => stored(call.objectName));
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(copier.calls.map((c) => [fileOf(c.objectName), c.resume?.checkpoint])).toEqual([['archive-2-of-2.zip', undefined]]);
  });

  it('measures the archives once for the total, and copies on when a size is unknown or measuring fails', async () => {
    const measured: string[] = [];
    const sizes = (answer: (url: string) => Promise<ArchiveFacts>): Partial<ArchiveCopier> => ({
      measure: async (url) => {
        measured.push(url);
        return answer(url);
      },
    });
    const job = await copyingJob(2);
    const copier = scripted(async (_n, call) => stored(call.objectName, call.objectName.includes('archive-1') ? 1000 : 234), sizes(async (url) => ({ size: url.includes('/1.zip') ? 1000 : 234, contentType: 'application/zip' })));
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done' });
    expect(measured).toHaveLength(2);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', bytesTotal: 1234, bytesCopied: 1234 });

    // A later slice (the total known) does not measure again.
    measured.length = 0;
    const later = await copyingJob(1, { bytesTotal: 10 });
    await runner(scripted(async (_n, call) => stored(call.objectName), sizes(async () => ({ size: 99, contentType: 'application/zip' })))).run(copyTask(later));
    expect(measured).toEqual([]);
    expect(await jobNow(later)).toMatchObject({ bytesTotal: 10 });

    for (const answer of [async (url: string) => ({ contentType: 'application/zip', ...(url.includes('/1.zip') ? { size: 5 } : {}) }), async () => Promise.reject(new Error('refused'))]) {
      const unknown = await copyingJob(2);
      expect(await runner(scripted(async (_n, call) => stored(call.objectName), sizes(answer))).run(copyTask(unknown))).toMatchObject({ kind: 'done', detail: 'copied 2 archive(s)' });
      const done = await jobNow(unknown);
      expect(done.state).toBe('SUCCEEDED');
      expect(done.bytesTotal).toBeUndefined();
    }
  });

  it('hands the archives to indexing before the job succeeds, skipping those already listed', async () => {
    const job = await copyingJob(3, { manifests: [{ archive: 0, entries: 4 }] });
    const indexed: Array<[number, string]> = [];
    const indexing: Pick<ArchiveIndexing, 'index'> = {
      index: async (j, i, archive) => {
        expect((await jobNow(j)).state).toBe('COPYING');
        indexed.push([i, fileOf(archive.name)]);
        return { entries: 10 + i, warnings: i === 2 ? [{ code: 'ARCHIVE_NOT_ZIP' as const, archive: i, message: 'not a zip' }] : [] };
      },
    };
    expect(await runner(scripted(async (_n, call) => stored(call.objectName)), [], { indexing }).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 3 archive(s)' });
    expect(indexed).toEqual([[1, 'archive-2-of-3.zip'], [2, 'archive-3-of-3.zip']]);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', manifests: [{ archive: 0, entries: 4 }, { archive: 1, entries: 11 }, { archive: 2, entries: 12 }], warnings: [{ archive: 2 }] });
  });
});

describe('a job that ends during its copy', () => {
  it('is noticed at the next progress write: the copy stops and the job’s objects are removed', async () => {
    const job = await copyingJob(1);
    const r = runner(scripted(async () => stored('unused')));
    const copier = scripted(async (_n, call, onProgress) => {
      await r.fail(await jobNow(job), { code: 'CONSENT_REVOKED', message: 'revoked' });
      onProgress?.(100);
      await abortOf(call.resume?.signal);
      throw new CopyInterruptedError();
    });
    expect(await runner(copier).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job ended (FAILED) during the copy' });
    expect(copier.deleted).toEqual([prefixOf(job)]);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', error: { code: 'CONSENT_REVOKED' }, bytesCopied: 0 });
  });

  it('when the copy completes after the job ended, removes the objects instead of succeeding', async () => {
    const job = await copyingJob(1);
    const r = runner(scripted(async () => stored('unused')));
    const copier = scripted(async (_n, call) => {
      await r.fail(await jobNow(job), { code: 'CONSENT_REVOKED', message: 'revoked' });
      return stored(call.objectName);
    });
    expect(await runner(copier).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job ended (FAILED) during the copy' });
    expect(copier.deleted).toEqual([prefixOf(job)]);
    expect(await jobNow(job)).toMatchObject({ state: 'FAILED', archives: [] });
  });

  it('removes the objects when the job was deleted (its export deleted) during the copy', async () => {
    const job = await copyingJob(1);
    const copier = scripted(async (_n, call) => {
      await db.doc(`jobs/${job.id}`).delete();
      return stored(call.objectName);
    });
    expect(await runner(copier).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job ended (gone) during the copy' });
    expect(copier.deleted).toEqual([prefixOf(job)]);
  });

  it('keeps the objects when another delivery finished the same copy', async () => {
    const job = await copyingJob(1);
    // While the first delivery copies, a second one (Cloud Tasks delivered twice) copies and finishes the job.
    const second = scripted(async (_n, call) => stored(call.objectName));
    let secondOutcome: unknown;
    const first = scripted(async (_n, call) => {
      secondOutcome = await runner(second).run(copyTask(job));
      return stored(call.objectName);
    });
    expect(await runner(first).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'another delivery finished the copy' });
    expect(secondOutcome).toEqual({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect([...first.deleted, ...second.deleted]).toEqual([]);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', archives: [{}] });
  });

  it('a stale duplicate whose job went on under a newer task leaves the objects alone', async () => {
    const job = await copyingJob(2);
    const queued: PipelineTask[] = [];
    // A duplicate delivery of the same task reaches its slice deadline first: a new task (next seq) carries on.
    const duplicate = scripted(async (n, call) => {
      if (n === 1) return stored(call.objectName);
      await abortOf(call.resume?.signal);
      throw new CopyInterruptedError();
    });
    let handedOver: unknown;
    const stale = scripted(async (n, call) => {
      if (n === 1) handedOver = await runner(duplicate, queued, { sliceSeconds: 0.2 }).run(copyTask(job));
      return stored(call.objectName);
    });
    expect(await runner(stale).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job moved on during the copy' });
    expect(handedOver).toEqual({ kind: 'done', detail: 'copy continues in the next task' });
    // The stale delivery recorded nothing and removed nothing: the new task's archives are safe.
    expect(stale.deleted).toEqual([]);
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', seq: job.seq + 1, copy: { done: [{ name: expect.stringMatching(/archive-1-of-2/) }] } });
    expect(queued).toEqual([copyTask(job, job.seq + 1)]);
    const next = scripted(async (_n, call) => stored(call.objectName));
    expect(await runner(next).run(queued[0] as PipelineTask)).toEqual({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(next.calls.map((c) => fileOf(c.objectName))).toEqual(['archive-2-of-2.zip']);
  });

  it('at the end of its slice, hands over to no new task', async () => {
    const job = await copyingJob(1);
    const r = runner(scripted(async () => stored('unused')));
    const queued: PipelineTask[] = [];
    const copier = scripted(async (_n, call) => {
      await r.fail(await jobNow(job), { code: 'CONSENT_REVOKED', message: 'revoked' });
      await abortOf(call.resume?.signal);
      throw new CopyInterruptedError();
    });
    expect(await runner(copier, queued, { sliceSeconds: 0.2 }).run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job moved on during the copy' });
    expect(queued).toEqual([]);
  });

  it('an interruption that is not the deadline is resumed like a dropped stream', async () => {
    const job = await copyingJob(1);
    const copier = scripted(async (n, call) => {
      if (n === 1) throw new CopyInterruptedError('The archive copy was interrupted: stalled');
      return stored(call.objectName);
    });
    expect(await runner(copier).run(copyTask(job))).toMatchObject({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect(copier.calls).toHaveLength(2);
  });
});

describe('a large archive in parts (scripted ranged copier)', () => {
  const source = { size: 1000, crc32c: 'CRC=', md5: 'MD5=' };

  /** A copier whose copy leaves archives of `source.size` to parts; copyPart and composeParts are recorded. */
  function parted(compose: (n: number) => Promise<StoredArchive> = async () => stored('composed', source.size)) {
    const parts: Array<{ url: string; objectName: string; index: number; count: number; size: number }> = [];
    const composes: Array<{ objectName: string; count: number; expected: unknown }> = [];
    const copier = scripted(
      async (_n, call) => {
        if (call.resume?.partsFrom === 500) throw new ArchiveNeedsPartsError(source);
        throw new Error(`partsFrom ${String(call.resume?.partsFrom)}`);
      },
      {
        copyPart: async (url, objectName, index, count, size) => void parts.push({ url, objectName, index, count, size }),
        composeParts: async (objectName, count, expected) => {
          composes.push({ objectName, count, expected });
          return compose(composes.length);
        },
      },
    );
    return Object.assign(copier, { parts, composes });
  }
  const parallel = { minBytes: 500, parts: 3 };

  it('plans the parts with the source’s checksums, copies each range once and composes them', async () => {
    const job = await copyingJob(1);
    const queued: PipelineTask[] = [];
    const copier = parted();
    const r = runner(copier, queued, { parallel });
    expect(await r.run(copyTask(job))).toEqual({ kind: 'done', detail: 'archive 1: 3 of 3 part task(s) enqueued' });
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', seq: job.seq, copy: { done: [], parts: { archive: 0, count: 3, size: 1000, crc32c: 'CRC=', md5: 'MD5=', done: [] } } });
    expect(queued.map((t) => [t.step, t.seq, t.part])).toEqual([['copy-part', job.seq, 0], ['copy-part', job.seq, 1], ['copy-part', job.seq, 2]]);
    // One request to the signed URL decided it (its headers), not retried as if it had failed.
    expect(copier.calls).toHaveLength(1);

    const tasks = queued.splice(0);
    expect(await r.run(tasks[1] as PipelineTask)).toEqual({ kind: 'done', detail: 'part 2 of 3 copied' });
    expect(await r.run(tasks[1] as PipelineTask)).toEqual({ kind: 'dropped', detail: 'part 2 of 3 already copied' });
    expect(await r.run(tasks[0] as PipelineTask)).toEqual({ kind: 'done', detail: 'part 1 of 3 copied' });
    expect(await r.run(tasks[2] as PipelineTask)).toEqual({ kind: 'done', detail: 'part 3 of 3 copied, the last one: compose enqueued' });
    expect(copier.parts.map((p) => [fileOf(p.objectName), p.index, p.count, p.size])).toEqual([
      ['archive-1-of-1.zip', 1, 3, 1000],
      ['archive-1-of-1.zip', 0, 3, 1000],
      ['archive-1-of-1.zip', 2, 3, 1000],
    ]);
    expect(copier.parts.every((p) => p.url.includes('/1.zip?sig='))).toBe(true);
    expect(queued).toEqual([copyTask(job, job.seq + 1)]);

    expect(await r.run(queued[0] as PipelineTask)).toEqual({ kind: 'done', detail: 'copied 1 archive(s)' });
    expect(copier.composes.map((c) => [fileOf(c.objectName), c.count, c.expected])).toEqual([['archive-1-of-1.zip', 3, { size: 1000, crc32c: 'CRC=', md5: 'MD5=' }]]);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', archives: [{ name: 'composed', size: 1000 }] });
  });

  it('copies as one stream with a copier that lacks either ranged piece', async () => {
    for (const drop of ['copyPart', 'composeParts'] as const) {
      const job = await copyingJob(1);
      const queued: PipelineTask[] = [];
      const copier = parted();
      delete copier[drop];
      copier.copy = async (url, objectName, _p, resume) => {
        copier.calls.push({ url, objectName, ...(resume ? { resume } : {}) });
        return stored(objectName, 1000);
      };
      expect(await runner(copier, queued, { parallel }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 1 archive(s)' });
      expect(copier.calls.map((c) => c.resume?.partsFrom)).toEqual([undefined]);
      expect(queued).toEqual([]);
    }
  });

  it('a later slice with parts configured goes on from the archives done', async () => {
    const job = await copyingJob(2, { copy: { done: [stored('u/e/r/archive-1-of-2.zip', 7)] } });
    const copier = parted();
    copier.copy = async (url, objectName) => {
      copier.calls.push({ url, objectName });
      return stored(objectName, 20);
    };
    expect(await runner(copier, [], { parallel }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(copier.calls.map((c) => fileOf(c.objectName))).toEqual(['archive-2-of-2.zip']);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', bytesCopied: 27 });
  });

  it('drops part tasks that name no part of the plan, and any when copying in parts is off', async () => {
    const job = await copyingJob(1, { copy: { done: [], parts: { archive: 0, count: 3, size: 1000, crc32c: 'CRC=', done: [] } } });
    const copier = parted();
    for (const part of [undefined, -1, 3, 1.5]) {
      expect(await runner(copier, [], { parallel }).run(partTask(job, part))).toEqual({ kind: 'dropped', detail: 'no such part in the job’s copy plan' });
    }
    expect(await runner(copier).run(partTask(job, 0))).toEqual({ kind: 'dropped', detail: 'no such part in the job’s copy plan' });
    const planless = await copyingJob(1);
    expect(await runner(copier, [], { parallel }).run(partTask(planless, 0))).toEqual({ kind: 'dropped', detail: 'no such part in the job’s copy plan' });
    expect(copier.parts).toEqual([]);
    expect(getStateCalls(job) + getStateCalls(planless)).toBe(0);
  });

  it('a part whose URL expired is copied with fresh URLs; one past the 14 days fails the job', async () => {
    const job = await copyingJob(1, { copy: { done: [], parts: { archive: 0, count: 2, size: 1000, crc32c: 'CRC=', done: [] } } });
    let expired = 1;
    const copier = parted();
    copier.copyPart = async (url, objectName, index, count, size) => {
      if (expired-- > 0) throw new ArchiveUrlExpiredError();
      copier.parts.push({ url, objectName, index, count, size });
    };
    expect(await runner(copier, [], { parallel }).run(partTask(job, 1))).toEqual({ kind: 'done', detail: 'part 2 of 2 copied' });
    expect(copier.parts.map((p) => p.url.replace(/.*\/a\//, ''))).toEqual(['1.zip?sig=2']);

    const readyAt = Date.now() - DATA_RETENTION_MS - 1000;
    const late = await copyingJob(1, { readyAt, copy: { done: [], parts: { archive: 0, count: 2, size: 1000, crc32c: 'CRC=', done: [] } } });
    expect(await runner(copier, [], { parallel }).run(partTask(late, 0))).toEqual({ kind: 'done', detail: 'job failed: DATA_EXPIRED' });
    expect(copier.parts).toHaveLength(1);
  });

  it('a part copied while the job ended removes the job’s objects; one recorded by another delivery just stops', async () => {
    const plan = { archive: 0, count: 2, size: 1000, crc32c: 'CRC=', done: [] };
    const job = await copyingJob(1, { copy: { done: [], parts: plan } });
    const copier = parted();
    const r = runner(copier, [], { parallel });
    copier.copyPart = async () => void (await r.fail(await jobNow(job), { code: 'CONSENT_REVOKED', message: 'revoked' }));
    expect(await r.run(partTask(job, 0))).toEqual({ kind: 'dropped', detail: 'job ended (FAILED) during the copy' });
    expect(copier.deleted).toEqual([prefixOf(job)]);

    const twice = await copyingJob(1, { copy: { done: [], parts: plan } });
    // The same part delivered twice: the second delivery records it while the first still copies.
    let nested: unknown;
    let depth = 0;
    copier.copyPart = async () => {
      if (depth++ === 0) nested = await r.run(partTask(twice, 1));
    };
    expect(await r.run(partTask(twice, 1))).toEqual({ kind: 'dropped', detail: 'part 2 copied, but the job moved on (or another delivery recorded it)' });
    expect(nested).toEqual({ kind: 'done', detail: 'part 2 of 2 copied' });
    expect(copier.deleted).toEqual([prefixOf(job)]);
    expect(await jobNow(twice)).toMatchObject({ state: 'COPYING', copy: { parts: { done: [1] } } });
  });

  it('a redelivered copy task enqueues only the parts not done, under its redelivery', async () => {
    const job = await copyingJob(2, { copy: { done: [stored('a1', 7)], parts: { archive: 1, count: 3, size: 1000, crc32c: 'CRC=', done: [0, 2] } } });
    const queued: PipelineTask[] = [];
    const copier = parted();
    expect(await runner(copier, queued, { parallel }).run(copyTask(job, job.seq, 4))).toEqual({ kind: 'done', detail: 'archive 2: 1 of 3 part task(s) enqueued' });
    expect(queued).toEqual([{ step: 'copy-part', jobId: job.id, seq: job.seq, part: 1, delaySeconds: 0, redelivery: 4 }]);
    expect(copier.calls).toEqual([]);
    expect(copier.composes).toEqual([]);
  });

  it('at compose: parts found missing are copied again, a composite that differs fails the job, another error is retried', async () => {
    const full = { archive: 0, count: 3, size: 1000, crc32c: 'CRC=', done: [0, 1, 2] };
    const job = await copyingJob(1, { copy: { done: [], parts: full } });
    const queued: PipelineTask[] = [];
    const missing = parted(async () => Promise.reject(new ArchivePartsMissingError([0, 2])));
    expect(await runner(missing, queued, { parallel }).run(copyTask(job, job.seq, 2))).toEqual({ kind: 'done', detail: 'archive 1: 2 of 3 part task(s) enqueued' });
    expect(queued.map((t) => [t.part, t.redelivery])).toEqual([[0, 2], [2, 2]]);
    expect(await jobNow(job)).toMatchObject({ state: 'COPYING', copy: { parts: { done: [1] } } });

    const differs = await copyingJob(1, { copy: { done: [], parts: full } });
    const rejected = parted(async () => Promise.reject(new ArchiveRejectedError('The composite does not match the source CRC32C')));
    expect(await runner(rejected, [], { parallel }).run(copyTask(differs))).toEqual({ kind: 'done', detail: 'job failed: COPY_FAILED' });
    expect(await jobNow(differs)).toMatchObject({ state: 'FAILED', error: { code: 'COPY_FAILED', message: 'The composite does not match the source CRC32C' } });

    const outage = await copyingJob(1, { copy: { done: [], parts: full } });
    const down = parted(async () => Promise.reject(new Error('compose: 503')));
    await expect(runner(down, [], { parallel }).run(copyTask(outage))).rejects.toThrow('compose: 503');
    expect(await jobNow(outage)).toMatchObject({ state: 'COPYING', copy: { parts: full } });
  });

  it('a composed archive that is not the last goes on to the next archive in the same task', async () => {
    const job = await copyingJob(2, { copy: { done: [], parts: { archive: 0, count: 3, size: 1000, crc32c: 'CRC=', done: [0, 1, 2] } } });
    const copier = parted(async () => stored('composed-1', 1000));
    copier.copy = async (url, objectName) => {
      copier.calls.push({ url, objectName });
      return stored(objectName, 20);
    };
    expect(await runner(copier, [], { parallel }).run(copyTask(job))).toEqual({ kind: 'done', detail: 'copied 2 archive(s)' });
    expect(copier.calls.map((c) => fileOf(c.objectName))).toEqual(['archive-2-of-2.zip']);
    expect(await jobNow(job)).toMatchObject({ state: 'SUCCEEDED', bytesCopied: 1020, archives: [{ name: 'composed-1' }, { size: 20 }] });
  });

  it('a job that ended before its plan was recorded plans nothing', async () => {
    const job = await copyingJob(1);
    const queued: PipelineTask[] = [];
    const copier = parted();
    const r = runner(copier, queued, { parallel });
    copier.copy = async () => {
      await r.fail(await jobNow(job), { code: 'CONSENT_REVOKED', message: 'revoked' });
      throw new ArchiveNeedsPartsError(source);
    };
    expect(await r.run(copyTask(job))).toEqual({ kind: 'dropped', detail: 'job moved on during the copy' });
    expect(queued).toEqual([]);
    expect((await jobNow(job)).copy).toBeUndefined();
  });
});
