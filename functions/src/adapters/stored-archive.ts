/**
 * Whether the object in the bucket is the source's archive: its metadata, the "already there"
 * rule, the checks of what was uploaded against the source and against what Cloud Storage stored,
 * and the removal of what a failed attempt wrote (never of a good copy another delivery made).
 */
import type { File, FileMetadata } from '@google-cloud/storage';
import { ArchiveRejectedError } from '../domain/errors';
import type { ArchiveFacts, CopyCheckpoint } from '../domain/ports/archive-copier';
import type { StoredArchive } from '../domain/model';

/**
 * The object is already there but is not this archive (a foreign object, or a different export
 * written under the same name). Copying again will not help; someone must look.
 */
export class ArchiveObjectConflictError extends ArchiveRejectedError {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveObjectConflictError';
  }
}

/** The hashes computed of the bytes that passed (only those the source did not declare). */
export interface SentHashes {
  crc32c?: string | undefined;
  md5?: string | undefined;
}

/** The storage client reports HTTP failures as `code` (ApiError) or `status`/`response.status` (GaxiosError). */
export function httpStatusOf(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const err = e as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  if (typeof err.code === 'number') return err.code;
  if (typeof err.status === 'number') return err.status;
  if (typeof err.response?.status === 'number') return err.response.status;
  return undefined;
}

export async function metadataOrUndefined(file: File): Promise<FileMetadata | undefined> {
  try {
    const [meta] = await file.getMetadata();
    return meta;
  } catch (e) {
    if (httpStatusOf(e) === 404) return undefined;
    throw e;
  }
}

/** Deletes this generation of the object, if it is still that one; a failure leaves it. */
export async function deleteGeneration(file: File, generation: FileMetadata['generation']): Promise<void> {
  await file.delete({ ifGenerationMatch: generation }).catch(() => undefined);
}

/** Does a stored object hold exactly what the source declares? Undecidable when it declares nothing. */
export function sameArchive(meta: FileMetadata, src: ArchiveFacts): boolean | undefined {
  if (src.size !== undefined && Number(meta.size) !== src.size) return false;
  if (src.crc32c !== undefined) return meta.crc32c === src.crc32c;
  if (src.md5 !== undefined) return meta.md5Hash === src.md5;
  return undefined;
}

/** Does a resumed download serve the archive the checkpoint began with? */
export function sameSource(cp: CopyCheckpoint | undefined, src: ArchiveFacts): boolean {
  if (!cp) return false;
  if (cp.size !== undefined && src.size !== undefined && cp.size !== src.size) return false;
  if (cp.crc32c !== undefined && src.crc32c !== undefined) return cp.crc32c === src.crc32c;
  if (cp.md5 !== undefined && src.md5 !== undefined) return cp.md5 === src.md5;
  return false;
}

export function toStored(file: File, meta: FileMetadata): StoredArchive {
  return {
    bucket: file.bucket.name,
    name: file.name,
    size: Number(meta.size),
    crc32c: String(meta.crc32c),
    ...(meta.md5Hash ? { md5Hash: meta.md5Hash } : {}),
  };
}

/** The "already there" rule: the same archive is success (a duplicate delivery); anything else is a conflict. */
export function existing(file: File, meta: FileMetadata, src: ArchiveFacts): StoredArchive {
  const same = sameArchive(meta, src);
  if (same === true) return toStored(file, meta);
  const why =
    same === undefined
      ? 'the source declares no size or checksum to compare with'
      : `it differs from the source (stored size ${String(meta.size)}, crc32c ${String(meta.crc32c)}; source size ${src.size ?? '?'}, crc32c ${src.crc32c ?? '?'})`;
  throw new ArchiveObjectConflictError(`Object gs://${file.bucket.name}/${file.name} already exists and ${why}`);
}

/** Do the bytes received agree with what the source declared (what was not computed is not compared)? */
export function matchesSource(count: number, computed: SentHashes, src: ArchiveFacts): boolean {
  return (
    (src.size === undefined || src.size === count) &&
    (src.crc32c === undefined || computed.crc32c === undefined || src.crc32c === computed.crc32c) &&
    (src.md5 === undefined || computed.md5 === undefined || src.md5 === computed.md5)
  );
}

export function mismatchMessage(count: number, computed: SentHashes, src: ArchiveFacts, where: string): string {
  return (
    `Archive checksum mismatch: received ${count} bytes, crc32c ${computed.crc32c ?? 'not computed'}, md5 ${computed.md5 ?? 'not computed'}; ` +
    `the source declared size ${src.size ?? '?'}, crc32c ${src.crc32c ?? '?'}, md5 ${src.md5 ?? '?'} (${where})`
  );
}

/**
 * After a failed copy, deletes an object only if it is what this attempt wrote (it holds exactly
 * the bytes we sent, or `wroteIt` says so) and not the source's archive, so a good copy that a
 * concurrent delivery finished is never removed.
 */
export async function removeIfPartial(file: File, src: ArchiveFacts, sentCrc32c: string | undefined, sentBytes: number, wroteIt = false): Promise<void> {
  const meta = await metadataOrUndefined(file).catch(() => undefined);
  if (!meta) return;
  if (sameArchive(meta, src) === true) return;
  const ours = wroteIt || (meta.crc32c === sentCrc32c && Number(meta.size) === sentBytes);
  if (!ours) return;
  await deleteGeneration(file, meta.generation);
}

/**
 * A finished upload, checked end to end: the bytes received against the source's declarations,
 * then the stored object against the bytes sent (or, for a resumed session, of which only the tail
 * passed here, against the source). A mismatch removes the object and is permanent.
 */
export async function verifyUpload(file: File, src: ArchiveFacts, sent: { count: number; computed: SentHashes; resumed: boolean }, where: string): Promise<StoredArchive> {
  const { count, computed, resumed } = sent;
  if (!resumed && !matchesSource(count, computed, src)) {
    await removeIfPartial(file, src, computed.crc32c, count, true);
    throw new ArchiveRejectedError(mismatchMessage(count, computed, src, where));
  }
  const [stored] = await file.getMetadata();
  const at = `gs://${file.bucket.name}/${file.name}`;
  if (resumed) {
    if (sameArchive(stored, src) !== true) {
      await deleteGeneration(file, stored.generation);
      throw new ArchiveRejectedError(
        `Resumed object ${at} does not match the source (size ${String(stored.size)}, crc32c ${String(stored.crc32c)}; source ${src.size ?? '?'}, ${src.crc32c ?? '?'})`,
      );
    }
    return toStored(file, stored);
  }
  const expectedCrc = computed.crc32c ?? src.crc32c;
  if (stored.crc32c !== expectedCrc || Number(stored.size) !== count || (src.md5 !== undefined && stored.md5Hash !== undefined && stored.md5Hash !== src.md5)) {
    await deleteGeneration(file, stored.generation);
    throw new ArchiveRejectedError(`Stored object ${at} does not match the bytes sent (size ${String(stored.size)} vs ${count}, crc32c ${String(stored.crc32c)} vs ${expectedCrc ?? '?'})`);
  }
  return toStored(file, stored);
}
