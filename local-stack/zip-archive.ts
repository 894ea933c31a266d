/**
 * Writes a real, valid .zip that looks like a Data Portability archive (My Activity JSON, Google's
 * `Portability/archive_browser.json` index, an archive-browser HTML page, attachment files),
 * deterministic from a seed and streamed to disk: only one entry (at most a few hundred KB) is held
 * in memory at a time, so archives of any size up to the plain-zip 4 GiB limit can be produced for
 * copy tests and benchmarks (larger ones: sparse-zip-archive.ts).
 *
 * Format: PKWARE APPNOTE 6.3 without data descriptors (each entry is compressed in memory first, so
 * its CRC-32 and sizes go straight into the local header); `zip64: true` writes the Zip64 records
 * (extra fields, end record and locator) even though nothing needs them, so a reader's Zip64 path
 * can be tested on a small archive.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { crc32, deflateRawSync } from 'node:zlib';
import { FastCrc32c } from './fast-crc32c';

export interface ZipArchiveOptions {
  /** Same seed, same options → byte-identical archive. */
  seed: string;
  /** Approximate size of the .zip in bytes (the result is within one entry of it, never below ~2 KB). */
  approxBytes: number;
  /** Resource group the archive is for, e.g. `myactivity.search`; decides folder names and content. */
  resource: string;
  /** `data` (default): the exported data; `archive-browser`: the small index zip some jobs return first. */
  kind?: 'data' | 'archive-browser';
  /** Services `Portability/archive_browser.json` says Google marked incomplete (by their localized name, e.g. `Chrome`). */
  incompleteServices?: string[];
  /** Write Zip64 records although the archive does not need them. */
  zip64?: boolean;
  /** The archive's comment, after the end-of-central-directory record. */
  comment?: string;
}

export interface ZipArchiveResult {
  size: number;
  /** base64 big-endian CRC32C of the whole file, as Cloud Storage reports it */
  crc32c: string;
  /** base64 MD5 of the whole file, as Cloud Storage reports it */
  md5: string;
  entries: number;
}

const MAX_PLAIN_ZIP_BYTES = 0xffff_ffff - 1024 * 1024;
// A fixed timestamp keeps archives byte-identical across runs (2026-01-01 00:00:00, DOS format).
const DOS_TIME = 0;
const DOS_DATE = ((2026 - 1980) << 9) | (1 << 5) | 1;

/** Deterministic pseudo-random bytes: AES-256-CTR keystream keyed by the seed. */
class SeededBytes {
  private readonly cipher;
  private readonly zeros = Buffer.alloc(64 * 1024);
  constructor(seed: string) {
    const key = createHash('sha256').update(`zip-archive:${seed}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }
  bytes(n: number): Buffer {
    const parts: Buffer[] = [];
    for (let left = n; left > 0; left -= this.zeros.length) parts.push(this.cipher.update(this.zeros.subarray(0, Math.min(left, this.zeros.length))));
    return Buffer.concat(parts, n);
  }
  int(maxExclusive: number): number {
    return this.bytes(4).readUInt32BE(0) % maxExclusive;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

const QUERIES = [
  'weather tomorrow', 'how to fix a leaking tap', 'train times to the airport', 'best pizza near me', 'typescript generics',
  'cloud storage signed url', 'pancake recipe', 'football results', 'translate hello to hindi', 'bengali new year date',
  'jupiter moons', 'cheap flights in march', 'how long to boil an egg', 'history of the printing press', 'yoga for beginners',
];
const SITES = ['en.wikipedia.org', 'www.bbc.co.uk', 'developer.mozilla.org', 'www.youtube.com', 'maps.google.com', 'news.ycombinator.com'];

function titleCase(s: string): string {
  return s.replace(/(^|[._\s])([a-z])/g, (_m, p: string, c: string) => `${p === '.' || p === '_' ? ' ' : p}${c.toUpperCase()}`);
}

/** Folder inside the archive, like Takeout's: `Portability/My Activity/Search`. */
function folderOf(resource: string): string {
  const [group, ...rest] = resource.split('.');
  const service = rest.length > 0 ? titleCase(rest.join(' ')) : titleCase(group);
  if (group === 'myactivity') return `Portability/My Activity/${service}`;
  return `Portability/${titleCase(group)}/${service}`;
}

/** A service's name as Google's index shows it: `chrome.history` → `Chrome history`, `myactivity.search` → `My Activity search`. */
export function serviceName(resource: string): string {
  const [group = resource, ...rest] = resource.split('.');
  const head = group === 'myactivity' ? 'My Activity' : titleCase(group);
  return [head, ...rest.map((w) => w.replace(/_/g, ' '))].join(' ');
}

function activityEntries(rng: SeededBytes, resource: string, count: number, startMs: number): unknown[] {
  const header = titleCase(resource.split('.').slice(1).join(' ') || resource);
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const q = rng.pick(QUERIES);
    const site = rng.pick(SITES);
    const visited = i % 3 === 0;
    const time = new Date(startMs + i * 97_000 + rng.int(60_000)).toISOString();
    out.push({
      header,
      title: visited ? `Visited ${site}` : `Searched for ${q}`,
      titleUrl: visited ? `https://${site}/` : `https://www.google.com/search?q=${encodeURIComponent(q)}`,
      time,
      products: [header],
      activityControls: ['Web & App Activity'],
      details: [{ name: 'From Google Ads' }].slice(0, rng.int(2)),
      id: rng.bytes(12).toString('hex'),
    });
  }
  return out;
}

