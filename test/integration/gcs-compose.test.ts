/**
 * `objects.compose` on the Cloud Storage stand-in, through the real client's `bucket.combine`: the
 * composite's CRC32C is combined from its components' (never recomputed), and must equal the CRC32C
 * of the concatenated bytes as the storage client itself computes it.
 */
import { randomBytes } from 'node:crypto';
import { CRC32C, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32cCombine, startGcsServer, type GcsServer } from '../../local-stack/gcs-server';

let gcs: GcsServer;
let storage: Storage;
const BUCKET = 'compose-bucket';

beforeAll(async () => {
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-gcs-compose' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  await gcs?.stop();
});

const crcOf = (...parts: Buffer[]): string => {
  const c = new CRC32C();
  for (const p of parts) c.update(p);
  return c.toString();
};

async function download(name: string, range?: { start: number; end: number }): Promise<Buffer> {
  const [data] = await storage.bucket(BUCKET).file(name).download({ validation: false, ...(range ?? {}) });
  return data;
}

describe('compose on the GCS stand-in', () => {
  it('combines CRC32C without reading bytes, and serves the concatenation (ranges across parts too)', async () => {
    const parts = [randomBytes(100_000), randomBytes(1), randomBytes(65_537)];
    const bucket = storage.bucket(BUCKET);
    for (const [i, p] of parts.entries()) await bucket.file(`p${i}`).save(p, { resumable: false });
    const [composite] = await bucket.combine(['p0', 'p1', 'p2'], 'whole.zip', { ifGenerationMatch: 0 });
    const [meta] = await composite.getMetadata();
    const whole = Buffer.concat(parts);
    expect(meta.crc32c).toBe(crcOf(whole));
    expect(Number(meta.size)).toBe(whole.length);
    expect(meta.md5Hash).toBeUndefined();
    expect(meta.componentCount).toBe(3);

    // The components can go: the composite keeps its bytes.
    for (const i of [0, 1, 2]) await bucket.file(`p${i}`).delete();
    expect((await download('whole.zip')).equals(whole)).toBe(true);
    expect((await download('whole.zip', { start: 99_990, end: 100_020 })).equals(whole.subarray(99_990, 100_021))).toBe(true);

    // A composite of a composite stays consistent.
    await bucket.file('tail').save(parts[1], { resumable: false });
    const [again] = await bucket.combine(['whole.zip', 'tail'], 'twice.zip');
    const [meta2] = await again.getMetadata();
    expect(meta2.crc32c).toBe(crcOf(whole, parts[1]));
    expect(meta2.componentCount).toBe(4);
    expect((await download('twice.zip')).equals(Buffer.concat([whole, parts[1]]))).toBe(true);
  });

  it('refuses an existing destination under ifGenerationMatch=0 and a missing source', async () => {
    const bucket = storage.bucket(BUCKET);
    await bucket.file('a').save(Buffer.from('aaa'), { resumable: false });
    await bucket.file('exists').save(Buffer.from('x'), { resumable: false });
    await expect(bucket.combine(['a'], 'exists', { ifGenerationMatch: 0 })).rejects.toMatchObject({ code: 412 });
    await expect(bucket.combine(['a', 'missing'], 'new')).rejects.toMatchObject({ code: 404 });
    const [exists] = await bucket.file('new').exists();
    expect(exists).toBe(false);
  });

  it('crc32cCombine agrees with hashing the concatenation, for lengths past 2^32 too', () => {
    const a = randomBytes(777);
    const b = randomBytes(4096 + 3);
    const val = (s: string) => Buffer.from(s, 'base64').readUInt32BE(0);
    expect(crc32cCombine(val(crcOf(a)), val(crcOf(b)), b.length)).toBe(val(crcOf(a, b)));
    // Appending 2^32 + 5 zero bytes: combine with the CRC of that zero run computed in pieces.
    const zeros = Buffer.alloc(1 << 20);
    let zeroCrc = val(crcOf(zeros));
    let zeroLen = zeros.length;
    while (zeroLen < 2 ** 32) {
      zeroCrc = crc32cCombine(zeroCrc, zeroCrc, zeroLen);
      zeroLen *= 2;
    }
    const five = Buffer.alloc(5);
    const big = crc32cCombine(zeroCrc, val(crcOf(five)), 5);
    expect(crc32cCombine(val(crcOf(a)), big, zeroLen + 5)).toBe(
      crc32cCombine(crc32cCombine(val(crcOf(a)), zeroCrc, zeroLen), val(crcOf(five)), 5),
    );
  });
});
