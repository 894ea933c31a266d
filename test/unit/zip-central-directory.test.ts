/**
 * The zip central-directory reader over ranged reads: plain and Zip64 archives (forced on small
 * ones), a comment after the end record, an empty zip, damaged and non-zip bytes; and that it reads
 * only the tail and the directory, never the archive's data.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32, deflateRawSync } from 'node:zlib';
import { readCentralDirectory, readEntry, TAIL_BYTES } from '../../functions/src/adapters/zip-central-directory';
import { ArchiveFormatError } from '../../functions/src/domain/errors';
import type { RangeReader } from '../../functions/src/domain/ports/archive-reader';
import { centralDirectory, localHeader, writeZipArchive, type CentralEntry } from '../../local-stack/zip-archive';

/** A reader over a buffer that counts what it served. */
function bufferReader(buf: Buffer): RangeReader & { served: number; reads: Array<[number, number]> } {
  const r = {
    size: buf.length,
    served: 0,
    reads: [] as Array<[number, number]>,
    read(start: number, end: number): Promise<Buffer> {
      r.reads.push([start, end]);
      r.served += end - start;
      return Promise.resolve(buf.subarray(start, end));
    },
  };
  return r;
}

/** A zip built in memory from (name, content) pairs, for the damaged and edge cases. */
function zipOf(files: Array<[string, string]>, opts: { zip64: boolean; comment?: string; prefix?: Buffer } = { zip64: false }): Buffer {
  const parts: Buffer[] = opts.prefix ? [opts.prefix] : [];
  let offset = opts.prefix?.length ?? 0;
  const central: CentralEntry[] = [];
  for (const [name, text] of files) {
    const content = Buffer.from(text);
    const data = deflateRawSync(content);
    const e = { name: Buffer.from(name), crc: crc32(content), compressedSize: data.length, size: content.length, method: 8 };
    central.push({ ...e, offset });
    const h = localHeader(e, opts.zip64);
    parts.push(h, data);
    offset += h.length + data.length;
  }
  parts.push(centralDirectory(central, offset, opts));
  return Buffer.concat(parts);
}

const rejects = async (buf: Buffer, kind: 'NOT_ZIP' | 'DAMAGED', message: RegExp): Promise<void> => {
  const err = await readCentralDirectory(bufferReader(buf)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ArchiveFormatError);
  expect((err as ArchiveFormatError).kind).toBe(kind);
  expect((err as Error).message).toMatch(message);
};

