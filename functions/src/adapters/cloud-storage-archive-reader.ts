/**
 * Lists a stored archive through `@google-cloud/storage` ranged reads of the object (the tail, the
 * central directory, and Google's `Portability/archive_browser.json` entry): a few reads of a few
 * kilobytes whatever the archive's size.
 */
import type { Storage } from '@google-cloud/storage';
import type { StoredArchive } from '../domain/model';
import type { ArchiveListing, ArchiveReader, RangeReader } from '../domain/ports/archive-reader';
import { ArchiveFormatError } from '../domain/errors';
import { httpStatusOf } from './stored-archive';
import { readCentralDirectory, readEntry } from './zip-central-directory';

export const ARCHIVE_BROWSER_PATH = 'Portability/archive_browser.json';
/** Google's index of a large export is a few hundred kilobytes; beyond this it is not read. */
export const MAX_ARCHIVE_BROWSER_BYTES = 16 * 1024 * 1024;

/** Ranged reads of one object, counting what they cost. */
export class CountingObjectReader implements RangeReader {
  bytesRead = 0;
  reads = 0;

  constructor(
    private readonly read_: (start: number, endInclusive: number) => Promise<Buffer>,
    readonly size: number,
  ) {}

  async read(start: number, end: number): Promise<Buffer> {
    if (end <= start) return Buffer.alloc(0);
    const buf = await this.read_(start, end - 1);
    this.reads++;
    this.bytesRead += buf.length;
    if (buf.length !== end - start) throw new ArchiveFormatError('DAMAGED', `a read of bytes ${start}-${end - 1} returned ${buf.length} bytes`);
    return buf;
  }
}

export class CloudStorageArchiveReader implements ArchiveReader {
  constructor(private readonly storage: Storage) {}

  async list(archive: StoredArchive): Promise<ArchiveListing> {
    const file = this.storage.bucket(archive.bucket).file(archive.name);
    // Ranged reads are not checksummed by the client (it validates whole objects only); the zip's own CRC-32 checks the entry read.
    const reader = new CountingObjectReader(async (start, end) => {
      try {
        return (await file.download({ start, end, validation: false, decompress: false }))[0];
      } catch (err) {
        // Gone from the bucket since the copy verified it: nothing to list, and reading again will not bring it back.
        if (httpStatusOf(err) === 404) throw new ArchiveFormatError('DAMAGED', `gs://${archive.bucket}/${archive.name} is no longer in the bucket`);
        throw err;
      }
    }, archive.size);
    const cd = await readCentralDirectory(reader);
    const browser = cd.entries.find((e) => e.path === ARCHIVE_BROWSER_PATH);
    let archiveBrowser: ArchiveListing['archiveBrowser'];
    if (browser) {
      try {
        archiveBrowser = { json: await readEntry(reader, browser, cd, MAX_ARCHIVE_BROWSER_BYTES) };
      } catch (err) {
        if (!(err instanceof ArchiveFormatError)) throw err;
        archiveBrowser = { error: err.message };
      }
    }
    return { entries: cd.entries, zip64: cd.zip64, ...(archiveBrowser ? { archiveBrowser } : {}), bytesRead: reader.bytesRead, reads: reader.reads };
  }
}
