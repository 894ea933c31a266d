/** The seam to the stored archives' bytes, read by range (never whole) to list what an archive holds. */
import type { StoredArchive } from '../model';

/** Random access to one stored object of known size. */
export interface RangeReader {
  readonly size: number;
  /** Bytes `[start, end)`; `end` is at most `size`. */
  read(start: number, end: number): Promise<Buffer>;
}

/** One file of a zip, as its central directory describes it. */
export interface ZipEntry {
  path: string;
  size: number;
  compressedSize: number;
  /** CRC-32 of the uncompressed bytes, as the zip records it. */
  crc32: number;
  /** 0 stored, 8 deflated, other methods are listed but not read. */
  method: number;
  localHeaderOffset: number;
}

/** What an archive holds, from its central directory, and Google's index entry when it has one. */
export interface ArchiveListing {
  entries: ZipEntry[];
  /** The archive used Zip64 records (over 4 GiB or 65,535 entries, or a writer that always does). */
  zip64: boolean;
  /** The bytes of `Portability/archive_browser.json`, inflated and CRC-checked, when the archive holds it and it could be read. */
  archiveBrowser?: { json: Buffer } | { error: string };
  /** What reading the listing cost: bytes and requests of ranged reads. */
  bytesRead: number;
  reads: number;
}

export interface ArchiveReader {
  /** Throws ArchiveFormatError for an archive that is not a zip or is damaged. */
  list(archive: StoredArchive): Promise<ArchiveListing>;
}
