/**
 * A copy interrupted half-way resumes where it stopped: the Cloud Storage resumable session is
 * kept (as a checkpoint), the download resumes with a Range request, and only the remaining
 * bytes move again; the stored object's checksum is the source's.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { ArchiveRejectedError, CopyInterruptedError } from '../../functions/src/domain/errors';
import type { CopyCheckpoint } from '../../functions/src/domain/ports/archive-copier';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { removeFixtures, startArchiveHttpServer, writeArchiveFixture, type ArchiveFixture, type ArchiveHttpServer } from '../support/archive-http-server';

const BUCKET = 'resumable-copy-test';
const CHUNK = 1024 * 1024;
let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;
let big: ArchiveFixture;

/** A fetch that counts the body bytes of archive downloads and remembers their Range headers. */
function countingFetch(): { fetchImpl: typeof fetch; downloaded: () => number; ranges: Array<string | null> } {
  let bytes = 0;
  const ranges: Array<string | null> = [];
  const fetchImpl: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input);
    if (!url.startsWith(source.origin) || !res.body) return res;
    ranges.push(new Headers(init?.headers).get('range'));
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          bytes += chunk.byteLength;
          ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { fetchImpl, downloaded: () => bytes, ranges };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'resumable-copy-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-resumable-copy' });
  await storage.bucket(BUCKET).create();
  big = await writeArchiveFixture(dir, 'big.zip', 24 * CHUNK + 12345);
  source.serve('/big.zip', { fixture: big });
});

afterAll(async () => {
  await Promise.all([gcs?.stop(), source?.stop()]);
  if (dir) await removeFixtures(dir);
});

