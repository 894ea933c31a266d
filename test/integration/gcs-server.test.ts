/**
 * The Cloud Storage stand-in, exercised through the real `@google-cloud/storage` client, so that
 * what passes here is what the adapters will meet.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CRC32C, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';

let gcs: GcsServer;
let storage: Storage;
const BUCKET = 'gcs-server-test';

function hashes(buf: Buffer): { crc32c: string; md5Hash: string } {
  const crc = new CRC32C();
  crc.update(buf);
  return { crc32c: crc.toString(), md5Hash: createHash('md5').update(buf).digest('base64') };
}

/** A readable of `size` pseudo-random bytes made chunk by chunk, hashed as it goes. */
function generated(size: number, chunk = 1 << 20) {
  const crc = new CRC32C();
  const md5 = createHash('md5');
  let left = size;
  const stream = new Readable({
    read() {
      if (left === 0) return this.push(null);
      const b = randomBytes(Math.min(chunk, left));
      left -= b.length;
      crc.update(b);
      md5.update(b);
      this.push(b);
    },
  });
  return { stream, digests: () => ({ crc32c: crc.toString(), md5Hash: md5.digest('base64') }) };
}

async function drain(stream: Readable): Promise<{ size: number; crc32c: string; md5Hash: string }> {
  const crc = new CRC32C();
  const md5 = createHash('md5');
  let size = 0;
  await pipeline(
    stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        size += c.length;
        crc.update(c);
        md5.update(c);
        cb();
      },
    }),
  );
  return { size, crc32c: crc.toString(), md5Hash: md5.digest('base64') };
}

/** The client reports HTTP errors as `code` (ApiError) or `status` (GaxiosError, resumable uploads). */
async function statusOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    const err = e as { code?: unknown; status?: unknown };
    return typeof err.code === 'number' ? err.code : typeof err.status === 'number' ? err.status : undefined;
  }
}

beforeAll(async () => {
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-gcs-server' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  await gcs?.stop();
});

