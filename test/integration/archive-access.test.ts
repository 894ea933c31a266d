/**
 * Who reaches an archive, below the API, on the Firestore emulator: download links and manifests
 * answer the owner of a SUCCEEDED job only (another user's export answers like a missing one, a
 * job that has not succeeded 409, an archive or a page it does not have 404). A link is a V4 URL
 * the storage client signs (checked by the Cloud Storage stand-in's own verifier), valid for the
 * configured time from the whole second of its issue, recorded in the owner's audit trail before it
 * is answered, and never logged. A manifest is answered page by page without its internals.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Firestore } from '@google-cloud/firestore';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageDownloadSigner } from '../../functions/src/adapters/cloud-storage-download-signer';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreAuditTrail } from '../../functions/src/adapters/firestore-audit-trail';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreManifestStore } from '../../functions/src/adapters/firestore-manifest-store';
import type { ManifestEntry } from '../../functions/src/domain/archive-manifest';
import { RequestError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Job, JobState, StoredArchive } from '../../functions/src/domain/model';
import type { ArchiveManifest } from '../../functions/src/domain/ports/manifest-store';
import { createLogger } from '../../functions/src/logging';
import { ArchiveDownloads } from '../../functions/src/pipeline/archive-downloads';
import { ArchiveManifestViews } from '../../functions/src/pipeline/archive-manifest-views';
import { AuditTrail } from '../../functions/src/pipeline/audit-trail';
import { verifyV4SignedUrl } from '../../local-stack/gcs-signed-urls';

const projectId = 'demo-archive-access';
const BUCKET = 'access-archives';
const EMAIL = 'signer@demo.iam.gserviceaccount.com';
const TTL_SECONDS = 300;
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const keys = new Map([[EMAIL, createPublicKey(key)]]);
// A moment well inside the current second's first half, so whole seconds are visible.
const NOW = Math.floor(Date.now() / 1000) * 1000 + 400;

let db: Firestore;
let store: FirestoreExportStore;
let manifestStore: FirestoreManifestStore;
let trail: AuditTrail;
let downloads: ArchiveDownloads;
let views: ArchiveManifestViews;
const logLines: string[] = [];

beforeAll(() => {
  db = createFirestore({ projectId, emulatorHost: inject('firestoreEmulatorHost') });
  store = new FirestoreExportStore(db);
  manifestStore = new FirestoreManifestStore(db);
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer | string, _enc, done) {
        logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
        done();
      },
    }),
  });
  trail = new AuditTrail({ store: new FirestoreAuditTrail(db, 400), logger });
  const storage = new Storage({ projectId, apiEndpoint: 'http://127.0.0.1:4443', credentials: { client_email: EMAIL, private_key: key } });
  downloads = new ArchiveDownloads({ store, signer: async () => new CloudStorageDownloadSigner(storage), ttlSeconds: TTL_SECONDS, logger, now: () => NOW, audit: trail });
  views = new ArchiveManifestViews({ store, manifests: async () => manifestStore });
});

afterAll(async () => {
  await db?.terminate();
});

const hex = (): string => randomBytes(10).toString('hex');
const archiveOf = (userId: string, exportId: string, n: number): StoredArchive => ({ bucket: BUCKET, name: `${userId}/${exportId}/myactivity.search/archive-${n}.zip`, size: 100 + n, crc32c: `crc${n}==`, md5Hash: `md5${n}==` });

/** A fresh user's export with one job in `state` (SUCCEEDED: two archives). */
async function exportWithJob(state: JobState = 'SUCCEEDED'): Promise<{ userId: string; exportId: string; job: Job }> {
  const userId = `access-${randomBytes(6).toString('hex')}`;
  const exportId = hex();
  const archives = state === 'SUCCEEDED' ? [archiveOf(userId, exportId, 1), archiveOf(userId, exportId, 2)] : [];
  const job: Job = { ...newJob({ id: hex(), exportId, userId, resource: 'myactivity.search' }, NOW), state, seq: 3, archives, ...(state === 'SUCCEEDED' ? { finishedAt: NOW } : {}) };
  await store.createExport({ id: exportId, userId, state: state === 'SUCCEEDED' ? 'SUCCEEDED' : 'RUNNING', resources: ['myactivity.search'], createdAt: NOW, updatedAt: NOW }, [job]);
  return { userId, exportId, job };
}

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RequestError);
  const { status, code, message } = err as RequestError;
  return { status, code, message };
}

