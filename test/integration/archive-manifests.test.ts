/**
 * Manifests of copied archives, end to end below the API: the reader lists archives in the Cloud
 * Storage stand-in through the official client with ranged reads (the stand-in counts the bytes it
 * served), the manifest lands in Firestore (emulator) with its owner's key and pages, Google's index
 * turns an incomplete service into a job warning, a non-zip archive is a warning and never a failed
 * copy, and a redelivered copy task neither duplicates warnings nor lists an archive twice.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageArchiveReader } from '../../functions/src/adapters/cloud-storage-archive-reader';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreManifestStore } from '../../functions/src/adapters/firestore-manifest-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { newJob } from '../../functions/src/domain/job';
import type { Job, StoredArchive } from '../../functions/src/domain/model';
import type { ArchiveCopier } from '../../functions/src/domain/ports/archive-copier';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens } from '../../functions/src/pipeline/access-tokens';
import { ArchiveIndexing } from '../../functions/src/pipeline/archive-indexing';
import { JobRunner } from '../../functions/src/pipeline/job-runner';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { writeZipArchive } from '../../local-stack/zip-archive';

const BUCKET = 'manifests-bucket';
const logger = createLogger({ level: 'silent' });
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
let gcs: GcsServer;
let storage: Storage;
let db: Firestore;
let store: FirestoreExportStore;
let manifests: FirestoreManifestStore;
let dir: string;

/** Writes a simulator archive, uploads it through the client, and answers what the copy step would have stored. */
async function upload(name: string, opts: Parameters<typeof writeZipArchive>[1] | Buffer): Promise<StoredArchive> {
  const file = path.join(dir, `${randomBytes(4).toString('hex')}.zip`);
  if (Buffer.isBuffer(opts)) await writeFile(file, opts);
  else await writeZipArchive(file, opts);
  await storage.bucket(BUCKET).upload(file, { destination: name, resumable: false });
  const [meta] = await storage.bucket(BUCKET).file(name).getMetadata();
  return { bucket: BUCKET, name, size: Number(meta.size), crc32c: String(meta.crc32c) };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'manifests-'));
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-manifests' });
  await storage.bucket(BUCKET).create();
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId: 'demo-manifests', ignoreUndefinedProperties: true });
  const own = createFirestore({ projectId: 'demo-manifests', emulatorHost: inject('firestoreEmulatorHost') });
  store = new FirestoreExportStore(own);
  manifests = new FirestoreManifestStore(own);
});

afterAll(async () => {
  await gcs?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the archive reader over the Cloud Storage client', () => {
  for (const zip64 of [false, true]) {
    it(`lists a ${zip64 ? 'Zip64' : 'plain'} archive with ranged reads: the stand-in served what the reader counted, a small part of the archive`, async () => {
      const stored = await upload(`u/e/myactivity.search/${zip64}.zip`, { seed: `r${zip64}`, approxBytes: 3_000_000, resource: 'myactivity.search', zip64 });
      const listing = await new CloudStorageArchiveReader(storage).list(stored);
      const served = gcs.servedOf(BUCKET, stored.name);
      expect(listing.zip64).toBe(zip64);
      expect(listing.entries.map((e) => e.path)).toContain('Portability/archive_browser.json');
      expect(listing.archiveBrowser && 'json' in listing.archiveBrowser).toBe(true);
      expect(served).toEqual({ bytes: listing.bytesRead, requests: listing.reads });
      // One read: the last 64 KiB held this archive's whole directory and Google's index (written last).
      expect(served.requests).toBe(1);
      expect(served.bytes).toBeLessThan(stored.size / 20);
    });
  }

  it('says an object that is gone is damaged, not a storage outage', async () => {
    const err = await new CloudStorageArchiveReader(storage).list({ bucket: BUCKET, name: 'nowhere.zip', size: 100, crc32c: 'AAAAAA==' }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no longer in the bucket/);
  });
});

// ---------- The copy step with manifests, on the real stores ----------

