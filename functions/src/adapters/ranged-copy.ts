/**
 * The ranged copy of a large archive, one piece per call so that pieces can run in separate
 * invocations: a byte range (HTTP `Range`) into its own part object `NAME.part-I-of-N`, and the
 * compose of the parts into the archive, whose CRC32C (combined by Cloud Storage from the parts')
 * must equal the source's `x-goog-hash`.
 */
import type { Bucket } from '@google-cloud/storage';
import { partObjectName, partRanges } from '../domain/archive-parts';
import { ArchivePartsMissingError, ArchiveRejectedError } from '../domain/errors';
import type { ArchiveFacts, CopyProgress, PartedSource } from '../domain/ports/archive-copier';
import type { StoredArchive } from '../domain/model';
import { DownloadGuard } from './download-guard';
import { uploadArchive, type UploadLimits } from './resumable-upload';
import { describe, sourceStatusError, type SignedUrlSource } from './signed-url-source';
import { ArchiveObjectConflictError, deleteGeneration, existing, httpStatusOf, metadataOrUndefined, sameArchive, toStored } from './stored-archive';

export interface RangedCopyOptions {
  bucket: Bucket;
  source: SignedUrlSource;
  limits: UploadLimits;
  stallTimeoutMs: number;
}

export class RangedCopy {
  constructor(private readonly opts: RangedCopyOptions) {}

  /**
   * Range `index` of `partRanges(size, count)` into its part object, verified; kept as is if an
   * earlier attempt completed it. Two deliveries copying the same part at once are harmless: the
   * second upload's `ifGenerationMatch: 0` fails and it finds the first one's part.
   */
  async copyPart(url: string, objectName: string, index: number, count: number, size: number, onProgress?: CopyProgress): Promise<void> {
    const { bucket, source, limits, stallTimeoutMs } = this.opts;
    const ranges = partRanges(size, count);
    const range = ranges[index];
    if (ranges.length !== count || !Number.isInteger(index) || range === undefined) {
      throw new RangeError(`part ${index} of ${count} does not cut ${size} bytes into ${count} non-empty ranges`);
    }
    const [start, end] = range;
    const length = end - start + 1;
    if (size > limits.maxBytes) throw new ArchiveRejectedError(`Archive is ${size} bytes, more than the limit of ${limits.maxBytes}`);
    const u = await source.check(url);
    const where = describe(u);
    const partFile = bucket.file(partObjectName(objectName, index, count));
    const before = await metadataOrUndefined(partFile);
    if (before && Number(before.size) === length) {
      onProgress?.(length);
      return;
    }
    if (before) await deleteGeneration(partFile, before.generation);

    const guard = new DownloadGuard(stallTimeoutMs, `Archive part copy stalled: no bytes for ${stallTimeoutMs} ms (${where})`);
    try {
      guard.arm();
      const res = await source.fetch(u, 'Archive part download', { signal: guard.signal, range: `bytes=${start}-${end}` }, () => guard.ownFailure);
      const served = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.header('content-range') ?? '');
      if (res.status !== 206 || !served || Number(served[1]) !== start || Number(served[2]) !== end) {
        res.discard();
        throw sourceStatusError(res.status, 'Archive part download', where, `Archive source did not serve bytes ${start}-${end} (status ${res.status})`);
      }
      if (Number(served[3]) !== size) {
        // A part of another archive (the URL now serves something else) must not be mixed in.
        res.discard();
        throw new ArchiveRejectedError(`Archive is now ${served[3]} bytes, not the ${size} its copy began with (${where})`);
      }
      // The range's x-goog-hash describes the whole archive: a part is checked by its size and the stored CRC32C.
      const part: ArchiveFacts = { size: length, contentType: 'application/octet-stream' };
      try {
        await uploadArchive({ body: res.body, guard, file: partFile, source: part, where, limits, onProgress: onProgress ?? (() => undefined) });
      } catch (e) {
        // Another delivery finished this part first (our upload's precondition failed): a part has
        // no checksum of its own to compare, its size is the check (the composite's CRC32C is the real one).
        if (!(e instanceof ArchiveObjectConflictError)) throw e;
        const now = await metadataOrUndefined(partFile);
        if (!now || Number(now.size) !== length) throw e;
        onProgress?.(length);
      }
    } finally {
      guard.clear();
    }
  }

  /**
   * Composes the parts into `objectName` (`ifGenerationMatch: 0`), checks the composite against
   * the source, then deletes the parts. A duplicate (or a composer that died before deleting the
   * parts) finds the archive there already. Parts not there: ArchivePartsMissingError.
   */
  async composeParts(objectName: string, count: number, source: PartedSource): Promise<StoredArchive> {
    const { bucket } = this.opts;
    const ranges = partRanges(source.size, count);
    if (ranges.length !== count) throw new RangeError(`${source.size} bytes do not cut into ${count} non-empty ranges`);
    const file = bucket.file(objectName);
    const partFiles = ranges.map((_, i) => bucket.file(partObjectName(objectName, i, count)));
    const src: ArchiveFacts = { size: source.size, crc32c: source.crc32c, contentType: source.contentType ?? 'application/zip' };
    const removeParts = (): Promise<unknown> => Promise.all(partFiles.map((f) => f.delete().catch(() => undefined)));
    const already = async (): Promise<StoredArchive | undefined> => {
      const meta = await metadataOrUndefined(file);
      if (!meta) return undefined;
      const stored = existing(file, meta, src);
      await removeParts();
      return stored;
    };
    const found = await already();
    if (found) return found;

    const metas = await Promise.all(partFiles.map((f) => metadataOrUndefined(f)));
    const missing = ranges.flatMap(([s, e], i) => (metas[i] !== undefined && Number(metas[i]?.size) === e - s + 1 ? [] : [i]));
    if (missing.length > 0) {
      // A concurrent composer may have finished and removed the parts since we looked.
      const late = await already();
      if (late) return late;
      throw new ArchivePartsMissingError(missing);
    }
    try {
      await bucket.combine(partFiles, file, { ifGenerationMatch: 0 });
    } catch (e) {
      const status = httpStatusOf(e);
      if (status === 404) {
        const late = await already();
        if (late) return late;
        throw new ArchivePartsMissingError(ranges.map((_, i) => i));
      }
      if (status !== 412) throw e;
    }
    const [meta] = await file.getMetadata();
    if (sameArchive(meta, src) !== true || Number(meta.size) !== source.size) {
      // Only parts of this archive are ever composed here, so a wrong composite means a wrong part:
      // remove both, or a retry would compose the same bytes again.
      await deleteGeneration(file, meta.generation);
      await removeParts();
      throw new ArchiveRejectedError(
        `Composed object gs://${bucket.name}/${objectName} does not match the source (size ${String(meta.size)} vs ${source.size}, crc32c ${String(meta.crc32c)} vs ${source.crc32c})`,
      );
    }
    await removeParts();
    return toStored(file, meta);
  }
}