describe('who reaches an archive (download links and manifests alike)', () => {
  it('another user, a missing or malformed export id: Export not found, the same answer each time', async () => {
    const { userId, exportId, job } = await exportWithJob();
    const missing = { status: 404, code: 'NOT_FOUND', message: 'Export not found' };
    for (const read of [
      (u: string, e: string, j: string) => downloads.issue(u, e, j, 0),
      (u: string, e: string, j: string) => views.read(u, e, j, 0, 0),
    ]) {
      expect(await refusal(read('someone-else', exportId, job.id))).toEqual(missing);
      expect(await refusal(read(userId, hex(), job.id))).toEqual(missing);
      expect(await refusal(read(userId, `${exportId}/x`, job.id))).toEqual(missing);
      expect(await refusal(read(userId, exportId.toUpperCase().replace(/[0-9]/g, 'A'), job.id))).toEqual(missing);
    }
  });

  it('a job of another export of the same user, a missing or malformed job id: Job not found', async () => {
    const a = await exportWithJob();
    const bExportId = hex();
    const bJob: Job = { ...newJob({ id: hex(), exportId: bExportId, userId: a.userId, resource: 'myactivity.search' }, NOW), state: 'SUCCEEDED', archives: [archiveOf(a.userId, bExportId, 1)] };
    await store.createExport({ id: bExportId, userId: a.userId, state: 'SUCCEEDED', resources: ['myactivity.search'], createdAt: NOW, updatedAt: NOW }, [bJob]);
    const missing = { status: 404, code: 'NOT_FOUND', message: 'Job not found' };
    expect(await refusal(downloads.issue(a.userId, a.exportId, bJob.id, 0))).toEqual(missing);
    expect(await refusal(downloads.issue(a.userId, a.exportId, hex(), 0))).toEqual(missing);
    expect(await refusal(downloads.issue(a.userId, a.exportId, `${a.job.id}0`, 0))).toEqual(missing);
    expect(await refusal(views.read(a.userId, a.exportId, bJob.id, 0, 0))).toEqual(missing);
  });

  it('a job whose stored owner is another user (even inside this user\u2019s export): Job not found', async () => {
    const a = await exportWithJob();
    await store.updateJob(a.job.id, (cur) => ({ ...cur, userId: 'intruder', seq: cur.seq + 1 }));
    expect(await refusal(downloads.issue(a.userId, a.exportId, a.job.id, 0))).toEqual({ status: 404, code: 'NOT_FOUND', message: 'Job not found' });
  });

  it('a job that has not succeeded: 409, naming its state and what only a SUCCEEDED job has', async () => {
    for (const state of ['COPYING', 'FAILED'] as const) {
      const { userId, exportId, job } = await exportWithJob(state);
      expect(await refusal(downloads.issue(userId, exportId, job.id, 0))).toEqual({
        status: 409,
        code: 'JOB_NOT_SUCCEEDED',
        message: `Only a SUCCEEDED job's archives have download links; this job is ${state}`,
      });
      expect(await refusal(views.read(userId, exportId, job.id, 0, 0))).toMatchObject({ status: 409, message: `Only a SUCCEEDED job's archives have manifests; this job is ${state}` });
    }
  });

  it('an archive the job does not have: 404, saying how many it has', async () => {
    const { userId, exportId, job } = await exportWithJob();
    expect(await refusal(downloads.issue(userId, exportId, job.id, 2))).toEqual({ status: 404, code: 'NOT_FOUND', message: 'Archive 2 (the job has 2, numbered from 0) not found' });
    expect(await refusal(views.read(userId, exportId, job.id, 7, 0))).toMatchObject({ status: 404, message: 'Archive 7 (the job has 2, numbered from 0) not found' });
  });
});

describe('download links', () => {
  it('the owner gets a signed URL of that archive, valid for the TTL from the whole second of issue, recorded in their trail and never logged', async () => {
    const { userId, exportId, job } = await exportWithJob();
    const issuedAt = NOW - 400;
    const expiresAt = issuedAt + TTL_SECONDS * 1000;
    const link = await downloads.issue(userId, exportId, job.id, 1, { origin: 'https://app.example' });
    expect(link.expiresAt).toBe(new Date(expiresAt).toISOString());

    const url = new URL(link.url);
    expect(decodeURIComponent(url.pathname)).toBe(`/${BUCKET}/${job.archives[1]!.name}`);
    expect(url.searchParams.get('X-Goog-Date')).toBe(new Date(issuedAt).toISOString().replace(/[-:]|\.\d{3}/g, ''));
    expect(url.searchParams.get('X-Goog-Expires')).toBe(String(TTL_SECONDS));
    const check = (now: number) => verifyV4SignedUrl({ method: 'GET', host: url.hostname, rawPath: url.pathname, query: url.searchParams }, keys, now);
    expect(check(issuedAt)).toEqual({ ok: true });
    expect(check(expiresAt - 1)).toEqual({ ok: true });
    expect(check(expiresAt)).toMatchObject({ ok: false, code: 'ExpiredToken' });

    const page = await trail.list(userId, { pageSize: 10 });
    expect(page.entries).toHaveLength(1);
    expect(page.entries[0]).toMatchObject({
      kind: 'download.issued',
      at: new Date(NOW).toISOString(),
      details: { exportId, jobId: job.id, archive: 1, name: `${exportId}/myactivity.search/archive-2.zip`, origin: 'https://app.example', expiresAt: link.expiresAt },
    });

    const issued = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === 'download link issued' && l.jobId === job.id);
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({ exportId, archive: 1, expiresAt: link.expiresAt });
    expect(logLines.join('\n')).not.toContain(url.searchParams.get('X-Goog-Signature') ?? 'no signature');
  });

  it('a caller without an Origin is recorded with none; each link is its own entry', async () => {
    const { userId, exportId, job } = await exportWithJob();
    await downloads.issue(userId, exportId, job.id, 0);
    await downloads.issue(userId, exportId, job.id, 0);
    const { entries } = await trail.list(userId, { pageSize: 10 });
    expect(entries.map((e) => [e.kind, e.details.archive, e.details.origin])).toEqual([
      ['download.issued', 0, null],
      ['download.issued', 0, null],
    ]);
  });
});

