/**
 * The copy engine against the Cloud Storage stand-in and a local "signed URL" server: checksums,
 * idempotence, refusals, corruption, stalls, size limits and flat memory on a large archive.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CRC32C, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveObjectConflictError, CloudStorageArchiveCopier, type CloudStorageArchiveCopierOptions } from '../../functions/src/adapters/archive-copier';
import { Crc32c } from '../../functions/src/adapters/crc32c';
import { ArchiveRejectedError, ArchiveUrlExpiredError } from '../../functions/src/domain/errors';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { freePort } from '../../local-stack/net-utils';
import {
  removeFixtures,
  startArchiveHttpServer,
  writeArchiveFixture,
  type ArchiveFixture,
  type ArchiveHttpServer,
} from '../support/archive-http-server';

const BUCKET = 'archive-copier-test';
const SECRET_QUERY = 'X-Goog-Signature=deadbeefsecret&X-Goog-Credential=sa%40demo';

let gcs: GcsServer;
let source: ArchiveHttpServer;
let storage: Storage;
let dir: string;
let small: ArchiveFixture;

function copier(over: Partial<CloudStorageArchiveCopierOptions> = {}): CloudStorageArchiveCopier {
  return new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [source.host], allowHttp: true, ...over });
}

function signed(pathname: string): string {
  return `${source.origin}${pathname}?${SECRET_QUERY}`;
}

async function exists(name: string): Promise<boolean> {
  return (await storage.bucket(BUCKET).file(name).exists())[0];
}

/** Runs `p`, expecting it to fail; checks the error leaks no signed-URL query string. */
async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(Error);
  expect((e as Error).message).not.toContain('deadbeef');
  expect((e as Error).message).not.toContain('X-Goog-Signature');
  return e as Error;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'archive-copier-'));
  [gcs, source] = await Promise.all([startGcsServer(), startArchiveHttpServer()]);
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-archive-copier' });
  await storage.bucket(BUCKET).create();
  small = await writeArchiveFixture(dir, 'small.zip', 3 * 1024 * 1024 + 17);
});

afterAll(async () => {
  await Promise.all([gcs?.stop(), source?.stop()]);
  if (dir) await removeFixtures(dir);
});

describe('Crc32c', () => {
  it('agrees with the storage client and the known check value', () => {
    expect(new Crc32c().update(Buffer.from('123456789')).digestBase64()).toBe(Buffer.from('e3069283', 'hex').toString('base64'));
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff));
    const ref = new CRC32C();
    ref.update(data);
    const split = new Crc32c().update(data.subarray(0, 13)).update(data.subarray(13, 500)).update(data.subarray(500));
    expect(split.digestBase64()).toBe(ref.toString());
  });
});

