/**
 * The copy engine streams: copying a large archive keeps the process's memory flat. Apart from
 * archive-copier.test.ts so that mutation runs (vitest.mutate.config.mts), slowed by
 * instrumentation, can leave out this measurement of memory rather than of logic.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { removeFixtures, startArchiveHttpServer, writeArchiveFixture, type ArchiveHttpServer } from '../support/archive-http-server';

const BUCKET = 'archive-copier-memory-test';

let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;

const copier = (): CloudStorageArchiveCopier => new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true });
const signed = (pathname: string): string => `${source.origin}${pathname}?X-Goog-Signature=deadbeefsecret`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'archive-copier-memory-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-archive-copier' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  await Promise.all([gcs?.stop(), source?.stop()]);
  if (dir) await removeFixtures(dir);
});

describe('CloudStorageArchiveCopier', () => {
  it('keeps memory flat while copying a large archive', async () => {
    const size = 160 * 1024 * 1024;
    const big = await writeArchiveFixture(dir, 'big.zip', size, { skipCrc32c: true });
    source.serve('/large.zip', { fixture: big });
    const before = process.memoryUsage();
    let peakRss = before.rss;
    let peakBuffers = before.arrayBuffers;
    // Buffers count in arrayBuffers the moment they are allocated, whatever the allocator does with RSS.
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
    }, 20);
    const started = Date.now();
    try {
      const stored = await copier().copy(signed('/large.zip'), 'exports/u1/large.zip');
      expect(stored).toMatchObject({ size, md5Hash: big.md5 });
    } finally {
      clearInterval(sampler);
    }
    const mb = (n: number) => n / 1024 / 1024;
    const rssGrowth = mb(peakRss - before.rss);
    const buffersGrowth = mb(peakBuffers - before.arrayBuffers);
    console.log(
      `copied ${mb(size)} MB in ${Date.now() - started} ms; peak growth: RSS ${rssGrowth.toFixed(1)} MB, buffers ${buffersGrowth.toFixed(1)} MB (rss before ${mb(before.rss).toFixed(0)} MB)`,
    );
    // Buffering the archive would grow both by its size at least; streaming stays a small fraction of it.
    expect(rssGrowth).toBeLessThan(mb(size) / 2);
    expect(buffersGrowth).toBeLessThan(mb(size) / 2);
  }, 30_000);
});
