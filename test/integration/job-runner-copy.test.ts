/**
 * The copy step's resumability, on the real Firestore store (emulator): a slice that reaches its
 * deadline hands over to a new task with the session kept (encrypted) on the job; a copy that
 * dies part-way is resumed by the redelivered task; archives already copied are not copied again;
 * data past Google's 14 days ends the job with DATA_EXPIRED.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { newJob } from '../../functions/src/domain/job';
import type { Job, StoredArchive } from '../../functions/src/domain/model';
import { CopyInterruptedError } from '../../functions/src/domain/errors';
import type { ArchiveCopier, CopyCheckpoint, CopyResumeOptions } from '../../functions/src/domain/ports/archive-copier';
import type { PipelineTask } from '../../functions/src/domain/ports/task-queues';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens } from '../../functions/src/pipeline/access-tokens';
import { JobRunner } from '../../functions/src/pipeline/job-runner';

let db: Firestore;
let store: FirestoreExportStore;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
const DAY = 86_400_000;

const api: PortabilityApi = {
  initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
  getState: async () => ({ name: 'archiveJobs/g1/portabilityArchiveState', state: 'COMPLETE', urls: ['https://storage.googleapis.com/a/1.zip?sig=1', 'https://storage.googleapis.com/a/2.zip?sig=2'] }),
  retry: async () => ({ archiveJobId: 'g2' }),
  cancel: async () => undefined,
  resetAuthorization: async () => undefined,
  checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
};

type CopyCall = { objectName: string; resume?: CopyResumeOptions };

function runner(copier: ArchiveCopier, queued: PipelineTask[], opts: { now?: () => number; sliceSeconds?: number } = {}): JobRunner {
  const tokens = new AccessTokens(store, async () => cipher, async () => ({ exchangeCode: async () => { throw new Error('unused'); }, refresh: async () => ({ accessToken: 'ya29.test', expiresAt: Date.now() + 3_600_000 }) }));
  return new JobRunner({
    store,
    api,
    tokens,
    queue: { enqueue: async (t) => void queued.push(t) },
    copier: async () => copier,
    policy: { initialSeconds: 300, maxSeconds: 3600 },
    maxArchiveRetries: 3,
    cipher,
    copySliceSeconds: opts.sliceSeconds ?? 60,
    copyChunkBytes: 262_144,
    logger: createLogger({ level: 'silent' }),
    ...(opts.now ? { now: opts.now } : {}),
  });
}

async function copyingJob(userId: string, readyAt = Date.now()): Promise<Job> {
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
  const exportId = randomBytes(10).toString('hex');
  const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'myactivity.search' }, readyAt), state: 'COPYING', seq: 3, archiveJobId: 'g1', archiveJobIds: ['g1'], readyAt };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['myactivity.search'], createdAt: readyAt, updatedAt: readyAt }, [job]);
  return job;
}

const stored = (name: string): StoredArchive => ({ bucket: 'b', name, size: 10, crc32c: 'AAAAAA==' });
const task = (job: Job, seq = job.seq): PipelineTask => ({ step: 'copy', jobId: job.id, seq, delaySeconds: 0 });

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-job-runner-copy', ignoreUndefinedProperties: true });
  // The store has its own client (as a function does); the test reads what it wrote through another.
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-job-runner-copy' }));
});

afterAll(async () => {
  await db?.terminate();
});

describe('the copy step', () => {
  it('hands over to a new task at the slice deadline, keeping the session encrypted, and resumes it', async () => {
    const job = await copyingJob('slicer');
    const calls: CopyCall[] = [];
    const checkpoint: CopyCheckpoint = { uploadUri: 'https://storage.googleapis.com/upload/storage/v1/b/b/o?upload_id=SECRET-SESSION', size: 10, crc32c: 'AAAAAA==' };
    const copier: ArchiveCopier = {
      copy: async (_url, objectName, _p, resume) => {
        calls.push({ objectName, ...(resume ? { resume } : {}) });
        if (calls.length === 1) return stored(objectName); // archive 1 of 2 fits in the slice
        if (calls.length === 2) {
          await resume?.onCheckpoint?.(checkpoint);
          await new Promise((resolve) => resume?.signal?.addEventListener('abort', resolve));
          throw new CopyInterruptedError();
        }
        return stored(objectName);
      },
      deletePrefix: async () => 0,
    };
    const queued: PipelineTask[] = [];
    expect(await runner(copier, queued, { sliceSeconds: 0.3 }).run(task(job))).toMatchObject({ kind: 'done' });
    const raw = (await db.doc(`jobs/${job.id}`).get()).data() as Job;
    expect(raw).toMatchObject({ state: 'COPYING', seq: job.seq + 1, copy: { done: [{ name: expect.stringMatching(/archive-1-of-2/) }], session: { archive: 1 } } });
    expect(JSON.stringify(raw)).not.toContain('SECRET-SESSION');
    expect(queued).toEqual([{ step: 'copy', jobId: job.id, seq: job.seq + 1, delaySeconds: 0 }]);

    // The old task is stale now; the new one resumes archive 2 from the saved session, archive 1 is not copied again.
    expect(await runner(copier, []).run(task(job))).toMatchObject({ kind: 'dropped' });
    expect(await runner(copier, []).run(task(job, job.seq + 1))).toMatchObject({ kind: 'done' });
    expect(calls.map((c) => c.objectName.replace(/.*\//, ''))).toEqual(['archive-1-of-2.zip', 'archive-2-of-2.zip', 'archive-2-of-2.zip']);
    expect(calls[2]?.resume?.checkpoint).toEqual(checkpoint);
    const done = (await db.doc(`jobs/${job.id}`).get()).data() as Job;
    expect(done).toMatchObject({ state: 'SUCCEEDED', archives: [{}, {}] });
    expect(done.copy).toBeUndefined();
  });

  it('resumes a copy that died part-way when Cloud Tasks delivers the task again', async () => {
    const job = await copyingJob('crasher');
    const checkpoint: CopyCheckpoint = { uploadUri: 'https://storage.googleapis.com/upload?upload_id=S2', size: 10 };
    let calls = 0;
    const resumedWith: Array<CopyCheckpoint | undefined> = [];
    const copier: ArchiveCopier = {
      copy: async (_url, objectName, _p, resume) => {
        calls++;
        if (objectName.includes('archive-1-')) return stored(objectName);
        resumedWith.push(resume?.checkpoint);
        if (calls <= 4) {
          if (!resume?.checkpoint) await resume?.onCheckpoint?.(checkpoint);
          throw new Error('connection reset');
        }
        return stored(objectName);
      },
      deletePrefix: async () => 0,
    };
    // In-place resumes exhausted: the error goes up, the task handler answers 500 and Cloud Tasks redelivers.
    await expect(runner(copier, []).run(task(job))).rejects.toThrow('connection reset');
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'COPYING', seq: job.seq, copy: { done: [{}], session: { archive: 1 } } });
    expect(await runner(copier, []).run(task(job))).toMatchObject({ kind: 'done' });
    // every attempt after the first resumed the same session
    expect(resumedWith.slice(1).every((c) => c?.uploadUri === checkpoint.uploadUri)).toBe(true);
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'SUCCEEDED' });
  });

  it('fails the job with DATA_EXPIRED once Google no longer keeps the archive', async () => {
    const job = await copyingJob('late', Date.now() - 15 * DAY);
    const copier: ArchiveCopier = { copy: async () => { throw new Error('must not copy'); }, deletePrefix: async () => 0 };
    expect(await runner(copier, []).run(task(job))).toMatchObject({ kind: 'done' });
    expect((await db.doc(`jobs/${job.id}`).get()).data()).toMatchObject({ state: 'FAILED', error: { code: 'DATA_EXPIRED' } });
  });
});
