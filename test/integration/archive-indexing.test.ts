/**
 * The manifest of one archive, built from zips written here entry by entry and read by range from
 * the Cloud Storage stand-in, stored on the Firestore emulator: the totals count files (not
 * folders), Google's index gives the services and their warnings, an index that cannot be read is
 * a warning, a damaged or non-zip archive is a warning with an empty manifest, and a storage
 * failure is thrown (the copy task is delivered again) with nothing stored.
 */
import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageArchiveReader } from '../../functions/src/adapters/cloud-storage-archive-reader';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreManifestStore } from '../../functions/src/adapters/firestore-manifest-store';
import { newJob } from '../../functions/src/domain/job';
import type { Job, StoredArchive } from '../../functions/src/domain/model';
import type { ArchiveReader } from '../../functions/src/domain/ports/archive-reader';
import { createLogger } from '../../functions/src/logging';
import { ArchiveIndexing } from '../../functions/src/pipeline/archive-indexing';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { centralDirectory, localHeader, type CentralEntry } from '../../local-stack/zip-archive';

const BUCKET = 'archive-indexing';
const BUILT_AT = Date.UTC(2100, 0, 1);
let gcs: GcsServer;
let storage: Storage;
let manifests: FirestoreManifestStore;

beforeAll(async () => {
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-archive-indexing' });
  await storage.bucket(BUCKET).create();
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  manifests = new FirestoreManifestStore(createFirestore({ projectId: 'demo-archive-indexing' }));
});

