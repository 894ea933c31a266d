/**
 * Reads a zip's central directory through ranged reads (PKWARE APPNOTE 6.3.10, sections 4.3 and
 * 4.5): one read of the tail for the end-of-central-directory record (and the Zip64 end record and
 * locator when present), one read of the central directory unless the tail already held it, and,
 * for one entry, one read of its local header and data. Never the whole archive.
 *
 * Written here rather than taken from yauzl: yauzl reads the central directory entry by entry
 * through its RandomAccessReader (two reads per entry: the fixed part, then name/extra/comment),
 * measured at 4,013 reads for a 2,006-entry archive where this makes 3 (bench/results.md).
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { ArchiveFormatError } from '../domain/errors';
import type { RangeReader, ZipEntry } from '../domain/ports/archive-reader';

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_BYTES = 22;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_EOCD_BYTES = 56;
const CENTRAL_BYTES = 46;
const LOCAL_BYTES = 30;
const MAX_COMMENT = 0xffff;
/** The tail read: the longest comment, the end record, the Zip64 locator and end record (so one read finds them all). */
export const TAIL_BYTES = MAX_COMMENT + EOCD_BYTES + ZIP64_LOCATOR_BYTES + ZIP64_EOCD_BYTES;
/** A central directory above this is refused as damaged rather than held in memory (about 600,000 entries of 100-byte names). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;

export interface CentralDirectory {
  entries: ZipEntry[];
  zip64: boolean;
  /** Where the central directory starts: entries' data lie before it. */
  offset: number;
  /** The tail read, from `tailAt`: an entry that lies in it is read from it, not fetched again. */
  tail: { at: number; bytes: Buffer };
}

const damaged = (message: string): ArchiveFormatError => new ArchiveFormatError('DAMAGED', message);

/** A 64-bit field as a safe integer (no real archive reaches 2^53 bytes). */
function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw damaged(`a Zip64 field holds ${v}, beyond any real archive`);
  return Number(v);
}

// IBM code page 437, bytes 0x80-0xFF: the names of entries without the UTF-8 flag (APPNOTE appendix D).
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';

function decodeName(raw: Buffer, utf8: boolean): string {
  if (utf8 || raw.every((b) => b < 0x80)) return raw.toString('utf8');
  return Array.from(raw, (b) => (b < 0x80 ? String.fromCharCode(b) : (CP437_HIGH[b - 0x80] as string))).join('');
}

/** The end record: the last signature whose comment length runs exactly to the end of the file. */
function findEnd(tail: Buffer): number {
  for (let i = tail.length - EOCD_BYTES; i >= Math.max(0, tail.length - EOCD_BYTES - MAX_COMMENT); i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + EOCD_BYTES + tail.readUInt16LE(i + 20) === tail.length) return i;
  }
  return -1;
}

/** Reads `[start, end)`, from `have` (a buffer of the file from `haveAt`) when it holds them. */
async function slice(reader: RangeReader, have: Buffer, haveAt: number, start: number, end: number): Promise<Buffer> {
  if (start >= haveAt && end <= haveAt + have.length) return have.subarray(start - haveAt, end - haveAt);
  return reader.read(start, end);
}

export async function readCentralDirectory(reader: RangeReader): Promise<CentralDirectory> {
  const size = reader.size;
  if (size < EOCD_BYTES) throw new ArchiveFormatError('NOT_ZIP', `${size} bytes is too short for a zip`);
  const tailAt = Math.max(0, size - TAIL_BYTES);
  const tail = await reader.read(tailAt, size);
  const endAt = findEnd(tail);
  if (endAt < 0) throw new ArchiveFormatError('NOT_ZIP', 'no end-of-central-directory record: not a zip');
  const end = tail.subarray(endAt, endAt + EOCD_BYTES);
  const endPos = tailAt + endAt;
  let disk = end.readUInt16LE(4);
  let cdDisk = end.readUInt16LE(6);
  let count = end.readUInt16LE(10);
  let cdSize = end.readUInt32LE(12);
  let cdOffset = end.readUInt32LE(16);
  let cdEnd = endPos;
  let zip64 = false;
  if (endAt >= ZIP64_LOCATOR_BYTES && tail.readUInt32LE(endAt - ZIP64_LOCATOR_BYTES) === ZIP64_LOCATOR_SIG) {
    zip64 = true;
    const locator = tail.subarray(endAt - ZIP64_LOCATOR_BYTES, endAt);
    const recordAt = u64(locator, 8);
    if (locator.readUInt32LE(16) > 1) throw damaged('split (multi-disk) archives are not read');
    if (recordAt + ZIP64_EOCD_BYTES > endPos - ZIP64_LOCATOR_BYTES) throw damaged(`the Zip64 end record's offset ${recordAt} is past the locator`);
    const record = await slice(reader, tail, tailAt, recordAt, recordAt + ZIP64_EOCD_BYTES);
    if (record.readUInt32LE(0) !== ZIP64_EOCD_SIG) throw damaged(`no Zip64 end-of-central-directory record at offset ${recordAt}`);
    disk = record.readUInt32LE(16);
    cdDisk = record.readUInt32LE(20);
    count = u64(record, 32);
    cdSize = u64(record, 40);
    cdOffset = u64(record, 48);
    cdEnd = recordAt;
  } else if (cdSize === 0xffff_ffff || cdOffset === 0xffff_ffff) {
    // (A count of 0xFFFF alone may be a plain archive of exactly 65,535 entries.)
    throw damaged('the end record points to Zip64 records that are not there');
  }
  if (disk !== 0 || cdDisk !== 0) throw damaged('split (multi-disk) archives are not read');
  if (cdOffset + cdSize > cdEnd) throw damaged(`the central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record at ${cdEnd}`);
  if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES) throw damaged(`the central directory is ${cdSize} bytes, more than the ${MAX_CENTRAL_DIRECTORY_BYTES} read`);
  if (count * CENTRAL_BYTES > cdSize) throw damaged(`${count} entries cannot fit in a ${cdSize}-byte central directory`);
  const cd = await slice(reader, tail, tailAt, cdOffset, cdOffset + cdSize);
  return { entries: parseEntries(cd, count, cdOffset), zip64, offset: cdOffset, tail: { at: tailAt, bytes: tail } };
}

