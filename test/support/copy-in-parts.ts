/**
 * The whole ranged copy in one call, for tests and the benchmark (the pipeline spreads its pieces
 * over copy-part tasks instead): a one-byte probe of the signed URL for the archive's size and
 * CRC32C, every part in parallel, then the compose.
 */
import type { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { declaredFacts, describe, sourceStatusError, type SignedUrlSource } from '../../functions/src/adapters/signed-url-source';
import { ArchivePartsMissingError } from '../../functions/src/domain/errors';
import type { ArchiveFacts, CopyProgress } from '../../functions/src/domain/ports/archive-copier';
import type { StoredArchive } from '../../functions/src/domain/model';

/** Learns the archive's size and checksums from a one-byte ranged GET (a signed URL allows GET only). */
export async function probe(source: SignedUrlSource, url: string, timeoutMs = 60_000): Promise<ArchiveFacts> {
  const u = await source.check(url);
  const res = await source.fetch(u, 'Archive probe', { range: 'bytes=0-0', signal: AbortSignal.timeout(timeoutMs) });
  res.discard();
  if (res.status !== 206 && res.status !== 200) throw sourceStatusError(res.status, 'Archive probe', describe(u));
  // The size only from a 206's Content-Range, as before: a 200 ignored the range.
  const { size, ...facts } = declaredFacts(res);
  return res.status === 206 && size !== undefined ? { size, ...facts } : facts;
}

/**
 * Copies `url` as `parts` ranges and composes them into `objectName`; falls back to one stream
 * when the source declares no size or no CRC32C (a composite has no MD5 to check). A duplicate
 * finds the archive (the first compose) and downloads nothing but the probe.
 */
export async function copyInParts(
  copier: CloudStorageArchiveCopier,
  source: SignedUrlSource,
  url: string,
  objectName: string,
  parts: number,
  onProgress?: CopyProgress,
): Promise<StoredArchive> {
  if (!Number.isInteger(parts) || parts < 1 || parts > 32) throw new RangeError('parts must be an integer from 1 to 32 (the compose limit)');
  const src = await probe(source, url);
  if (src.size === undefined || src.size < parts || src.crc32c === undefined) return copier.copy(url, objectName, onProgress);
  const parted = { size: src.size, crc32c: src.crc32c, ...(src.md5 ? { md5: src.md5 } : {}), contentType: src.contentType };
  try {
    return await copier.composeParts(objectName, parts, parted);
  } catch (e) {
    if (!(e instanceof ArchivePartsMissingError)) throw e;
  }
  const done = Array.from({ length: parts }, () => 0);
  const report = (i: number, n: number): void => {
    done[i] = n;
    onProgress?.(done.reduce((a, b) => a + b, 0));
  };
  await Promise.all(done.map((_, i) => copier.copyPart(url, objectName, i, parts, parted.size, (n) => report(i, n))));
  return copier.composeParts(objectName, parts, parted);
}