afterAll(async () => {
  await gcs?.stop();
});

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (b: Buffer): number => {
  let c = 0xffffffff;
  for (const x of b) c = (CRC_TABLE[(c ^ x) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

/** A zip of these entries (a name ending in `/` is a folder); `deflate` compresses the files. */
function zipOf(files: Array<[string, string | Buffer]>, opts: { deflate?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: CentralEntry[] = [];
  let offset = 0;
  for (const [path, content] of files) {
    const raw = Buffer.from(content);
    const deflate = opts.deflate === true && !path.endsWith('/');
    const data = deflate ? deflateRawSync(raw) : raw;
    const e = { name: Buffer.from(path), crc: crc32(raw), compressedSize: data.length, size: raw.length, method: deflate ? 8 : 0 };
    const head = localHeader(e, false);
    parts.push(head, data);
    central.push({ ...e, offset });
    offset += head.length + data.length;
  }
  return Buffer.concat([...parts, centralDirectory(central, offset, { zip64: false })]);
}

async function upload(bytes: Buffer): Promise<StoredArchive> {
  const name = `u/e/myactivity.search/${randomBytes(6).toString('hex')}.zip`;
  await storage.bucket(BUCKET).file(name).save(bytes, { resumable: false });
  const [meta] = await storage.bucket(BUCKET).file(name).getMetadata();
  return { bucket: BUCKET, name, size: Number(meta.size), crc32c: String(meta.crc32c) };
}

const jobOf = (): Job => newJob({ id: randomBytes(10).toString('hex'), exportId: randomBytes(10).toString('hex'), userId: 'indexing-user', resource: 'myactivity.search' }, BUILT_AT);

/** What the indexer logged, parsed. */
const logs: Array<Record<string, unknown>> = [];
const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
const logsOf = (job: Job): Array<Record<string, unknown>> => logs.filter((l) => l.jobId === job.id).map(({ severity, message, jobId: _j, time: _t, ...fields }) => ({ severity, message, ...fields }));

const indexing = (reader?: ArchiveReader) =>
  new ArchiveIndexing({ reader: async () => reader ?? new CloudStorageArchiveReader(storage), manifests: async () => manifests, logger, now: () => BUILT_AT });

const browserIndex = JSON.stringify({
  totalSize: '1234',
  serviceStatus: [
    { localizedServiceName: 'My Activity', isIncomplete: false, folderName: 'My Activity', extractedFileTotal: '2', extractedFileSize: '1000' },
    { localizedServiceName: 'Chrome', isIncomplete: true, folderName: 'Chrome' },
  ],
});

describe('the manifest of an archive', () => {
  it('totals the files (not the folders), keeps each entry, and takes the services from Google\'s index', async () => {
    const stored = await upload(
      zipOf(
        [
          ['My Activity/', ''],
          ['My Activity/Search/', ''],
          ['My Activity/Search/MyActivity.json', 'x'.repeat(4000)],
          ['My Activity/Search/archive.html', '<html>'.repeat(50)],
          ['Portability/archive_browser.json', browserIndex],
        ],
        { deflate: true },
      ),
    );
    const job = jobOf();
    const out = await indexing().index(job, 2, stored);
    const warnings = [{ code: 'SERVICE_INCOMPLETE', archive: 2, service: 'Chrome', message: 'Google marked Chrome incomplete' }];
    expect(out).toEqual({ entries: 5, warnings });
    const m = await manifests.get(job.id, 2);
    const size = 4000 + 300 + browserIndex.length;
    expect(m).toMatchObject({ jobId: job.id, exportId: job.exportId, archive: 2, entries: 5, files: 3, size, zip64: false, pages: 1, builtAt: BUILT_AT, warnings, servicesTotalSize: 1234 });
    expect(m?.object).toEqual({ bucket: BUCKET, name: stored.name, size: stored.size, crc32c: stored.crc32c });
    expect(m?.compressedSize).toBe([Buffer.from('x'.repeat(4000)), Buffer.from('<html>'.repeat(50)), Buffer.from(browserIndex)].reduce((n, b) => n + deflateRawSync(b).length, 0));
    expect(m?.bytesRead).toBeGreaterThan(0);
    expect(m?.bytesRead).toBeLessThanOrEqual(stored.size);
    expect(m?.services).toEqual([
      { name: 'My Activity', incomplete: false, folder: 'My Activity', files: 2, size: 1000 },
      { name: 'Chrome', incomplete: true, folder: 'Chrome' },
    ]);
    expect(m?.folders.map((f) => [f.folder, f.files])).toEqual([
      ['My Activity/', 2],
      ['My Activity/Search/', 2],
      ['Portability/', 1],
    ]);
    expect(m?.foldersTruncated).toBeUndefined();
    const page = await manifests.page(job.id, 2, 0);
    expect(page?.map((e) => e.path)).toEqual(['My Activity/', 'My Activity/Search/', 'My Activity/Search/MyActivity.json', 'My Activity/Search/archive.html', 'Portability/archive_browser.json']);
    // The operator's line names the archive as people count (1-based) and what was stored.
    expect(logsOf(job)).toEqual([{ severity: 'INFO', message: 'archive manifest stored', archive: 3, entries: 5, pages: 1, bytesRead: m?.bytesRead, warnings: 1 }]);
    expect(page?.[2]).toEqual({ path: 'My Activity/Search/MyActivity.json', size: 4000, compressedSize: expect.any(Number), crc32: crc32(Buffer.from('x'.repeat(4000))).toString(16).padStart(8, '0') });
  });

  it('an archive without Google\'s index has no services and no warning; an index without a total size has no total', async () => {
    const job = jobOf();
    const plain = await indexing().index(job, 0, await upload(zipOf([['a.json', '{}']])));
    expect(plain).toEqual({ entries: 1, warnings: [] });
    const m = await manifests.get(job.id, 0);
    expect(m).toMatchObject({ entries: 1, files: 1, size: 2, compressedSize: 2 });
    expect(m?.services).toBeUndefined();
    const noTotal = await indexing().index(job, 1, await upload(zipOf([['Portability/archive_browser.json', JSON.stringify({ serviceStatus: [] })]])));
    expect(noTotal).toEqual({ entries: 1, warnings: [] });
    const m1 = await manifests.get(job.id, 1);
    expect(m1?.services).toEqual([]);
    expect(m1).not.toHaveProperty('servicesTotalSize');
  });

  it('marks the folders truncated past the folders it keeps', async () => {
    const job = jobOf();
    const files = Array.from({ length: 2001 }, (_, i): [string, string] => [`f${String(i).padStart(4, '0')}/a`, '']);
    await indexing().index(job, 0, await upload(zipOf(files)));
    const m = await manifests.get(job.id, 0);
    expect(m).toMatchObject({ entries: 2001, files: 2001, foldersTruncated: true });
    expect(m?.folders).toHaveLength(2000);
  });

  it('warns when Google\'s index is not JSON, not the index Google writes, or cannot be read', async () => {
    for (const [content, why] of [
      ['{not json', 'it is not the index Google writes'],
      [JSON.stringify({ services: [] }), 'it is not the index Google writes'],
    ] as const) {
      const job = jobOf();
      const out = await indexing().index(job, 1, await upload(zipOf([['a.json', '{}'], ['Portability/archive_browser.json', content]])));
      expect(out.warnings, content).toEqual([{ code: 'ARCHIVE_BROWSER_UNREADABLE', archive: 1, message: `Archive 2: Google's index (Portability/archive_browser.json) could not be read: ${why}` }]);
      expect(await manifests.get(job.id, 1)).toMatchObject({ entries: 2, warnings: out.warnings });
      expect((await manifests.get(job.id, 1))?.services).toBeUndefined();
    }
    // An index whose bytes do not match its CRC-32: the reader's own error is named.
    const bytes = zipOf([['Portability/archive_browser.json', browserIndex]]);
    const at = bytes.indexOf(Buffer.from('serviceStatus'));
    bytes.write('SERVICESTATUS', at);
    const job = jobOf();
    const out = await indexing().index(job, 0, await upload(bytes));
    expect(out.warnings).toEqual([{ code: 'ARCHIVE_BROWSER_UNREADABLE', archive: 0, message: expect.stringMatching(/^Archive 1: Google's index \(Portability\/archive_browser\.json\) could not be read: (?!it is not the index)/) }]);
  });

  it('a damaged or non-zip archive is a warning with an empty manifest; a storage failure is thrown and nothing is stored', async () => {
    const zip = zipOf([['a.json', '{}'], ['b.json', '[]']]);
    // The end record points the central directory past the file's start.
    const damaged = Buffer.from(zip);
    damaged.writeUInt32LE(zip.length + 10, zip.length - 6);
    for (const [bytes, code, message] of [
      [damaged, 'ARCHIVE_DAMAGED', /^Archive 3 is damaged: ./],
      [Buffer.from('<html>an error page</html>'), 'ARCHIVE_NOT_ZIP', /^Archive 3 is not a zip \(.+\)$/],
    ] as const) {
      const job = jobOf();
      const out = await indexing().index(job, 2, await upload(bytes));
      expect(out).toEqual({ entries: 0, warnings: [{ code, archive: 2, message: expect.stringMatching(message) }] });
      expect(await manifests.get(job.id, 2)).toMatchObject({ entries: 0, files: 0, size: 0, compressedSize: 0, zip64: false, pages: 1, folders: [], bytesRead: 0, warnings: out.warnings });
      expect(logsOf(job).map((l) => [l.severity, l.message, l.archive])).toEqual([
        ['WARNING', 'archive could not be listed; its manifest records why', 3],
        ['INFO', 'archive manifest stored', 3],
      ]);
      expect(logsOf(job)[0]?.reason).toEqual(expect.any(String));
    }
    const job = jobOf();
    const outage: ArchiveReader = { list: async () => Promise.reject(new Error('UNAVAILABLE: storage')) };
    await expect(indexing(outage).index(job, 0, await upload(zip))).rejects.toThrow('UNAVAILABLE: storage');
    expect(await manifests.get(job.id, 0)).toBeUndefined();
  });
});