function parseEntries(cd: Buffer, count: number, cdOffset: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_BYTES > cd.length || cd.readUInt32LE(at) !== CENTRAL_SIG) throw damaged(`central directory entry ${i + 1} of ${count} is not where the directory says`);
    const flags = cd.readUInt16LE(at + 8);
    const nameLen = cd.readUInt16LE(at + 28);
    const extraLen = cd.readUInt16LE(at + 30);
    const commentLen = cd.readUInt16LE(at + 32);
    const next = at + CENTRAL_BYTES + nameLen + extraLen + commentLen;
    if (next > cd.length) throw damaged(`central directory entry ${i + 1} runs past the directory`);
    const name = cd.subarray(at + CENTRAL_BYTES, at + CENTRAL_BYTES + nameLen);
    const entry: ZipEntry = {
      path: decodeName(name, (flags & 0x0800) !== 0),
      size: cd.readUInt32LE(at + 24),
      compressedSize: cd.readUInt32LE(at + 20),
      crc32: cd.readUInt32LE(at + 16),
      method: cd.readUInt16LE(at + 10),
      localHeaderOffset: cd.readUInt32LE(at + 42),
    };
    applyZip64Extra(entry, cd.subarray(at + CENTRAL_BYTES + nameLen, at + CENTRAL_BYTES + nameLen + extraLen), cd.readUInt16LE(at + 34) === 0xffff);
    if (entry.localHeaderOffset + LOCAL_BYTES > cdOffset) throw damaged(`entry ${entry.path} starts at ${entry.localHeaderOffset}, inside or past the central directory`);
    entries.push(entry);
    at = next;
  }
  return entries;
}

/** The Zip64 extra field (0x0001) holds, in this order, only the fields whose 32-bit value is all ones. */
function applyZip64Extra(entry: ZipEntry, extra: Buffer, diskInExtra: boolean): void {
  const wanted = [entry.size === 0xffff_ffff, entry.compressedSize === 0xffff_ffff, entry.localHeaderOffset === 0xffff_ffff, diskInExtra];
  if (!wanted.some(Boolean)) return;
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(at);
    const len = extra.readUInt16LE(at + 2);
    if (at + 4 + len > extra.length) break;
    if (id === 0x0001) {
      let p = at + 4;
      const take = (): number => {
        if (p + 8 > at + 4 + len) throw damaged(`entry ${entry.path}: its Zip64 extra field is too short`);
        const v = u64(extra, p);
        p += 8;
        return v;
      };
      if (wanted[0]) entry.size = take();
      if (wanted[1]) entry.compressedSize = take();
      if (wanted[2]) entry.localHeaderOffset = take();
      return;
    }
    at += 4 + len;
  }
  throw damaged(`entry ${entry.path} needs a Zip64 extra field it does not have`);
}

/**
 * One entry's bytes, inflated and checked against its CRC-32: one ranged read of its local header
 * and data (a second only when the local extra field is longer than guessed). Entries above
 * `maxBytes` (compressed or not) are refused, so a hostile archive cannot make us inflate gigabytes.
 */
export async function readEntry(reader: RangeReader, entry: ZipEntry, cd: Pick<CentralDirectory, 'offset' | 'tail'>, maxBytes: number): Promise<Buffer> {
  const cdOffset = cd.offset;
  if (entry.size > maxBytes || entry.compressedSize > maxBytes) throw damaged(`${entry.path} is ${entry.size} bytes, more than the ${maxBytes} read`);
  if (entry.method !== 0 && entry.method !== 8) throw damaged(`${entry.path} uses compression method ${entry.method}`);
  const nameGuess = Buffer.byteLength(entry.path, 'utf8');
  const start = entry.localHeaderOffset;
  const guessEnd = Math.min(cdOffset, start + LOCAL_BYTES + nameGuess + 64 + entry.compressedSize);
  let buf = await slice(reader, cd.tail.bytes, cd.tail.at, start, guessEnd);
  if (buf.length < LOCAL_BYTES || buf.readUInt32LE(0) !== LOCAL_SIG) throw damaged(`no local header for ${entry.path} at offset ${start}`);
  const dataAt = LOCAL_BYTES + buf.readUInt16LE(26) + buf.readUInt16LE(28);
  const dataEnd = dataAt + entry.compressedSize;
  if (start + dataEnd > cdOffset) throw damaged(`${entry.path}'s data runs into the central directory`);
  if (dataEnd > buf.length) buf = Buffer.concat([buf, await slice(reader, cd.tail.bytes, cd.tail.at, start + buf.length, start + dataEnd)]);
  const data = buf.subarray(dataAt, dataEnd);
  let content: Buffer;
  try {
    content = entry.method === 0 ? data : inflateRawSync(data, { maxOutputLength: Math.max(1, maxBytes) });
  } catch (err) {
    throw damaged(`${entry.path} does not inflate: ${(err as Error).message}`);
  }
  if (content.length !== entry.size || crc32(content) !== entry.crc32) throw damaged(`${entry.path} does not match its size and CRC-32`);
  return content;
}
