/**
 * The ArchiveCopier on Cloud Storage: copies one signed archive URL into the app's bucket as a
 * stream (never more than a few chunks in memory, whatever the archive's size), resumes an
 * interrupted copy from what Cloud Storage kept, and leaves large archives to the ranged copy.
 * The pieces: `signed-url-source.ts` (which URLs, the GET, its status), `resumable-upload.ts` (the
 * upload and its session), `stored-archive.ts` (verification, clean-up), `ranged-copy.ts` (parts,
 * compose), `cloud-storage-archive-bucket.ts` (deletes). Writes use `ifGenerationMatch: 0`, so a
 * duplicate task never rewrites an archive.
 */
import type { Bucket, File, Storage } from '@google-cloud/storage';
import { ArchiveNeedsPartsError, ArchiveRejectedError, CopyInterruptedError } from '../domain/errors';
import type { ArchiveBucket, ArchiveCopier, ArchiveFacts, CopyCheckpoint, CopyProgress, CopyResumeOptions, PartedSource } from '../domain/ports/archive-copier';
import type { StoredArchive } from '../domain/model';
import type { HostLookup } from './address-guard';
import { CloudStorageArchiveBucket } from './cloud-storage-archive-bucket';
import { DownloadGuard } from './download-guard';
import { RangedCopy } from './ranged-copy';
import { sessionStatus, uploadArchive, type UploadLimits } from './resumable-upload';
import { declaredFacts, describe, SignedUrlSource, sourceStatusError } from './signed-url-source';
import { existing, metadataOrUndefined, sameSource } from './stored-archive';

export { DEFAULT_CHUNK_SIZE } from './resumable-upload';
export { ArchiveObjectConflictError } from './stored-archive';

export interface CloudStorageArchiveCopierOptions {
  storage: Storage;
  bucket: string;
  /** Hosts the signed URLs may point at: a hostname (`storage.googleapis.com`) or `host:port`. */
  allowedHosts: string[];
  /** Local stack only: production signed URLs are https. */
  allowHttp: boolean;
  /** Refuse archives larger than this (bytes). Default: no limit. */
  maxBytes?: number;
  /** Abort when no byte moves for this long (ms). Default 60 s. */
  stallTimeoutMs?: number;
  /** Tests: download through this `fetch` instead of node:http(s) (also used for upload status queries). */
  fetchImpl?: typeof fetch;
  /**
   * Refuse hosts that resolve to private, loopback, link-local or unique-local addresses (SSRF).
   * Default: on in production (`allowHttp` false), off in the local stack, whose hosts are 127.0.0.1.
   */
  refusePrivateAddresses?: boolean;
  /** DNS resolution used by that check (all addresses); tests hand in their own. */
  lookup?: HostLookup;
  /** Progress is reported at most every this many bytes or `progressEveryMs`, whichever comes first. */
  progressEveryBytes?: number;
  progressEveryMs?: number;
}

/** An open resumable session of an earlier attempt, and how many bytes Cloud Storage kept of it. */
interface OpenSession {
  uri: string;
  committed: number;
}

export class CloudStorageArchiveCopier implements ArchiveCopier {
  private readonly storage: Storage;
  private readonly bucket: Bucket;
  private readonly source: SignedUrlSource;
  private readonly limits: UploadLimits;
  private readonly stallTimeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly ranged: RangedCopy;
  private readonly archives: ArchiveBucket;

  constructor(opts: CloudStorageArchiveCopierOptions) {
    this.storage = opts.storage;
    this.bucket = opts.storage.bucket(opts.bucket);
    this.source = new SignedUrlSource(opts);
    this.limits = {
      maxBytes: opts.maxBytes ?? Number.POSITIVE_INFINITY,
      progressEveryBytes: opts.progressEveryBytes ?? 1 << 20,
      progressEveryMs: opts.progressEveryMs ?? 1000,
    };
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.ranged = new RangedCopy({ bucket: this.bucket, source: this.source, limits: this.limits, stallTimeoutMs: this.stallTimeoutMs });
    this.archives = new CloudStorageArchiveBucket(opts.storage, opts.bucket);
  }