describe('download links without a clock or a trail given', () => {
  it('take the current time, and issue links with nothing recorded', async () => {
    const { userId, exportId, job } = await exportWithJob();
    const storage = new Storage({ projectId, apiEndpoint: 'http://127.0.0.1:4443', credentials: { client_email: EMAIL, private_key: key } });
    const plain = new ArchiveDownloads({ store, signer: async () => new CloudStorageDownloadSigner(storage), ttlSeconds: TTL_SECONDS, logger: createLogger({ level: 'silent' }) });
    const before = Math.floor(Date.now() / 1000) * 1000;
    const link = await plain.issue(userId, exportId, job.id, 0);
    const after = Date.now();
    const expiresAt = Date.parse(link.expiresAt);
    expect(expiresAt % 1000).toBe(0);
    expect(expiresAt).toBeGreaterThanOrEqual(before + TTL_SECONDS * 1000);
    expect(expiresAt).toBeLessThanOrEqual(after + TTL_SECONDS * 1000);
    expect((await trail.list(userId, { pageSize: 10 })).entries).toEqual([]);
  });
});

describe('manifests', () => {
  const entry = (i: number): ManifestEntry => ({ path: `Search/${i}.json`, size: i, compressedSize: i, crc32: '0000000a' });

  async function withManifest(pages: ManifestEntry[][]): Promise<{ userId: string; exportId: string; job: Job; manifest: ArchiveManifest }> {
    const owned = await exportWithJob();
    const stored = owned.job.archives[1]!;
    const manifest: ArchiveManifest = {
      entries: pages.flat().length,
      files: pages.flat().length,
      size: 10,
      compressedSize: 5,
      zip64: false,
      folders: [{ folder: 'Search/', files: pages.flat().length, size: 10, compressedSize: 5 }],
      pages: pages.length,
      jobId: owned.job.id,
      exportId: owned.exportId,
      archive: 1,
      object: { bucket: stored.bucket, name: stored.name, size: stored.size, crc32c: stored.crc32c },
      warnings: [{ code: 'SERVICE_INCOMPLETE', archive: 1, service: 'Search', message: 'Google marked Search incomplete' }],
      bytesRead: 4096,
      builtAt: NOW,
    };
    await manifestStore.save(owned.userId, manifest, pages);
    return { ...owned, manifest };
  }

  it('answers the summary with one page of entries and the next page, without the bucket or what listing cost', async () => {
    const { userId, exportId, job } = await withManifest([[entry(1), entry(2)], [entry(3)]]);
    const first = await views.read(userId, exportId, job.id, 1, 0);
    expect(first).toEqual({
      entryCount: 3,
      files: 3,
      size: 10,
      compressedSize: 5,
      zip64: false,
      folders: [{ folder: 'Search/', files: 3, size: 10, compressedSize: 5 }],
      jobId: job.id,
      exportId,
      archive: 1,
      object: { name: job.archives[1]!.name, size: job.archives[1]!.size, crc32c: job.archives[1]!.crc32c },
      warnings: [{ code: 'SERVICE_INCOMPLETE', archive: 1, service: 'Search', message: 'Google marked Search incomplete' }],
      builtAt: new Date(NOW).toISOString(),
      page: 0,
      pages: 2,
      nextPage: 1,
      entries: [entry(1), entry(2)],
    });
    const last = await views.read(userId, exportId, job.id, 1, 1);
    expect(last).toMatchObject({ page: 1, pages: 2, entries: [entry(3)] });
    expect(last).not.toHaveProperty('nextPage');
  });

  it('a page past the last, and an archive copied before manifests existed: 404', async () => {
    const { userId, exportId, job } = await withManifest([[entry(1)]]);
    expect(await refusal(views.read(userId, exportId, job.id, 1, 1))).toEqual({ status: 404, code: 'NOT_FOUND', message: 'Page 1 of the manifest (it has 1, numbered from 0) not found' });
    expect(await refusal(views.read(userId, exportId, job.id, 0, 0))).toEqual({ status: 404, code: 'NOT_FOUND', message: 'Manifest of archive 0 not found' });
  });
});