function browserHtml(resource: string, files: string[]): string {
  const items = files.map((f) => `<li><a href="${f}">${f}</a></li>`).join('\n');
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Your data: ${resource}</title></head>\n<body><h1>Archive overview</h1><p>This archive contains your ${resource} data.</p><ul>\n${items}\n</ul></body></html>\n`;
}

/** One entry as the central directory describes it. */
export interface CentralEntry {
  name: Buffer;
  crc: number;
  compressedSize: number;
  size: number;
  method: number;
  offset: number;
}

const U32_MAX = 0xffff_ffff;

/** The Zip64 extended-information extra field (0x0001) carrying the 64-bit size, compressed size and offset. */
function zip64Extra(e: { size: number; compressedSize: number; offset?: number }): Buffer {
  const fields = [e.size, e.compressedSize, ...(e.offset === undefined ? [] : [e.offset])];
  const b = Buffer.alloc(4 + 8 * fields.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * fields.length, 2);
  fields.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

/** A local file header (30 bytes + name + extra) for an entry whose CRC-32 and sizes are known. */
export function localHeader(e: Omit<CentralEntry, 'offset'>, zip64: boolean): Buffer {
  const extra = zip64 ? zip64Extra(e) : Buffer.alloc(0);
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(zip64 ? 45 : 20, 4); // version needed: 4.5 (Zip64) or 2.0 (deflate)
  header.writeUInt16LE(0x0800, 6); // bit 11: names are UTF-8
  header.writeUInt16LE(e.method, 8);
  header.writeUInt16LE(DOS_TIME, 10);
  header.writeUInt16LE(DOS_DATE, 12);
  header.writeUInt32LE(e.crc, 14);
  header.writeUInt32LE(zip64 ? U32_MAX : e.compressedSize, 18);
  header.writeUInt32LE(zip64 ? U32_MAX : e.size, 22);
  header.writeUInt16LE(e.name.length, 26);
  header.writeUInt16LE(extra.length, 28);
  return Buffer.concat([header, e.name, extra]);
}

/**
 * The central directory and the end records of an archive whose entries end at `cdStart`:
 * with `zip64`, every entry carries its sizes and offset in a Zip64 extra field and the end
 * record is preceded by a Zip64 end record and its locator.
 */
export function centralDirectory(entries: CentralEntry[], cdStart: number, opts: { zip64: boolean; comment?: string }): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const extra = opts.zip64 ? zip64Extra(e) : Buffer.alloc(0);
    const h = Buffer.alloc(46);
    h.writeUInt32LE(0x02014b50, 0);
    h.writeUInt16LE((3 << 8) | (opts.zip64 ? 45 : 20), 4); // made by: UNIX
    h.writeUInt16LE(opts.zip64 ? 45 : 20, 6);
    h.writeUInt16LE(0x0800, 8);
    h.writeUInt16LE(e.method, 10);
    h.writeUInt16LE(DOS_TIME, 12);
    h.writeUInt16LE(DOS_DATE, 14);
    h.writeUInt32LE(e.crc, 16);
    h.writeUInt32LE(opts.zip64 ? U32_MAX : e.compressedSize, 20);
    h.writeUInt32LE(opts.zip64 ? U32_MAX : e.size, 24);
    h.writeUInt16LE(e.name.length, 28);
    h.writeUInt16LE(extra.length, 30);
    // comment length, disk number, internal attributes: 0
    h.writeUInt32LE((0o100644 << 16) >>> 0, 38); // external attributes: a regular file, rw-r--r--
    h.writeUInt32LE(opts.zip64 ? U32_MAX : e.offset, 42);
    parts.push(h, e.name, extra);
  }
  const cdSize = parts.reduce((n, b) => n + b.length, 0);
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4); // size of the rest of the record
    rec.writeUInt16LE((3 << 8) | 45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdStart), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(cdStart + cdSize), 8);
    locator.writeUInt32LE(1, 16); // total number of disks
    parts.push(rec, locator);
  }
  const comment = Buffer.from(opts.comment ?? '', 'utf8');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 8);
  end.writeUInt16LE(opts.zip64 ? 0xffff : entries.length, 10);
  end.writeUInt32LE(opts.zip64 ? U32_MAX : cdSize, 12);
  end.writeUInt32LE(opts.zip64 ? U32_MAX : cdStart, 16);
  end.writeUInt16LE(comment.length, 20);
  parts.push(end, comment);
  return Buffer.concat(parts);
}

class ZipWriter {
  private offset = 0;
  private readonly central: CentralEntry[] = [];
  private readonly md5 = createHash('md5');
  private readonly crc32c = new FastCrc32c();

  constructor(
    private readonly out: WriteStream,
    private readonly opts: { zip64: boolean; comment?: string },
  ) {}

  get bytesWritten(): number {
    return this.offset;
  }

  /** The entries' uncompressed bytes so far. */
  get contentBytes(): number {
    return this.central.reduce((n, e) => n + e.size, 0);
  }

  private async write(buf: Buffer): Promise<void> {
    this.md5.update(buf);
    this.crc32c.update(buf);
    this.offset += buf.length;
    if (!this.out.write(buf)) await once(this.out, 'drain');
  }

  async addFile(name: string, content: Buffer, opts: { store?: boolean } = {}): Promise<void> {
    const nameBuf = Buffer.from(name, 'utf8');
    const data = opts.store ? content : deflateRawSync(content, { level: 6 });
    const entry = { name: nameBuf, crc: crc32(content), compressedSize: data.length, size: content.length, method: opts.store ? 0 : 8 };
    this.central.push({ ...entry, offset: this.offset });
    await this.write(localHeader(entry, this.opts.zip64));
    await this.write(data);
  }

  async finish(): Promise<{ size: number; crc32c: string; md5: string; entries: number }> {
    await this.write(centralDirectory(this.central, this.offset, this.opts));
    return { size: this.offset, crc32c: this.crc32c.toString(), md5: this.md5.digest('base64'), entries: this.central.length };
  }
}

/** What `Portability/archive_browser.json` holds, in the shape Google's exports use (int64 counts as strings). */
function archiveBrowserJson(services: Array<{ name: string; folder: string; files: string[]; bytes: number; incomplete: boolean }>): string {
  const total = services.reduce((n, s) => n + s.bytes, 0);
  return JSON.stringify({
    creationTime: '2026-01-01T00:00:00Z',
    totalSize: String(total),
    serviceStatus: services.map((s) => ({
      service: { name: s.name.toUpperCase().replace(/\W+/g, '_') },
      localizedServiceName: s.name,
      isIncomplete: s.incomplete,
      folderName: s.folder,
      extractedFile: s.files.map((f) => ({ name: f, extension: f.slice(f.lastIndexOf('.') + 1), state: 'EXTRACTED', urlSafeName: encodeURIComponent(f) })),
      deletedFileCount: '0',
      extractedFileTotal: String(s.files.length),
      extractedFileSize: String(s.bytes),
    })),
  }, null, 2);
}

/** Writes the archive to `path` (overwriting it) and returns its size and GCS-style checksums. */
export async function writeZipArchive(path: string, opts: ZipArchiveOptions): Promise<ZipArchiveResult> {
  if (!Number.isFinite(opts.approxBytes) || opts.approxBytes < 0 || opts.approxBytes > MAX_PLAIN_ZIP_BYTES) {
    throw new RangeError(`approxBytes must be between 0 and ${MAX_PLAIN_ZIP_BYTES} (no zip64)`);
  }
  const rng = new SeededBytes(`${opts.seed}|${opts.resource}|${opts.kind ?? 'data'}`);
  const out = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined); // observed through the race below
  const zip = new ZipWriter(out, { zip64: opts.zip64 === true, ...(opts.comment !== undefined ? { comment: opts.comment } : {}) });
  const folder = folderOf(opts.resource);
  const target = opts.approxBytes;
  const names: string[] = [];
  // Room for the central directory and the end record, so the file ends close to approxBytes.
  const reserve = () => 22 + 120 * (names.length + 1);

  const run = async () => {
    if (opts.kind === 'archive-browser') {
      await zip.addFile('archive_browser.html', Buffer.from(browserHtml(opts.resource, ['index.html', `${folder}/`])));
      names.push('archive_browser.html');
      // Browser zips carry icons and styles: pad with a few small stored assets up to the target.
      for (let i = 1; zip.bytesWritten + reserve() < target; i++) {
        const n = Math.min(16 * 1024, Math.max(64, target - zip.bytesWritten - reserve() - 80));
        const name = `assets/icon-${String(i).padStart(3, '0')}.png`;
        await zip.addFile(name, rng.bytes(n), { store: true });
        names.push(name);
      }
    } else {
      let startMs = Date.UTC(2025, 0, 1) + rng.int(86_400_000);
      // Always at least one activity file, so even a tiny archive is a meaningful export.
      for (let part = 1; part === 1 || zip.bytesWritten + reserve() < target; part++) {
        const left = target - zip.bytesWritten - reserve();
        // Activity JSON compresses ~10:1; attachments (random bytes) do not: they make up the bulk,
        // which keeps generation fast at any size.
        const count = Math.max(5, Math.min(400, Math.floor(left / 40)));
        const entries = activityEntries(rng, opts.resource, count, startMs);
        startMs += count * 97_000;
        const json = `${folder}/MyActivity-${String(part).padStart(5, '0')}.json`;
        await zip.addFile(json, Buffer.from(JSON.stringify(entries, null, 2)));
        names.push(json);
        const remaining = target - zip.bytesWritten - reserve() - 100;
        if (remaining > 256) {
          const att = `${folder}/attachments/attachment-${String(part).padStart(5, '0')}.jpg`;
          await zip.addFile(att, rng.bytes(Math.min(256 * 1024, remaining)));
          names.push(att);
        }
      }
      await zip.addFile(`${folder}/MyActivity.html`, Buffer.from(browserHtml(opts.resource, names)));
      names.push(`${folder}/MyActivity.html`);
    }
    // Google's index of the archive: per service, whether it is complete, its files and their size.
    const services = opts.resource.split('+').map((r) => ({
      name: serviceName(r),
      folder: folder.slice('Portability/'.length),
      files: names.filter((n) => n.startsWith(`${folder}/`)).map((n) => n.slice(folder.length + 1)),
      bytes: zip.contentBytes,
      incomplete: opts.incompleteServices?.includes(r) === true,
    }));
    await zip.addFile('Portability/archive_browser.json', Buffer.from(archiveBrowserJson(services)));
    const result = await zip.finish();
    out.end();
    await once(out, 'finish');
    return result;
  };

  try {
    return await Promise.race([run(), failed]);
  } catch (err) {
    out.destroy();
    throw err;
  }
}