const twoUrls = ['https://storage.googleapis.com/a/1.zip?sig=1', 'https://storage.googleapis.com/a/2.zip?sig=2'];
const api: PortabilityApi = {
  initiate: async () => ({ archiveJobId: 'g1', accessType: 'ACCESS_TYPE_ONE_TIME' }),
  getState: async () => ({ name: 'archiveJobs/g1/portabilityArchiveState', state: 'COMPLETE', urls: twoUrls }),
  retry: async () => ({ archiveJobId: 'g2' }),
  cancel: async () => undefined,
  resetAuthorization: async () => undefined,
  checkAccessType: async () => ({ oneTimeResources: [], timeBasedResources: [] }),
};

/** A copier whose "copies" are objects this test uploaded already. */
const copierOf = (objects: StoredArchive[]): ArchiveCopier => ({
  copy: async (url) => objects[twoUrls.indexOf(url)] as StoredArchive,
  deletePrefix: async () => 0,
});

function runner(copier: ArchiveCopier, indexing: Pick<ArchiveIndexing, 'index'>): JobRunner {
  const tokens = new AccessTokens(store, async () => cipher, async () => ({ exchangeCode: async () => { throw new Error('unused'); }, refresh: async () => ({ accessToken: 'ya29.test', expiresAt: Date.now() + 3_600_000 }) }));
  return new JobRunner({
    store, api, tokens, queue: { enqueue: async () => undefined }, copier: async () => copier, policy: { initialSeconds: 300, maxSeconds: 3600 },
    maxArchiveRetries: 3, cipher, copySliceSeconds: 60, copyChunkBytes: 262_144, indexing, logger,
  });
}

async function copyingJob(userId: string): Promise<Job> {
  await store.putGrant({ userId, refreshToken: await cipher.encrypt('1//refresh', userId), resources: ['chrome.history'], oneTimeResources: ['chrome.history'], timeBasedResources: [], state: 'ACTIVE', createdAt: 0, updatedAt: 0 });
  const exportId = randomBytes(10).toString('hex');
  const now = Date.now();
  const job: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'chrome.history' }, now), state: 'COPYING', seq: 3, archiveJobId: 'g1', archiveJobIds: ['g1'], readyAt: now };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['chrome.history'], createdAt: now, updatedAt: now }, [job]);
  return job;
}