  async copy(url: string, objectName: string, onProgress?: CopyProgress, resume?: CopyResumeOptions): Promise<StoredArchive> {
    const u = await this.source.check(url);
    const where = describe(u);
    const file = this.bucket.file(objectName);
    const guard = new DownloadGuard(this.stallTimeoutMs, `Archive copy stalled: no bytes for ${this.stallTimeoutMs} ms (${where})`);
    const onAbort = (): void => guard.fail(new CopyInterruptedError(`The archive copy was stopped (${where})`));
    if (resume?.signal?.aborted) throw new CopyInterruptedError(`The archive copy was stopped before it began (${where})`);
    resume?.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const resumed = resume?.checkpoint ? await this.resumedSession(file, resume.checkpoint) : {};
      if ('done' in resumed) return resumed.done;
      const { session } = resumed;
      guard.arm();
      const res = await this.source.fetch(
        u,
        'Archive download',
        { signal: guard.signal, ...(session && session.committed > 0 ? { range: `bytes=${session.committed}-` } : {}) },
        () => guard.ownFailure,
      );
      if (res.status !== 200 && !(res.status === 206 && session)) {
        res.discard();
        throw sourceStatusError(res.status, 'Archive download', where);
      }
      const src = declaredFacts(res);
      if (session && !sameSource(resume?.checkpoint, src)) {
        // The archive behind the URL is not the one the session began with: start over.
        res.discard();
        return await this.copy(url, objectName, onProgress, { ...resume, checkpoint: undefined });
      }
      const refusal = this.refusal(res.header('content-encoding'), src, session !== undefined, resume, where);
      if (refusal) {
        res.discard();
        throw refusal;
      }
      const before = session ? undefined : await metadataOrUndefined(file);
      if (before) {
        res.discard();
        return existing(file, before, src);
      }
      return await uploadArchive({
        body: res.body,
        guard,
        file,
        source: src,
        where,
        limits: this.limits,
        onProgress,
        resumable: resume,
        session: session ? { uri: session.uri, offset: res.status === 206 ? session.committed : undefined } : undefined,
      });
    } finally {
      resume?.signal?.removeEventListener('abort', onAbort);
      guard.clear();
    }
  }

  /**
   * Resuming: asks Cloud Storage how much of the checkpoint's session it has. A complete session
   * whose object is there is the copy done (or a conflict); an open one is continued; a gone one
   * (or a complete one without its object) starts over.
   */
  private async resumedSession(file: File, checkpoint: CopyCheckpoint): Promise<{ done: StoredArchive } | { session?: OpenSession }> {
    const status = await sessionStatus(this.storage, this.fetchImpl, checkpoint);
    if (status.kind === 'complete') {
      const meta = await metadataOrUndefined(file);
      if (meta) return { done: existing(file, meta, { ...checkpoint, contentType: 'application/zip' }) };
    } else if (status.kind === 'open') {
      return { session: { uri: checkpoint.uploadUri, committed: status.committed } };
    }
    return {};
  }

  /**
   * What stops a copy once the source's headers are in, before any byte is written: a content
   * coding (its checksums would not match), the size cap, or an archive the ranged copy should
   * take (`partsFrom`; never a resumed one).
   */
  private refusal(encoding: string | undefined, src: ArchiveFacts, resuming: boolean, resume: CopyResumeOptions | undefined, where: string): Error | undefined {
    if (encoding && encoding.toLowerCase() !== 'identity') {
      return new ArchiveRejectedError(`Archive arrived with Content-Encoding ${encoding}; its checksums would not match (${where})`);
    }
    const { maxBytes } = this.limits;
    if (src.size !== undefined && src.size > maxBytes) return new ArchiveRejectedError(`Archive is ${src.size} bytes, more than the limit of ${maxBytes} (${where})`);
    if (!resuming && resume?.partsFrom !== undefined && src.size !== undefined && src.size >= resume.partsFrom && src.crc32c !== undefined) {
      return new ArchiveNeedsPartsError({ size: src.size, crc32c: src.crc32c, ...(src.md5 ? { md5: src.md5 } : {}), contentType: src.contentType });
    }
    return undefined;
  }

  /** See ArchiveCopier.measure. */
  async measure(url: string): Promise<ArchiveFacts> {
    const u = await this.source.check(url);
    const where = describe(u);
    const guard = new DownloadGuard(this.stallTimeoutMs, `Archive size request stalled (${where})`);
    guard.arm();
    try {
      const res = await this.source.fetch(u, 'Archive size request', { signal: guard.signal, range: 'bytes=0-0' }, () => guard.ownFailure);
      res.discard();
      if (res.status !== 206 && res.status !== 200) throw sourceStatusError(res.status, 'Archive size request', where);
      return declaredFacts(res);
    } finally {
      guard.clear();
    }
  }

  /** See ArchiveCopier.copyPart. */
  copyPart(url: string, objectName: string, index: number, count: number, size: number, onProgress?: CopyProgress): Promise<void> {
    return this.ranged.copyPart(url, objectName, index, count, size, onProgress);
  }

  /** See ArchiveCopier.composeParts. */
  composeParts(objectName: string, count: number, source: PartedSource): Promise<StoredArchive> {
    return this.ranged.composeParts(objectName, count, source);
  }

  deletePrefix(prefix: string): Promise<number> {
    return this.archives.deletePrefix(prefix);
  }
}