describe('CloudStorageArchiveCopier', () => {
  it('copies an archive, with checksums equal to the source, and reports progress', async () => {
    source.serve('/ok.zip', { fixture: small });
    const progress: number[] = [];
    // Byte-driven reports only (no clock in the outcome): one per MiB at most, then the total.
    const stored = await copier({ progressEveryBytes: 1 << 20, progressEveryMs: Number.MAX_SAFE_INTEGER }).copy(signed('/ok.zip'), 'exports/u1/ok.zip', (n) =>
      progress.push(n),
    );
    expect(stored).toEqual({ bucket: BUCKET, name: 'exports/u1/ok.zip', size: small.size, crc32c: small.crc32c, md5Hash: small.md5 });
    const [meta] = await storage.bucket(BUCKET).file('exports/u1/ok.zip').getMetadata();
    expect(meta).toMatchObject({ size: String(small.size), crc32c: small.crc32c, md5Hash: small.md5, contentType: 'application/zip' });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.length).toBeLessThanOrEqual(4);
    expect(progress[progress.length - 1]).toBe(small.size);
    for (let i = 1; i < progress.length - 1; i++) expect(progress[i] - progress[i - 1]).toBeGreaterThanOrEqual(1 << 20);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });

  it('is idempotent: a second copy returns the stored object without rewriting it', async () => {
    source.serve('/again.zip', { fixture: small });
    const first = await copier().copy(signed('/again.zip'), 'exports/u1/again.zip');
    const [m1] = await storage.bucket(BUCKET).file('exports/u1/again.zip').getMetadata();
    const second = await copier().copy(signed('/again.zip'), 'exports/u1/again.zip');
    const [m2] = await storage.bucket(BUCKET).file('exports/u1/again.zip').getMetadata();
    expect(second).toEqual(first);
    expect(m2.generation).toBe(m1.generation);
  });

  it('copies a source that declares only a CRC32C, or only an MD5', async () => {
    source.serve('/crc-only.zip', { fixture: small, googHash: `crc32c=${small.crc32c}` });
    expect(await copier().copy(signed('/crc-only.zip'), 'exports/u1/crc-only.zip')).toMatchObject({ size: small.size, crc32c: small.crc32c, md5Hash: small.md5 });
    source.serve('/md5-only.zip', { fixture: small, googHash: `md5=${small.md5}` });
    expect(await copier().copy(signed('/md5-only.zip'), 'exports/u1/md5-only.zip')).toMatchObject({ size: small.size, crc32c: small.crc32c, md5Hash: small.md5 });
  });

  it('copies a source that sends no Content-Length (chunked)', async () => {
    source.serve('/chunked.zip', { fixture: small, omitLength: true });
    const stored = await copier().copy(signed('/chunked.zip'), 'exports/u1/chunked.zip');
    expect(stored).toMatchObject({ size: small.size, crc32c: small.crc32c });
  });

  it('fails clearly when a different object already holds the name', async () => {
    await storage.bucket(BUCKET).file('exports/u1/taken.zip').save(Buffer.from('something else'));
    source.serve('/taken.zip', { fixture: small });
    const e = await failure(copier().copy(signed('/taken.zip'), 'exports/u1/taken.zip'));
    expect(e).toBeInstanceOf(ArchiveObjectConflictError);
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect((await storage.bucket(BUCKET).file('exports/u1/taken.zip').download())[0].toString()).toBe('something else');
  });

  it('turns 400/401/403 into ArchiveUrlExpiredError', async () => {
    for (const status of [400, 401, 403]) {
      source.serve(`/expired-${status}.zip`, { status });
      const e = await failure(copier().copy(signed(`/expired-${status}.zip`), `exports/u1/expired-${status}.zip`));
      expect(e).toBeInstanceOf(ArchiveUrlExpiredError);
    }
    expect(await exists('exports/u1/expired-403.zip')).toBe(false);
  });

  it('turns 404 into ArchiveRejectedError and 5xx/429/network errors into plain retryable errors', async () => {
    source.serve('/gone.zip', { status: 404 });
    expect(await failure(copier().copy(signed('/gone.zip'), 'exports/u1/gone.zip'))).toBeInstanceOf(ArchiveRejectedError);
    for (const status of [429, 500, 503]) {
      source.serve(`/busy-${status}.zip`, { status });
      const e = await failure(copier().copy(signed(`/busy-${status}.zip`), 'exports/u1/busy.zip'));
      expect(e).not.toBeInstanceOf(ArchiveRejectedError);
      expect(e).not.toBeInstanceOf(ArchiveUrlExpiredError);
    }
    const port = await freePort();
    const closed = await failure(
      copier({ allowedHosts: [`127.0.0.1:${port}`] }).copy(`http://127.0.0.1:${port}/x.zip?${SECRET_QUERY}`, 'exports/u1/closed.zip'),
    );
    expect(closed).not.toBeInstanceOf(ArchiveRejectedError);
    expect(closed.message).toContain('ECONNREFUSED');
  });

  it('measures an archive with a one-byte ranged GET, through the same checks as a copy', async () => {
    source.serve('/measured.zip', { fixture: small });
    source.serve('/measured-expired.zip', { status: 403 });
    source.serve('/measured-redirect.zip', { status: 302, location: `${source.origin}/measured.zip` });
    const before = source.requests.length;
    expect(await copier().measure(signed('/measured.zip'))).toEqual({ size: small.size, crc32c: small.crc32c, md5: small.md5, contentType: 'application/zip' });
    // A server that ignores the range still answers the size; the body is not read.
    source.serve('/measured-whole.zip', { fixture: small, ignoreRange: true });
    expect((await copier().measure(signed('/measured-whole.zip'))).size).toBe(small.size);
    expect(await failure(copier().measure(signed('/measured-expired.zip')))).toBeInstanceOf(ArchiveUrlExpiredError);
    expect(await failure(copier().measure(signed('/measured-redirect.zip')))).toBeInstanceOf(ArchiveRejectedError);
    expect(await failure(copier().measure(`https://evil.example/measured.zip?${SECRET_QUERY}`))).toBeInstanceOf(ArchiveRejectedError);
    expect(source.requests.slice(before)).toEqual(['/measured.zip', '/measured-whole.zip', '/measured-expired.zip', '/measured-redirect.zip']);
    expect(await exists('measured.zip')).toBe(false);
  });

  it('refuses disallowed hosts, http without allowHttp, and redirects, before writing anything', async () => {
    source.serve('/redirect.zip', { status: 302, location: `${source.origin}/ok.zip` });
    const before = source.requests.length;
    const otherHost = await failure(copier().copy(`http://localhost:${source.host.split(':')[1]}/ok.zip?${SECRET_QUERY}`, 'exports/u1/r1.zip'));
    expect(otherHost).toBeInstanceOf(ArchiveRejectedError);
    const evil = await failure(copier().copy(`https://evil.example/ok.zip?${SECRET_QUERY}`, 'exports/u1/r1.zip'));
    expect(evil).toBeInstanceOf(ArchiveRejectedError);
    const http = await failure(copier({ allowHttp: false }).copy(signed('/ok.zip'), 'exports/u1/r1.zip'));
    expect(http).toBeInstanceOf(ArchiveRejectedError);
    expect(http.message).toContain('http:');
    expect(await failure(copier().copy('ftp://x/y', 'exports/u1/r1.zip'))).toBeInstanceOf(ArchiveRejectedError);
    expect(await failure(copier().copy('not a url', 'exports/u1/r1.zip'))).toBeInstanceOf(ArchiveRejectedError);
    expect(source.requests.length).toBe(before);

    const redirect = await failure(copier().copy(signed('/redirect.zip'), 'exports/u1/r1.zip'));
    expect(redirect).toBeInstanceOf(ArchiveRejectedError);
    expect(source.requests.slice(before)).toEqual(['/redirect.zip']);
    expect(await exists('exports/u1/r1.zip')).toBe(false);
  });

  it('rejects corrupted bytes (checksum mismatch) and leaves no object', async () => {
    source.serve('/corrupt.zip', { fixture: small, corruptAt: 1_000_000 });
    const e = await failure(copier().copy(signed('/corrupt.zip'), 'exports/u1/corrupt.zip'));
    expect(e).toBeInstanceOf(ArchiveRejectedError);
    expect(e.message).toMatch(/checksum mismatch/i);
    expect(await exists('exports/u1/corrupt.zip')).toBe(false);

    const wrongCrc = new Crc32c().update(Buffer.from('not the archive')).digestBase64();
    source.serve('/lying.zip', { fixture: small, googHash: `crc32c=${wrongCrc}` });
    expect(await failure(copier().copy(signed('/lying.zip'), 'exports/u1/lying.zip'))).toBeInstanceOf(ArchiveRejectedError);
    expect(await exists('exports/u1/lying.zip')).toBe(false);
  });

  it('aborts a stalled download (a retryable error), leaving no object', async () => {
    source.serve('/short.zip', { fixture: small, stallAfterBytes: 1_500_000 });
    const e = await failure(copier({ stallTimeoutMs: 400 }).copy(signed('/short.zip'), 'exports/u1/short.zip'));
    expect(e.message).toMatch(/stalled/);
    expect(e).not.toBeInstanceOf(ArchiveRejectedError);
    expect(await exists('exports/u1/short.zip')).toBe(false);
  });

  it('aborts a stalled chunked stream too, leaving no object', async () => {
    source.serve('/stall-chunked.zip', { fixture: small, stallAfterBytes: 700_000, omitLength: true, googHash: '' });
    const e = await failure(copier({ stallTimeoutMs: 400 }).copy(signed('/stall-chunked.zip'), 'exports/u1/stall-chunked.zip'));
    expect(e.message).toMatch(/stalled/);
    expect(await exists('exports/u1/stall-chunked.zip')).toBe(false);
  });

  it('refuses archives above maxBytes, by Content-Length or while streaming', async () => {
    source.serve('/big.zip', { fixture: small });
    const declared = await failure(copier({ maxBytes: 1_000_000 }).copy(signed('/big.zip'), 'exports/u1/big.zip'));
    expect(declared).toBeInstanceOf(ArchiveRejectedError);
    source.serve('/big-chunked.zip', { fixture: small, omitLength: true, googHash: '' });
    const streamed = await failure(copier({ maxBytes: 1_000_000 }).copy(signed('/big-chunked.zip'), 'exports/u1/big.zip'));
    expect(streamed).toBeInstanceOf(ArchiveRejectedError);
    expect(streamed.message).toMatch(/limit/);
    expect(await exists('exports/u1/big.zip')).toBe(false);
  });

  it('lets one of two concurrent copies of the same archive write, and both succeed', async () => {
    source.serve('/race.zip', { fixture: small });
    const [a, b] = await Promise.all([
      copier().copy(signed('/race.zip'), 'exports/u1/race.zip'),
      copier().copy(signed('/race.zip'), 'exports/u1/race.zip'),
    ]);
    expect(a).toEqual(b);
    expect(a.crc32c).toBe(small.crc32c);
    // Both uploads reached Cloud Storage; ifGenerationMatch 0 let exactly one of them finish.
    expect(gcs.writesOf(BUCKET, 'exports/u1/race.zip')).toBe(1);
  });

  it('catches a store that keeps other bytes than it was sent (the check after upload), and removes the object', async () => {
    // The stand-in normally refuses bytes that differ from the declared hashes; this fault makes it
    // accept them and report what it kept, so only the copier's own comparison stands in the way.
    gcs.faults.corruptUploads('exports/u1/rot-');
    try {
      const crcOnly = `crc32c=${small.crc32c}`;
      const cases = [
        { path: '/rot-crc.zip', route: { fixture: small, googHash: crcOnly } },
        { path: '/rot-md5.zip', route: { fixture: small, googHash: `md5=${small.md5}` } },
        { path: '/rot-none.zip', route: { fixture: small, googHash: '', omitLength: true } },
      ];
      for (const { path: p, route } of cases) {
        source.serve(p, route);
        const name = `exports/u1${p}`;
        const e = await failure(copier().copy(signed(p), name));
        expect(e).toBeInstanceOf(ArchiveRejectedError);
        expect(e.message).toMatch(/does not match the bytes sent/);
        expect(gcs.writesOf(BUCKET, name)).toBe(1);
        expect(await exists(name)).toBe(false);
      }
      // The bytes kept intact, but the object's MD5 or size reported wrong: caught too.
      gcs.faults.misreportUploads('exports/u1/misreport-md5', 'md5Hash');
      gcs.faults.misreportUploads('exports/u1/misreport-size', 'size');
      for (const name of ['exports/u1/misreport-md5.zip', 'exports/u1/misreport-size.zip']) {
        source.serve(`/${name}`, { fixture: small });
        const e = await failure(copier().copy(signed(`/${name}`), name));
        expect(e, name).toBeInstanceOf(ArchiveRejectedError);
        expect(e.message).toMatch(/does not match the bytes sent/);
        expect(await exists(name)).toBe(false);
      }
    } finally {
      gcs.faults.clear();
    }
  });

  it('accepts a stored object that reports no MD5 when its size and CRC32C match the bytes sent', async () => {
    // Cloud Storage reports no MD5 for composed objects; CRC32C is the check every object has, so
    // a missing MD5 alone is no reason to refuse (or delete) an archive whose other facts match.
    gcs.faults.misreportUploads('exports/u1/no-md5', 'noMd5Hash');
    try {
      source.serve('/no-md5.zip', { fixture: small });
      const stored = await copier().copy(signed('/no-md5.zip'), 'exports/u1/no-md5.zip');
      expect(stored).toMatchObject({ size: small.size, crc32c: small.crc32c });
      const [meta] = await storage.bucket(BUCKET).file('exports/u1/no-md5.zip').getMetadata();
      expect(meta.md5Hash).toBeUndefined();
      expect(meta.crc32c).toBe(small.crc32c);
    } finally {
      gcs.faults.clear();
    }
  });

  it('deletes every object under a prefix and counts them', async () => {
    const bucket = storage.bucket(BUCKET);
    await Promise.all(['del/a', 'del/b/c', 'del/b/d', 'delx'].map((n) => bucket.file(n).save(n, { resumable: false })));
    expect(await copier().deletePrefix('del/')).toBe(3);
    expect(await exists('delx')).toBe(true);
    expect(await copier().deletePrefix('del/')).toBe(0);
    await expect(copier().deletePrefix('')).rejects.toThrow(/empty prefix/);
  });
});
