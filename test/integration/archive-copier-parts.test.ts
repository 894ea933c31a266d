/**
 * The ranged copy (`copyInParts`): byte ranges downloaded in parallel into part objects, composed,
 * and the composite's combined CRC32C checked against the source's x-goog-hash end to end.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { SignedUrlSource } from '../../functions/src/adapters/signed-url-source';
import { ArchiveRejectedError } from '../../functions/src/domain/errors';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { copyInParts } from '../support/copy-in-parts';
import { removeFixtures, startArchiveHttpServer, writeArchiveFixture, type ArchiveFixture, type ArchiveHttpServer } from '../support/archive-http-server';

const BUCKET = 'archive-parts-test';
let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;
let fixture: ArchiveFixture;

const copier = () => new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true });
const urlSource = () => new SignedUrlSource({ allowedHosts: [source.host], allowHttp: true });
const signed = (p: string) => `${source.origin}${p}?X-Goog-Signature=secret`;
const names = async (prefix: string) => (await storage.bucket(BUCKET).getFiles({ prefix }))[0].map((f) => f.name).sort();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'archive-parts-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-archive-parts' });
  await storage.bucket(BUCKET).create();
  fixture = await writeArchiveFixture(dir, 'big.zip', 5 * 1024 * 1024 + 17);
  source.serve('/big.zip', { fixture });
});

afterAll(async () => {
  await source?.stop();
  await gcs?.stop();
  if (dir) await removeFixtures(dir);
});

describe('copyInParts', () => {
  it('copies 4 ranges in parallel, composes them, and the combined CRC32C equals the source x-goog-hash', async () => {
    const seen: number[] = [];
    const stored = await copyInParts(copier(), urlSource(), signed('/big.zip'), 'a/archive.zip', 4, (n) => seen.push(n));
    expect(stored).toMatchObject({ bucket: BUCKET, name: 'a/archive.zip', size: fixture.size, crc32c: fixture.crc32c });
    expect(seen[seen.length - 1]).toBe(fixture.size);
    expect(await names('a/')).toEqual(['a/archive.zip']);
    // Read back through the client's own CRC32C validation.
    const [data] = await storage.bucket(BUCKET).file('a/archive.zip').download();
    expect(data.length).toBe(fixture.size);
    // A duplicate delivery finds the archive and copies nothing.
    const before = source.requests.length;
    expect(await copyInParts(copier(), urlSource(), signed('/big.zip'), 'a/archive.zip', 4)).toMatchObject({ crc32c: fixture.crc32c });
    expect(source.requests.length - before).toBe(1); // the probe only
  });

  it('resumes: a part an earlier attempt completed is kept, not downloaded again', async () => {
    const partLen = Math.ceil(fixture.size / 2);
    await copyInParts(copier(), urlSource(), signed('/big.zip'), 'tmp/whole.zip', 1);
    // Make part 1 of 2 as an earlier attempt would have left it.
    const [firstHalf] = await storage.bucket(BUCKET).file('tmp/whole.zip').download({ start: 0, end: partLen - 1, validation: false });
    await storage.bucket(BUCKET).file('b/archive.zip.part-1-of-2').save(firstHalf, { resumable: false });
    const before = source.requests.length;
    const stored = await copyInParts(copier(), urlSource(), signed('/big.zip'), 'b/archive.zip', 2);
    expect(stored.crc32c).toBe(fixture.crc32c);
    expect(source.requests.length - before).toBe(2); // probe + part 2
    expect(await names('b/')).toEqual(['b/archive.zip']);
  });

  it('refuses (and removes) a composite whose combined CRC32C differs from the source hash', async () => {
    source.serve('/lying.zip', { fixture, googHash: 'crc32c=AAAAAA==' });
    const e = await copyInParts(copier(), urlSource(), signed('/lying.zip'), 'c/archive.zip', 3).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((e as Error).message).not.toContain('secret');
    expect(await names('c/archive.zip')).not.toContain('c/archive.zip');
  });

  it('detects a byte altered in one range through the combined CRC32C, and leaves no composite', async () => {
    source.serve('/corrupt.zip', { fixture, corruptAt: 4 * 1024 * 1024 });
    const e = await copyInParts(copier(), urlSource(), signed('/corrupt.zip'), 'd/archive.zip', 2).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect(await names('d/')).not.toContain('d/archive.zip');
  });
});

describe('copyPart', () => {
  it('refuses a source that ignores the range, and writes no part', async () => {
    source.serve('/no-ranges.zip', { fixture, ignoreRange: true });
    const e = await copier().copyPart(signed('/no-ranges.zip'), 'e/archive.zip', 0, 2, fixture.size).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((e as Error).message).toMatch(/^Archive source did not serve bytes 0-\d+ \(status 200\)/);
    expect((e as Error).message).not.toContain('secret');
    expect(await names('e/')).toEqual([]);
  });

  it('refuses a range that ends elsewhere than asked (the archive is shorter than the plan)', async () => {
    // Planned for one byte more than there is: the last range asks past the end, and is cut short.
    const e = await copier().copyPart(signed('/big.zip'), 'f/archive.zip', 1, 2, fixture.size + 1).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((e as Error).message).toMatch(/^Archive source did not serve bytes \d+-\d+ \(status 206\)/);
    expect(await names('f/')).toEqual([]);
  });

  it('refuses a part of an archive whose size is not the one the copy began with', async () => {
    const e = await copier().copyPart(signed('/big.zip'), 'g/archive.zip', 0, 2, fixture.size + 1).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((e as Error).message).toMatch(new RegExp(`^Archive is now ${fixture.size} bytes, not the ${fixture.size + 1} its copy began with`));
    expect(await names('g/')).toEqual([]);
  });
});