describe('resumable copies', () => {
  it('stops on a deadline, then resumes from the committed offset and moves only the rest', async () => {
    const net = countingFetch();
    const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true, fetchImpl: net.fetchImpl, progressEveryBytes: CHUNK });
    const url = `${source.origin}/big.zip?X-Goog-Signature=abc`;
    const stop = new AbortController();
    let checkpoint: CopyCheckpoint | undefined;
    const first = copier.copy(
      url,
      'u/e/r/archive-1-of-1.zip',
      (bytes) => {
        if (bytes >= 10 * CHUNK) stop.abort();
      },
      { signal: stop.signal, chunkSize: CHUNK, onCheckpoint: async (cp) => void (checkpoint = cp) },
    );
    await expect(first).rejects.toBeInstanceOf(CopyInterruptedError);
    expect(checkpoint).toMatchObject({ size: big.size, crc32c: big.crc32c });
    expect((await storage.bucket(BUCKET).file('u/e/r/archive-1-of-1.zip').exists())[0]).toBe(false);
    const firstLeg = net.downloaded();

    const stored = await copier.copy(url, 'u/e/r/archive-1-of-1.zip', undefined, { checkpoint, chunkSize: CHUNK });
    expect(stored).toMatchObject({ size: big.size, crc32c: big.crc32c });
    const [meta] = await storage.bucket(BUCKET).file('u/e/r/archive-1-of-1.zip').getMetadata();
    expect(meta.crc32c).toBe(big.crc32c);
    expect(meta.md5Hash).toBe(big.md5);
    // The second leg asked for a range starting at what Cloud Storage had committed (whole chunks)...
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(net.ranges[1] ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThanOrEqual(8 * CHUNK);
    expect(resumedAt % CHUNK).toBe(0);
    // ...and only the remaining bytes moved again.
    expect(net.downloaded() - firstLeg).toBe(big.size - resumedAt);
    expect(net.downloaded()).toBeLessThan(big.size + firstLeg - resumedAt + 1);
  });

  it('starts over when the session is gone or the archive changed, and still verifies', async () => {
    const net = countingFetch();
    const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true, fetchImpl: net.fetchImpl });
    const url = `${source.origin}/big.zip?X-Goog-Signature=abc`;
    const gone: CopyCheckpoint = { uploadUri: `${gcs.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&upload_id=nope`, size: big.size, crc32c: big.crc32c };
    const a = await copier.copy(url, 'u/e/r/gone.zip', undefined, { checkpoint: gone, chunkSize: CHUNK });
    expect(a.crc32c).toBe(big.crc32c);
    // From the first byte: no Range asked for, the whole archive downloaded.
    expect(net.ranges.at(-1)).toBeNull();
    expect(net.downloaded()).toBe(big.size);

    const stop = new AbortController();
    let checkpoint: CopyCheckpoint | undefined;
    await expect(
      copier.copy(url, 'u/e/r/changed.zip', (b) => (b >= 4 * CHUNK ? stop.abort() : undefined), {
        signal: stop.signal,
        chunkSize: CHUNK,
        onCheckpoint: async (cp) => void (checkpoint = cp),
      }),
    ).rejects.toBeInstanceOf(CopyInterruptedError);
    // Pretend the session began on another archive: its bytes must not be mixed with these.
    const beforeRestart = net.downloaded();
    const b = await copier.copy(url, 'u/e/r/changed.zip', undefined, { checkpoint: { ...checkpoint!, crc32c: 'AAAAAA==' }, chunkSize: CHUNK });
    expect(b).toMatchObject({ size: big.size, crc32c: big.crc32c });
    expect(net.ranges.at(-1)).toBeNull();
    expect(net.downloaded() - beforeRestart).toBe(big.size);
    expect(gcs.writesOf(BUCKET, 'u/e/r/changed.zip')).toBe(1);
  });

  it('returns the finished object when the session had completed before the crash was noticed', async () => {
    let checkpoint: CopyCheckpoint | undefined;
    const net = countingFetch();
    const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true, fetchImpl: net.fetchImpl });
    const url = `${source.origin}/big.zip?X-Goog-Signature=abc`;
    await copier.copy(url, 'u/e/r/done.zip', undefined, { chunkSize: CHUNK, onCheckpoint: async (cp) => void (checkpoint = cp) });
    const [before] = await storage.bucket(BUCKET).file('u/e/r/done.zip').getMetadata();
    const firstLeg = net.downloaded();
    expect(firstLeg).toBe(big.size);
    const again = await copier.copy(url, 'u/e/r/done.zip', undefined, { checkpoint, chunkSize: CHUNK });
    expect(again).toMatchObject({ size: big.size, crc32c: big.crc32c });
    // Nothing moved again and nothing was rewritten.
    expect(net.downloaded()).toBe(firstLeg);
    const [after] = await storage.bucket(BUCKET).file('u/e/r/done.zip').getMetadata();
    expect(after.generation).toBe(before.generation);
    expect(gcs.writesOf(BUCKET, 'u/e/r/done.zip')).toBe(1);
  });

  it('checks a resumed object against the source (only the tail passed the copier), and removes one that differs', async () => {
    const copier = new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true });
    const url = `${source.origin}/big.zip?X-Goog-Signature=abc`;
    const name = 'u/e/r/misreported.zip';
    const stop = new AbortController();
    let checkpoint: CopyCheckpoint | undefined;
    await expect(
      copier.copy(url, name, (b) => (b >= 4 * CHUNK ? stop.abort() : undefined), { signal: stop.signal, chunkSize: CHUNK, onCheckpoint: async (cp) => void (checkpoint = cp) }),
    ).rejects.toBeInstanceOf(CopyInterruptedError);
    // The store finishes the session but reports another size than the archive's.
    gcs.faults.misreportUploads(name, 'size');
    try {
      const e = await copier.copy(url, name, undefined, { checkpoint, chunkSize: CHUNK }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ArchiveRejectedError);
      expect((e as Error).message).toMatch(new RegExp(`^Resumed object gs://${BUCKET}/${name} does not match the source`));
      expect((e as Error).message).not.toContain('X-Goog-Signature');
      expect((await storage.bucket(BUCKET).file(name).exists())[0]).toBe(false);
    } finally {
      gcs.faults.clear();
    }
  });
});