describe('zip central directory over ranged reads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'zip-cd-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const zip64 of [false, true]) {
    it(`lists a simulator archive ${zip64 ? 'with Zip64 records forced' : 'without Zip64'} as unzip does, reading the tail and the directory only`, async () => {
      const file = path.join(dir, `a-${zip64}.zip`);
      const r = await writeZipArchive(file, { seed: 'cd', approxBytes: 600_000, resource: 'myactivity.search', zip64, comment: 'exported for the manifest test' });
      const buf = await readFile(file);
      const reader = bufferReader(buf);
      const cd = await readCentralDirectory(reader);
      expect(cd.zip64).toBe(zip64);
      expect(cd.entries).toHaveLength(r.entries);
      // unzip -Z -l: size, compressed size and name of every entry, from an independent reader.
      const listed = execFileSync('zipinfo', ['-l', file], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => /^-/.test(l))
        .map((l) => {
          const f = l.trim().split(/\s+/);
          return { size: Number(f[3]), compressedSize: Number(f[5]), path: f.slice(9).join(' ') };
        });
      expect(cd.entries.map((e) => ({ size: e.size, compressedSize: e.compressedSize, path: e.path }))).toEqual(listed);
      expect(cd.entries.map((e) => e.path)).toContain('Portability/archive_browser.json');
      // The archive is larger than the tail: one read of the tail, which held the directory too (none of the rest of the data).
      expect(buf.length).toBeGreaterThan(TAIL_BYTES);
      expect(reader.reads).toEqual([[buf.length - TAIL_BYTES, buf.length]]);
      // One entry read back: inflated, checked against its CRC-32.
      const browser = cd.entries.find((e) => e.path === 'Portability/archive_browser.json');
      const json = JSON.parse((await readEntry(reader, browser!, cd, 1 << 20)).toString('utf8')) as { serviceStatus: unknown[] };
      expect(json.serviceStatus).toHaveLength(1);
      // It lay in the tail already read: no further request.
      expect(reader.reads).toHaveLength(1);
      // An entry before the tail is one more read, of its header and data only.
      const first = cd.entries[0]!;
      await readEntry(reader, first, cd, 1 << 20);
      expect(reader.reads).toHaveLength(2);
      expect(reader.reads[1]?.[0]).toBe(first.localHeaderOffset);
      expect((reader.reads[1]?.[1] ?? 0) - first.localHeaderOffset).toBeLessThan(30 + first.path.length + 64 + first.compressedSize + 1);
    });
  }

  it('checks CRC-32 values against the bytes (unzip -t agrees the archive is sound)', async () => {
    const buf = zipOf([['a/b.txt', 'hello'], ['a/c/d.json', '{"x":1}']], { zip64: true });
    const cd = await readCentralDirectory(bufferReader(buf));
    expect(cd.entries.map((e) => [e.path, e.crc32])).toEqual([
      ['a/b.txt', crc32(Buffer.from('hello'))],
      ['a/c/d.json', crc32(Buffer.from('{"x":1}'))],
    ]);
    const file = path.join(dir, 'small64.zip');
    await import('node:fs/promises').then((fs) => fs.writeFile(file, buf));
    expect(execFileSync('unzip', ['-t', file], { encoding: 'utf8' })).toMatch(/No errors detected/);
  });

  it('reads a directory larger than the tail in one more read, of exactly the directory', async () => {
    const files = Array.from({ length: 3000 }, (_, i): [string, string] => [`Portability/My Activity/Search/part-${String(i).padStart(5, '0')}-with-a-long-name.json`, `${i}`]);
    const buf = zipOf(files, { zip64: true });
    const reader = bufferReader(buf);
    const cd = await readCentralDirectory(reader);
    expect(cd.entries).toHaveLength(3000);
    const endRecords = 56 + 20 + 22;
    expect(reader.reads).toEqual([
      [buf.length - TAIL_BYTES, buf.length],
      [cd.offset, buf.length - endRecords],
    ]);
  });

  it('finds the end record behind a comment, also one that contains the end signature itself', async () => {
    const trap = Buffer.alloc(22);
    trap.writeUInt32LE(0x06054b50, 0);
    const buf = zipOf([['x.txt', 'x']], { zip64: false, comment: `note ${trap.toString('latin1')} end` });
    const cd = await readCentralDirectory(bufferReader(buf));
    expect(cd.entries.map((e) => e.path)).toEqual(['x.txt']);
  });

  it('reads an empty zip (22 bytes) as no entries', async () => {
    const cd = await readCentralDirectory(bufferReader(centralDirectory([], 0, { zip64: false })));
    expect(cd.entries).toEqual([]);
    expect((await readCentralDirectory(bufferReader(centralDirectory([], 0, { zip64: true })))).entries).toEqual([]);
  });

  it('refuses bytes that are not a zip', async () => {
    await rejects(Buffer.from('{"not":"a zip"}'), 'NOT_ZIP', /too short/);
    await rejects(Buffer.alloc(200_000, 7), 'NOT_ZIP', /no end-of-central-directory/);
    await rejects(Buffer.alloc(0), 'NOT_ZIP', /too short/);
  });

  it('refuses damaged archives with a reason', async () => {
    const good = zipOf([['a.txt', 'aaaa'], ['b.txt', 'bbbb']], { zip64: false });
    const endAt = good.length - 22;
    // The directory's offset points past its end record.
    const far = Buffer.from(good);
    far.writeUInt32LE(endAt, endAt + 16);
    await rejects(far, 'DAMAGED', /runs past its end record/);
    // The directory's first signature is gone.
    const cdAt = good.readUInt32LE(endAt + 16);
    const sig = Buffer.from(good);
    sig.writeUInt32LE(0, cdAt);
    await rejects(sig, 'DAMAGED', /entry 1 of 2 is not where/);
    // More entries claimed than the directory holds.
    const many = Buffer.from(good);
    many.writeUInt16LE(3, endAt + 8);
    many.writeUInt16LE(3, endAt + 10);
    await rejects(many, 'DAMAGED', /entry 3 of 3|cannot fit/);
    // Zip64 markers without Zip64 records.
    const marked = Buffer.from(good);
    marked.writeUInt32LE(0xffff_ffff, endAt + 16);
    await rejects(marked, 'DAMAGED', /Zip64 records that are not there/);
    // A Zip64 entry whose extra field is missing.
    const z = zipOf([['a.txt', 'aaaa']], { zip64: true });
    const zEnd = z.length - 22 - 20 - 56;
    const zCd = Number(z.readBigUInt64LE(zEnd + 48));
    const noExtra = Buffer.from(z);
    noExtra.writeUInt16LE(0x9999, zCd + 46 + 'a.txt'.length); // the extra field's id is no longer 0x0001
    await rejects(noExtra, 'DAMAGED', /needs a Zip64 extra field/);
    // A truncated archive (the last bytes lost in transit).
    await rejects(good.subarray(0, good.length - 5), 'NOT_ZIP', /no end-of-central-directory/);
    // An entry whose bytes do not match its CRC-32.
    const flipped = Buffer.from(good);
    flipped[30 + 'a.txt'.length] ^= 0xff;
    const cd = await readCentralDirectory(bufferReader(flipped));
    await expect(readEntry(bufferReader(flipped), cd.entries[0]!, cd, 1024)).rejects.toThrow(/does not (inflate|match its size and CRC-32)/);
    // An entry larger than the reader takes is not inflated.
    const goodCd = await readCentralDirectory(bufferReader(good));
    await expect(readEntry(bufferReader(good), goodCd.entries[0]!, goodCd, 2)).rejects.toThrow(/more than the 2 read/);
  });

  it('decodes names without the UTF-8 flag as code page 437', async () => {
    const buf = zipOf([['caf\u00e9.txt', 'x']], { zip64: false });
    // Rewrite the name as CP437 (é = 0x82) and clear the UTF-8 flag in the central directory.
    const endAt = buf.length - 22;
    const cdAt = buf.readUInt32LE(endAt + 16);
    const fixed = Buffer.from(buf.subarray(cdAt, cdAt + 46));
    fixed.writeUInt16LE(0, 8); // no UTF-8 flag
    fixed.writeUInt16LE(8, 28); // the CP437 name is 8 bytes
    const cp437 = Buffer.concat([buf.subarray(0, cdAt), fixed, Buffer.from('caf\x82.txt', 'latin1')]);
    const rest = buf.subarray(cdAt + 46 + Buffer.byteLength('caf\u00e9.txt'));
    const end = Buffer.from(rest.subarray(rest.length - 22));
    end.writeUInt32LE(46 + 8, 12);
    const rebuilt = Buffer.concat([cp437, end]);
    const cd = await readCentralDirectory(bufferReader(rebuilt));
    expect(cd.entries[0]?.path).toBe('caf\u00e9.txt');
  });
});
