/**
 * The seam to the copy of archives from Google's signed URLs into the app's bucket
 * (adapters/archive-copier.ts), and what a copy reports and resumes from.
 */
import type { StoredArchive } from '../model';

export interface CopyProgress {
  (bytesCopied: number): void;
}

/**
 * Where an interrupted copy stands: the Cloud Storage resumable upload session and the source it
 * was reading. The session URI lets anyone holding it write that object: keep it encrypted.
 */
export interface CopyCheckpoint {
  uploadUri: string;
  /** The source's size and checksums when the session began; a resume must see the same archive. */
  size?: number;
  crc32c?: string;
  md5?: string;
}

export interface CopyResumeOptions {
  /** Continue this session: only the bytes Cloud Storage has not committed move again. */
  checkpoint?: CopyCheckpoint;
  /** Called (and awaited before the copy returns) when a new session starts, to persist it. */
  onCheckpoint?: (checkpoint: CopyCheckpoint) => Promise<void>;
  /** Stops the copy (a deadline); it throws CopyInterruptedError and can be resumed. */
  signal?: AbortSignal;
  /** Bytes per resumable upload request; each committed chunk survives a crash. */
  chunkSize?: number;
  /**
   * Leave archives of at least this many bytes (that declare a CRC32C) to the ranged copy: a new
   * copy then throws ArchiveNeedsPartsError as soon as the source's headers arrive, having written
   * nothing, so small archives cost no extra request to find out.
   */
  partsFrom?: number;
}

/** What a signed URL declares about its archive (`Content-Range`/`Content-Length`, `x-goog-hash`). */
export interface ArchiveFacts {
  size?: number;
  crc32c?: string;
  md5?: string;
  contentType: string;
}

/** The source of a ranged copy: its size and CRC32C are what the composite is checked against. */
export interface PartedSource {
  size: number;
  crc32c: string;
  md5?: string;
  contentType?: string;
}

/** `copy` was asked (`partsFrom`) to leave this archive to the ranged copy; nothing was written. */
export interface ArchiveCopier extends ArchiveBucket {
  /**
   * Streams one signed URL into the bucket as `objectName` (never holding the archive in memory),
   * verifies size and checksums against the source's `Content-Length`/`x-goog-hash` and against
   * the stored object, and writes with `ifGenerationMatch: 0`. If the object already exists with
   * the source's checksum (a duplicate delivery), returns it without copying again.
   */
  copy(url: string, objectName: string, onProgress?: CopyProgress, resume?: CopyResumeOptions): Promise<StoredArchive>;
  /**
   * What a signed URL declares of its archive (size, checksums), asked with a one-byte ranged GET
   * through the same checks as a copy, reading no more. Optional: without it, progress has no total.
   */
  measure?(url: string): Promise<ArchiveFacts>;
  // The ranged copy, one piece per call so that parts can run in separate invocations. Optional:
  // with a copier that lacks them, every archive is copied as one stream.
  /**
   * Copies range `index` of `count` (`partRanges(size, count)`) into `partObjectName(objectName,
   * index, count)`, verified by size and the stored CRC32C. Idempotent: a part already there with
   * the right size is kept, a partial one replaced.
   */
  copyPart?(url: string, objectName: string, index: number, count: number, size: number, onProgress?: CopyProgress): Promise<void>;
  /**
   * Composes the parts into `objectName` (`ifGenerationMatch: 0`), checks the composite's size and
   * combined CRC32C against the source, then deletes the parts. If `objectName` already holds the
   * source's archive (a duplicate), returns it. Throws ArchivePartsMissingError when parts are
   * not there, ArchiveRejectedError (composite removed) when the composite differs.
   */
  composeParts?(objectName: string, count: number, source: PartedSource): Promise<StoredArchive>;
}


/** The bucket that holds the archives, for what is not a copy: removing an export's objects. */
export interface ArchiveBucket {
  /** Removes every object under a non-empty prefix; answers how many it deleted. */
  deletePrefix(prefix: string): Promise<number>;
}