describe('the copy step stores a manifest of every archive before the job succeeds', () => {
  it('Google marked Chrome history incomplete: a warning on the job, once, though both archives say so; the manifests carry the owner key and the entries', async () => {
    const userId = `u-${randomBytes(4).toString('hex')}`;
    const job = await copyingJob(userId);
    const objects = [
      await upload(`${userId}/${job.exportId}/chrome.history/archive-1-of-2.zip`, { seed: 'a', approxBytes: 20_000, resource: 'chrome.history', kind: 'archive-browser', incompleteServices: ['chrome.history'] }),
      await upload(`${userId}/${job.exportId}/chrome.history/archive-2-of-2.zip`, { seed: 'b', approxBytes: 400_000, resource: 'chrome.history', incompleteServices: ['chrome.history'], zip64: true }),
    ];
    const indexing = new ArchiveIndexing({ reader: async () => new CloudStorageArchiveReader(storage), manifests: async () => manifests, logger, now: Date.now });
    const outcome = await runner(copierOf(objects), indexing).run({ step: 'copy', jobId: job.id, seq: job.seq, delaySeconds: 0 });
    expect(outcome.kind).toBe('done');
    const done = (await store.getJob(job.id)) as Job;
    expect(done.state).toBe('SUCCEEDED');
    expect(done.warnings).toEqual([{ code: 'SERVICE_INCOMPLETE', archive: 0, service: 'Chrome history', message: 'Google marked Chrome history incomplete' }]);
    const second = await manifests.get(job.id, 1);
    expect(second).toMatchObject({ jobId: job.id, exportId: job.exportId, archive: 1, zip64: true, services: [{ name: 'Chrome history', incomplete: true }] });
    expect(done.manifests).toEqual([{ archive: 0, entries: (await manifests.get(job.id, 0))?.entries }, { archive: 1, entries: second?.entries }]);
    const raw = (await db.doc(`manifests/${job.id}_1`).get()).data() as Record<string, unknown>;
    expect(raw.userKey).toBe(userDocId(userId));
    // The owner only as the per-user key (the object's name holds the id, as the job's archives do).
    expect(raw).not.toHaveProperty('userId');
    const page = await manifests.page(job.id, 1, 0);
    expect(page?.length).toBe(second?.entries);
    expect(page?.find((e) => e.path === 'Portability/archive_browser.json')).toMatchObject({ crc32: expect.stringMatching(/^[0-9a-f]{8}$/) });
    expect(second?.folders.find((f) => f.folder === 'Portability/')?.files).toBe(second?.files);
    // The export's deletion takes its manifests along.
    expect(await manifests.deleteOfExport(job.exportId)).toBe(2);
    expect(await manifests.get(job.id, 1)).toBeUndefined();
    expect(await manifests.page(job.id, 1, 0)).toBeUndefined();
  });

  it('a non-zip archive is a warning and the job still SUCCEEDS', async () => {
    const userId = `u-${randomBytes(4).toString('hex')}`;
    const job = await copyingJob(userId);
    const objects = [
      await upload(`${userId}/${job.exportId}/x/1.zip`, Buffer.from('<html>an error page, not an archive</html>')),
      await upload(`${userId}/${job.exportId}/x/2.zip`, { seed: 'c', approxBytes: 10_000, resource: 'chrome.history' }),
    ];
    const indexing = new ArchiveIndexing({ reader: async () => new CloudStorageArchiveReader(storage), manifests: async () => manifests, logger, now: Date.now });
    await runner(copierOf(objects), indexing).run({ step: 'copy', jobId: job.id, seq: job.seq, delaySeconds: 0 });
    const done = (await store.getJob(job.id)) as Job;
    expect(done.state).toBe('SUCCEEDED');
    expect(done.warnings).toEqual([{ code: 'ARCHIVE_NOT_ZIP', archive: 0, message: expect.stringMatching(/^Archive 1 is not a zip/) }]);
    expect(await manifests.get(job.id, 0)).toMatchObject({ entries: 0, pages: 1, warnings: done.warnings });
  });

  it('a delivery that dies after the first manifest is redelivered: the first archive is not listed again, nothing doubles', async () => {
    const userId = `u-${randomBytes(4).toString('hex')}`;
    const job = await copyingJob(userId);
    const objects = [
      await upload(`${userId}/${job.exportId}/r/1.zip`, { seed: 'd', approxBytes: 10_000, resource: 'chrome.history', incompleteServices: ['chrome.history'] }),
      await upload(`${userId}/${job.exportId}/r/2.zip`, { seed: 'e', approxBytes: 10_000, resource: 'chrome.history' }),
    ];
    const real = new ArchiveIndexing({ reader: async () => new CloudStorageArchiveReader(storage), manifests: async () => manifests, logger, now: Date.now });
    const listed: number[] = [];
    let crash = true;
    const indexing: Pick<ArchiveIndexing, 'index'> = {
      index: async (j, archive, stored) => {
        listed.push(archive);
        if (archive === 1 && crash) {
          crash = false;
          throw new Error('instance lost');
        }
        return real.index(j, archive, stored);
      },
    };
    const r = runner(copierOf(objects), indexing);
    const t = { step: 'copy' as const, jobId: job.id, seq: job.seq, delaySeconds: 0 };
    await expect(r.run(t)).rejects.toThrow('instance lost');
    const between = (await store.getJob(job.id)) as Job;
    expect(between).toMatchObject({ state: 'COPYING', manifests: [{ archive: 0 }] });
    expect(between.warnings).toHaveLength(1);
    await r.run(t);
    // And once more, after it finished: a stale task changes nothing.
    await r.run(t);
    expect(listed).toEqual([0, 1, 1]);
    const done = (await store.getJob(job.id)) as Job;
    expect(done.state).toBe('SUCCEEDED');
    expect(done.warnings).toEqual(between.warnings);
    expect(done.manifests?.map((m) => m.archive)).toEqual([0, 1]);
  });
});