describe('gcs-server through the real client', () => {
  it('creates and reads buckets', async () => {
    const [exists] = await storage.bucket(BUCKET).exists();
    expect(exists).toBe(true);
    const [missing] = await storage.bucket('no-such-bucket').exists();
    expect(missing).toBe(false);
    await expect(storage.bucket(BUCKET).create()).rejects.toMatchObject({ code: 409 });
  });

  it('saves and downloads a small object with checksums like GCS', async () => {
    const data = Buffer.from('hello, portability');
    const file = storage.bucket(BUCKET).file('small/hello.txt');
    await file.save(data, { contentType: 'text/plain', metadata: { metadata: { owner: 'u1' } } });
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({ name: 'small/hello.txt', bucket: BUCKET, contentType: 'text/plain', ...hashes(data) });
    expect(Number(meta.size)).toBe(data.length);
    expect(meta.metadata).toEqual({ owner: 'u1' });
    expect(Number(meta.generation)).toBeGreaterThan(0);
    expect(meta.metageneration).toBe('1');
    // A known value: CRC32C("123456789") is 0xE3069283.
    expect(hashes(Buffer.from('123456789')).crc32c).toBe(Buffer.from('e3069283', 'hex').toString('base64'));
    const [downloaded] = await file.download();
    expect(downloaded.equals(data)).toBe(true);
    expect((await file.exists())[0]).toBe(true);
    expect((await storage.bucket(BUCKET).file('small/none').exists())[0]).toBe(false);
  });

  it.each([
    ['simple (multipart)', 'md5', false],
    ['resumable', 'crc32c', true],
  ] as const)('uploads with createWriteStream %s and validation %s', async (_label, validation, resumable) => {
    const data = randomBytes(300_000 + (resumable ? 1 : 0));
    const file = storage.bucket(BUCKET).file(`stream/${resumable ? 'r' : 's'}.bin`);
    await pipeline(Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), file.createWriteStream({ resumable, validation, metadata: { contentType: 'application/zip' } }));
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({ size: String(data.length), contentType: 'application/zip', ...hashes(data) });
    const [back] = await file.download();
    expect(back.equals(data)).toBe(true);
  });

  it('streams a 24 MB resumable upload and validates it on read', async () => {
    const size = 24 * 1024 * 1024 + 123;
    const src = generated(size);
    const file = storage.bucket(BUCKET).file('big/archive.zip');
    const progress: number[] = [];
    const ws = file.createWriteStream({ resumable: true, validation: 'crc32c', preconditionOpts: { ifGenerationMatch: 0 } });
    ws.on('progress', (p: { bytesWritten: number }) => progress.push(p.bytesWritten));
    await pipeline(src.stream, ws);
    const want = src.digests();
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({ size: String(size), ...want });
    expect(progress.length).toBeGreaterThan(0);
    const read = await drain(file.createReadStream({ validation: 'crc32c' }));
    expect(read).toEqual({ size, ...want });
    const readMd5 = await drain(file.createReadStream({ validation: 'md5' }));
    expect(readMd5.md5Hash).toBe(want.md5Hash);
  });

  it('sends chunked resumable uploads as 308 round trips', async () => {
    const data = randomBytes(600 * 1024 + 5);
    const file = storage.bucket(BUCKET).file('chunked.bin');
    await pipeline(Readable.from([data]), file.createWriteStream({ resumable: true, chunkSize: 256 * 1024 }));
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({ size: String(data.length), ...hashes(data) });
  });

  it('answers resumable status queries and chunk offsets like GCS', async () => {
    const start = await fetch(`${gcs.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=raw%2Fsession.bin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-upload-content-type': 'application/zip' },
      body: JSON.stringify({ metadata: { k: 'v' } }),
    });
    expect(start.status).toBe(200);
    const session = start.headers.get('location') as string;
    expect(session).toContain('upload_id=');
    const status0 = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes */*' } });
    expect(status0.status).toBe(308);
    expect(status0.headers.get('range')).toBeNull();
    const part1 = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes 0-3/*' }, body: 'abcd' });
    expect(part1.status).toBe(308);
    expect(part1.headers.get('range')).toBe('bytes=0-3');
    const status1 = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes */*' } });
    expect(status1.headers.get('range')).toBe('bytes=0-3');
    const last = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes 4-5/6' }, body: 'ef' });
    expect(last.status).toBe(200);
    const obj = (await last.json()) as Record<string, unknown>;
    expect(obj).toMatchObject({ name: 'raw/session.bin', size: '6', contentType: 'application/zip', metadata: { k: 'v' }, ...hashes(Buffer.from('abcdef')) });
    const again = await fetch(session, { method: 'PUT', headers: { 'content-range': 'bytes */6' } });
    expect(again.status).toBe(200);
  });

  it('refuses an upload whose declared hash or size does not match the bytes', async () => {
    const badHash = await fetch(`${gcs.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=raw%2Fbad`, {
      method: 'POST',
      headers: { 'x-goog-hash': `crc32c=${hashes(Buffer.from('other')).crc32c}` },
      body: 'data',
    });
    expect(badHash.status).toBe(400);
    const start = await fetch(`${gcs.endpoint}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=raw%2Fbad`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-upload-content-length': '10' },
      body: JSON.stringify({ crc32c: hashes(Buffer.from('0123456789')).crc32c }),
    });
    const short = await fetch(start.headers.get('location') as string, { method: 'PUT', headers: { 'content-range': 'bytes 0-*/*' }, body: '01234' });
    expect(short.status).toBe(400);
    expect((await storage.bucket(BUCKET).file('raw/bad').exists())[0]).toBe(false);
  });

  it('serves ranges with x-goog-hash of the whole object', async () => {
    const data = randomBytes(10_000);
    const file = storage.bucket(BUCKET).file('ranged.bin');
    await file.save(data, { resumable: false });
    const part = await drain(file.createReadStream({ start: 100, end: 199 }));
    expect(part.size).toBe(100);
    expect(part.crc32c).toBe(hashes(data.subarray(100, 200)).crc32c);
    const res = await fetch(`${gcs.endpoint}/storage/v1/b/${BUCKET}/o/ranged.bin?alt=media`, { headers: { range: 'bytes=-10' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 9990-9999/10000');
    expect(res.headers.get('x-goog-hash')).toBe(`crc32c=${hashes(data).crc32c},md5=${hashes(data).md5Hash}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(data.subarray(9990))).toBe(true);
    const bad = await fetch(`${gcs.endpoint}/storage/v1/b/${BUCKET}/o/ranged.bin?alt=media`, { headers: { range: 'bytes=20000-' } });
    expect(bad.status).toBe(416);
  });

  it('enforces ifGenerationMatch: 412 with a GCS error body, 0 meaning "must not exist"', async () => {
    const file = storage.bucket(BUCKET).file('precondition.bin');
    await file.save(Buffer.from('first'), { preconditionOpts: { ifGenerationMatch: 0 } });
    const [meta] = await file.getMetadata();
    for (const resumable of [true, false]) {
      expect(await statusOf(file.save(Buffer.from('second'), { resumable, preconditionOpts: { ifGenerationMatch: 0 } }))).toBe(412);
    }
    expect(
      await statusOf(pipeline(Readable.from([Buffer.from('third')]), file.createWriteStream({ resumable: true, preconditionOpts: { ifGenerationMatch: 0 } }))),
    ).toBe(412);
    const [after] = await file.getMetadata();
    expect(after.generation).toBe(meta.generation);
    expect((await file.download())[0].toString()).toBe('first');
    // Matching the live generation lets the write through.
    await file.save(Buffer.from('fourth'), { preconditionOpts: { ifGenerationMatch: Number(meta.generation) } });
    expect((await file.download())[0].toString()).toBe('fourth');

    const raw = await fetch(`${gcs.endpoint}/b/${BUCKET}/o/precondition.bin?ifGenerationMatch=1`);
    expect(raw.status).toBe(412);
    expect(await raw.json()).toEqual({
      error: { code: 412, message: expect.any(String), errors: [{ message: expect.any(String), domain: 'global', reason: 'conditionNotMet' }] },
    });
  });

  it('lists with prefix, delimiter and pages, and deletes', async () => {
    const bucket = storage.bucket(BUCKET);
    const names = ['list/a.txt', 'list/b/1.txt', 'list/b/2.txt', 'list/c.txt', 'list/d/x.txt', 'listing.txt'];
    await Promise.all(names.map((n) => bucket.file(n).save(n, { resumable: false })));
    const [all] = await bucket.getFiles({ prefix: 'list/' });
    expect(all.map((f) => f.name)).toEqual(names.slice(0, 5));
    const [limited] = await bucket.getFiles({ prefix: 'list/', maxResults: 2 });
    expect(limited.map((f) => f.name)).toEqual(names.slice(0, 2));
    const [firstPage, next, resp] = await bucket.getFiles({ prefix: 'list/', delimiter: '/', autoPaginate: false, maxResults: 2 });
    expect(firstPage.map((f) => f.name)).toEqual(['list/a.txt']);
    expect((resp as { prefixes?: string[] }).prefixes).toEqual(['list/b/']);
    expect(next).toBeTruthy();
    const [secondPage, , resp2] = await bucket.getFiles({ ...(next as object), autoPaginate: false });
    expect(secondPage.map((f) => f.name)).toEqual(['list/c.txt']);
    expect((resp2 as { prefixes?: string[] }).prefixes).toEqual(['list/d/']);

    // The same listing through the STORAGE_EMULATOR_HOST style path.
    const raw = (await (await fetch(`${gcs.endpoint}/b/${BUCKET}/o?prefix=list%2Fb%2F`)).json()) as { items: Array<{ name: string }> };
    expect(raw.items.map((i) => i.name)).toEqual(['list/b/1.txt', 'list/b/2.txt']);

    await bucket.file('list/a.txt').delete();
    expect((await bucket.file('list/a.txt').exists())[0]).toBe(false);
    await expect(bucket.file('list/a.txt').delete()).rejects.toMatchObject({ code: 404 });
    await bucket.deleteFiles({ prefix: 'list/' });
    const [left] = await bucket.getFiles({ prefix: 'list' });
    expect(left.map((f) => f.name)).toEqual(['listing.txt']);
  });

  it('answers unknown objects and buckets with 404 error bodies', async () => {
    await expect(storage.bucket(BUCKET).file('nope').getMetadata()).rejects.toMatchObject({ code: 404 });
    await expect(storage.bucket(BUCKET).file('nope').download()).rejects.toMatchObject({ code: 404 });
    const res = await fetch(`${gcs.endpoint}/storage/v1/b/missing-bucket/o`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { errors: Array<{ reason: string }> } }).error.errors[0].reason).toBe('notFound');
  });
});
