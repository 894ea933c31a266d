/**
 * A valid zip of any size that costs almost no disk or time: Google's index and a few My Activity
 * JSON files are real, deflated entries; the bulk is stored entries of zeros that are never written
 * (the file has holes where their data lies, which read back as zeros). Past 4 GiB it uses Zip64
 * records, as a real writer must. For benchmarks of readers that must not read the data.
 */
import { open } from 'node:fs/promises';
import { crc32, deflateRawSync } from 'node:zlib';
import { centralDirectory, localHeader, serviceName, type CentralEntry } from './zip-archive';

export interface SparseZipOptions {
  /** The archive's size, about (within a few kilobytes). */
  approxBytes: number;
  /** How many entries of zeros carry the bulk. */
  bulkEntries: number;
  resource: string;
}

export interface SparseZipResult {
  size: number;
  entries: number;
  zip64: boolean;
  /** The central directory's bytes: what a reader cannot avoid reading. */
  centralDirectoryBytes: number;
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** CRC-32 of `n` zero bytes. */
function zerosCrc(n: number): number {
  let crc = 0;
  for (let left = n; left > 0; left -= ZEROS.length) crc = crc32(ZEROS.subarray(0, Math.min(left, ZEROS.length)), crc);
  return crc;
}

export async function writeSparseZipArchive(path: string, opts: SparseZipOptions): Promise<SparseZipResult> {
  const zip64 = opts.approxBytes >= 0xffff_ffff || opts.bulkEntries >= 0xffff;
  const name = serviceName(opts.resource);
  const folder = `Portability/${name}`;
  const activity = Array.from({ length: 5 }, (_, i) => ({
    name: `${folder}/MyActivity-${String(i + 1).padStart(5, '0')}.json`,
    content: Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, k) => ({ header: name, title: `Searched for item ${i * 200 + k}`, time: new Date(Date.UTC(2025, 0, 1) + (i * 200 + k) * 97_000).toISOString(), products: [name] })), null, 2)),
  }));
  const bulkSize = Math.max(0, Math.floor(opts.approxBytes / Math.max(1, opts.bulkEntries)) - 120);
  const bulkCrc = zerosCrc(bulkSize);
  const bulkNames = Array.from({ length: opts.bulkEntries }, (_, i) => `${folder}/attachments/attachment-${String(i + 1).padStart(6, '0')}.jpg`);
  const index = JSON.stringify({
    creationTime: '2026-01-01T00:00:00Z',
    totalSize: String(bulkSize * opts.bulkEntries),
    serviceStatus: [{ service: { name: opts.resource }, localizedServiceName: name, isIncomplete: false, folderName: name, extractedFileTotal: String(activity.length + bulkNames.length), extractedFileSize: String(bulkSize * opts.bulkEntries) }],
  });
  const fh = await open(path, 'w');
  try {
    const central: CentralEntry[] = [];
    let offset = 0;
    const add = async (entryName: string, data: Buffer | { zeros: number; crc: number }, deflate: boolean): Promise<void> => {
      const content = Buffer.isBuffer(data) ? (deflate ? deflateRawSync(data) : data) : undefined;
      const size = Buffer.isBuffer(data) ? data.length : data.zeros;
      const entry = { name: Buffer.from(entryName), crc: Buffer.isBuffer(data) ? crc32(data) : data.crc, compressedSize: content?.length ?? size, size, method: deflate ? 8 : 0 };
      central.push({ ...entry, offset });
      const header = localHeader(entry, zip64);
      await fh.write(header, 0, header.length, offset);
      offset += header.length;
      if (content) await fh.write(content, 0, content.length, offset);
      // Zeros are not written: the file keeps a hole there.
      offset += entry.compressedSize;
    };
    await add('Portability/archive_browser.json', Buffer.from(index), true);
    for (const a of activity) await add(a.name, a.content, true);
    for (const n of bulkNames) await add(n, { zeros: bulkSize, crc: bulkCrc }, false);
    const cd = centralDirectory(central, offset, { zip64 });
    await fh.write(cd, 0, cd.length, offset);
    return { size: offset + cd.length, entries: central.length, zip64, centralDirectoryBytes: cd.length };
  } finally {
    await fh.close();
  }
}
