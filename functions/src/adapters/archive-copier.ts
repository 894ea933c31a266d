/**
 * Copies one signed archive URL into the app's bucket as a stream: never more than a few chunks
 * in memory, whatever the archive's size. Bytes are hashed (CRC32C + MD5) as they pass, checked
 * against what the source declared (`Content-Length`, `x-goog-hash`) and against what Cloud
 * Storage stored. Writes use `ifGenerationMatch: 0`, so a duplicate task never rewrites an archive.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { File, FileMetadata, Storage } from '@google-cloud/storage';
import { partObjectName, partRanges } from '../domain/archive-parts';
import { ArchiveNeedsPartsError, ArchivePartsMissingError, ArchiveRejectedError, ArchiveUrlExpiredError, CopyInterruptedError } from '../domain/errors';
import type { ArchiveCopier, ArchiveFacts, CopyCheckpoint, CopyProgress, CopyResumeOptions, PartedSource } from '../domain/ports/archive-copier';
import type { StoredArchive } from '../domain/model';
import { assertPublicHost, defaultLookup, type HostLookup } from './address-guard';
import { fetchSourceGet, nodeSourceGet, SourceAddressRefusedError, type SourceGet, type SourceResponse } from './source-download';

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

// ---------- CRC32C (Castagnoli), slicing-by-8 ----------

/**
 * The storage client's CRC32C goes byte by byte (about 125 MB/s); slicing by 8 is several times
 * faster, which matters when one function instance hashes gigabytes.
 */
const CRC_TABLE = (() => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i];
    for (let s = 1; s < 8; s++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[s * 256 + i] = c;
    }
  }
  return t;
})();

export class Crc32c {
  private crc = -1;

  update(b: Uint8Array): this {
    const t = CRC_TABLE;
    let c = this.crc;
    let i = 0;
    const n = b.length;
    for (; i + 8 <= n; i += 8) {
      const a = c ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24));
      c =
        t[1792 + (a & 0xff)] ^
        t[1536 + ((a >>> 8) & 0xff)] ^
        t[1280 + ((a >>> 16) & 0xff)] ^
        t[1024 + (a >>> 24)] ^
        t[768 + b[i + 4]] ^
        t[512 + b[i + 5]] ^
        t[256 + b[i + 6]] ^
        t[b[i + 7]];
    }
    for (; i < n; i++) c = t[(c ^ b[i]) & 0xff] ^ (c >>> 8);
    this.crc = c;
    return this;
  }

  /** Base64 of the big-endian 32-bit value, as Cloud Storage reports `crc32c`. */
  digestBase64(): string {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(~this.crc >>> 0);
    return out.toString('base64');
  }
}

// ---------- helpers ----------

type SourceFacts = ArchiveFacts;

/** A URL safe to put in logs and errors: the query string of a signed URL is a credential. */
function describe(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** Parses `x-goog-hash: crc32c=…,md5=…` (it may also arrive as two headers, joined by fetch). */
function parseGoogHash(value: string | null | undefined): { crc32c?: string; md5?: string } {
  const out: { crc32c?: string; md5?: string } = {};
  if (!value) return out;
  for (const part of value.split(',')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const key = part.slice(0, i).trim().toLowerCase();
    const v = part.slice(i + 1).trim();
    if (key === 'crc32c') out.crc32c = v;
    if (key === 'md5') out.md5 = v;
  }
  return out;
}

/** The storage client reports HTTP failures as `code` (ApiError) or `status`/`response.status` (GaxiosError). */
function httpStatusOf(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const err = e as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  if (typeof err.code === 'number') return err.code;
  if (typeof err.status === 'number') return err.status;
  if (typeof err.response?.status === 'number') return err.response.status;
  return undefined;
}

/** A network error's message can quote the request; keep only its code. */
function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && code !== 'ABORT_ERR') return code;
  if (e instanceof Error && e.name === 'AbortError') return 'aborted';
  return e instanceof Error ? e.name : 'unknown error';
}

/** Does a stored object hold exactly what the source declares? Undecidable when it declares nothing. */
function sameArchive(meta: FileMetadata, src: SourceFacts): boolean | undefined {
  if (src.size !== undefined && Number(meta.size) !== src.size) return false;
  if (src.crc32c !== undefined) return meta.crc32c === src.crc32c;
  if (src.md5 !== undefined) return meta.md5Hash === src.md5;
  return undefined;
}

/** Does a resumed download serve the archive the checkpoint began with? */
function sameSource(cp: CopyCheckpoint | undefined, src: SourceFacts): boolean {
  if (!cp) return false;
  if (cp.size !== undefined && src.size !== undefined && cp.size !== src.size) return false;
  if (cp.crc32c !== undefined && src.crc32c !== undefined) return cp.crc32c === src.crc32c;
  if (cp.md5 !== undefined && src.md5 !== undefined) return cp.md5 === src.md5;
  return false;
}

/** 16 MiB: a multiple of 256 KiB as Cloud Storage requires; one chunk is the most a crash can lose. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;

function toStored(bucket: string, name: string, meta: FileMetadata): StoredArchive {
  return {
    bucket,
    name,
    size: Number(meta.size),
    crc32c: String(meta.crc32c),
    ...(meta.md5Hash ? { md5Hash: meta.md5Hash } : {}),
  };
}

/**
 * One download's abort controller and stall timer: `fail` records the first reason and aborts;
 * `arm` restarts the stall clock (on every chunk); `clear` stops the clock and aborts what is left.
 */
class DownloadGuard {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly stallTimeoutMs: number,
    private readonly stallMessage: string,
  ) {}

  get ownFailure(): Error | undefined {
    return this.failure;
  }

  readonly fail = (e: Error): void => {
    this.failure ??= e;
    this.controller.abort(e);
  };

  readonly arm = (): void => {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fail(new Error(this.stallMessage)), this.stallTimeoutMs);
  };

  clear(): void {
    clearTimeout(this.timer);
    this.controller.abort();
  }
}

// ---------- the copier ----------

export class CloudStorageArchiveCopier implements ArchiveCopier {
  private readonly storage: Storage;
  private readonly bucket: string;
  private readonly allowedHosts: Set<string>;
  private readonly allowHttp: boolean;
  private readonly maxBytes: number;
  private readonly stallTimeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly get: SourceGet;
  private readonly refusePrivateAddresses: boolean;
  private readonly lookup: HostLookup;
  private readonly progressEveryBytes: number;
  private readonly progressEveryMs: number;

  constructor(opts: CloudStorageArchiveCopierOptions) {
    this.storage = opts.storage;
    this.bucket = opts.bucket;
    this.allowedHosts = new Set(opts.allowedHosts.map((h) => h.trim().toLowerCase()).filter((h) => h.length > 0));
    this.allowHttp = opts.allowHttp;
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.refusePrivateAddresses = opts.refusePrivateAddresses ?? !opts.allowHttp;
    this.lookup = opts.lookup ?? defaultLookup;
    this.get = opts.fetchImpl ? fetchSourceGet(opts.fetchImpl) : nodeSourceGet({ lookup: this.lookup, refusePrivateAddresses: this.refusePrivateAddresses });
    this.progressEveryBytes = opts.progressEveryBytes ?? 1 << 20;
    this.progressEveryMs = opts.progressEveryMs ?? 1000;
  }

  /** Refuses what is not an allowed signed URL, before any byte is requested. */
  private checkUrl(url: string): URL {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ArchiveRejectedError('The archive URL is not a valid URL');
    }
    const where = describe(u);
    if (!(u.protocol === 'https:' || (this.allowHttp && u.protocol === 'http:'))) {
      throw new ArchiveRejectedError(`Archive URL scheme ${u.protocol} is not allowed (${where})`);
    }
    if (u.username || u.password) throw new ArchiveRejectedError(`Archive URL must not carry user info (${u.protocol}//${u.hostname})`);
    if (!this.allowedHosts.has(u.hostname.toLowerCase()) && !this.allowedHosts.has(u.host.toLowerCase())) {
      throw new ArchiveRejectedError(`Archive host ${u.host} is not in the allowed hosts (${where})`);
    }
    return u;
  }

  /** A download that got no answer: refused at connect time (permanent), or a network failure (retryable). */
  private downloadFailure(e: unknown, what: string, where: string): Error {
    if (e instanceof SourceAddressRefusedError) return new ArchiveRejectedError(`Archive URL refused: ${e.message} (${where})`);
    return new Error(`${what} failed (${networkReason(e)}) for ${where}`);
  }

  /**
   * The address check, after the allow-list: every address the host resolves to must be public.
   * It fails early with a clear message; the download checks again the addresses it connects to.
   */
  private async checkAddress(u: URL): Promise<void> {
    if (!this.refusePrivateAddresses) return;
    await assertPublicHost(u.hostname, this.lookup, (reason) => new ArchiveRejectedError(`Archive URL refused: ${reason} (${describe(u)})`));
  }

  private async metadataOrUndefined(file: File): Promise<FileMetadata | undefined> {
    try {
      const [meta] = await file.getMetadata();
      return meta;
    } catch (e) {
      if (httpStatusOf(e) === 404) return undefined;
      throw e;
    }
  }

  /** The "already there" rule: the same archive is success (a duplicate delivery); anything else is a conflict. */
  private existing(meta: FileMetadata, src: SourceFacts, objectName: string): StoredArchive {
    const same = sameArchive(meta, src);
    if (same === true) return toStored(this.bucket, objectName, meta);
    const why =
      same === undefined
        ? 'the source declares no size or checksum to compare with'
        : `it differs from the source (stored size ${String(meta.size)}, crc32c ${String(meta.crc32c)}; source size ${src.size ?? '?'}, crc32c ${src.crc32c ?? '?'})`;
    throw new ArchiveObjectConflictError(`Object gs://${this.bucket}/${objectName} already exists and ${why}`);
  }

  async copy(url: string, objectName: string, onProgress?: CopyProgress, resume?: CopyResumeOptions): Promise<StoredArchive> {
    const u = this.checkUrl(url);
    await this.checkAddress(u);
    const where = describe(u);
    const file = this.storage.bucket(this.bucket).file(objectName);

    const guard = new DownloadGuard(this.stallTimeoutMs, `Archive copy stalled: no bytes for ${this.stallTimeoutMs} ms (${where})`);
    const { controller, fail, arm: armStall } = guard;
    const onAbort = (): void => fail(new CopyInterruptedError(`The archive copy was stopped (${where})`));
    if (resume?.signal?.aborted) throw new CopyInterruptedError(`The archive copy was stopped before it began (${where})`);
    resume?.signal?.addEventListener('abort', onAbort, { once: true });

    try {
      // Resuming: ask Cloud Storage how much of the session it has, and fetch only the rest.
      let session: { uri: string; committed: number } | undefined;
      if (resume?.checkpoint) {
        const status = await this.sessionStatus(resume.checkpoint);
        if (status.kind === 'complete') {
          const meta = await this.metadataOrUndefined(file);
          if (meta) return this.existing(meta, { ...resume.checkpoint, contentType: 'application/zip' }, objectName);
        } else if (status.kind === 'open') {
          session = { uri: resume.checkpoint.uploadUri, committed: status.committed };
        }
      }
      armStall();
      let res: SourceResponse;
      try {
        // No redirects: a signed URL answers directly; a redirect could lead anywhere.
        res = await this.get(u, {
          signal: controller.signal,
          headers: { 'accept-encoding': 'identity', ...(session && session.committed > 0 ? { range: `bytes=${session.committed}-` } : {}) },
        });
      } catch (e) {
        throw guard.ownFailure ?? this.downloadFailure(e, 'Archive download', where);
      }

      if (res.status !== 200 && !(res.status === 206 && session)) {
        res.discard();
        const s = res.status;
        if (s >= 300 && s < 400) {
          throw new ArchiveRejectedError(`Archive URL answered a redirect (${s}); redirects are not followed (${where})`);
        }
        if (s === 400 || s === 401 || s === 403) throw new ArchiveUrlExpiredError(`The signed archive URL was refused with ${s} (expired?) (${where})`);
        if (s === 429 || s >= 500) throw new Error(`Archive download answered ${s}; try again later (${where})`);
        throw new ArchiveRejectedError(`Archive download answered ${s} (${where})`);
      }

      const encoding = res.header('content-encoding');
      const lengthHeader = res.header('content-length');
      // x-goog-hash describes the whole object, also on a 206; the total size is in Content-Range.
      const hashes = parseGoogHash(res.header('x-goog-hash'));
      const total = res.status === 206 ? /\/(\d+)$/.exec(res.header('content-range') ?? '')?.[1] : lengthHeader;
      const src: SourceFacts = {
        size: total !== null && total !== undefined && /^\d+$/.test(total) ? Number(total) : undefined,
        ...hashes,
        contentType: res.header('content-type') ?? 'application/zip',
      };
      if (session && !sameSource(resume?.checkpoint, src)) {
        // The archive behind the URL is not the one the session began with: start over.
        res.discard();
        return await this.copy(url, objectName, onProgress, { ...resume, checkpoint: undefined });
      }
      if (encoding && encoding.toLowerCase() !== 'identity') {
        res.discard();
        throw new ArchiveRejectedError(`Archive arrived with Content-Encoding ${encoding}; its checksums would not match (${where})`);
      }
      if (src.size !== undefined && src.size > this.maxBytes) {
        res.discard();
        throw new ArchiveRejectedError(`Archive is ${src.size} bytes, more than the limit of ${this.maxBytes} (${where})`);
      }

      if (!session && resume?.partsFrom !== undefined && src.size !== undefined && src.size >= resume.partsFrom && src.crc32c !== undefined) {
        res.discard();
        throw new ArchiveNeedsPartsError({ size: src.size, crc32c: src.crc32c, ...(src.md5 ? { md5: src.md5 } : {}), contentType: src.contentType });
      }
      const before = session ? undefined : await this.metadataOrUndefined(file);
      if (before) {
        res.discard();
        return this.existing(before, src, objectName);
      }

      const resumeAt = session ? { uri: session.uri, offset: res.status === 206 ? session.committed : undefined } : undefined;
      return await this.stream(res.body, file, src, objectName, where, armStall, fail, () => guard.ownFailure, onProgress, resume, resumeAt);
    } finally {
      resume?.signal?.removeEventListener('abort', onAbort);
      guard.clear();
    }
  }

  private async stream(
    body: Readable,
    file: File,
    src: SourceFacts,
    objectName: string,
    where: string,
    armStall: () => void,
    fail: (e: Error) => void,
    ownFailure: () => Error | undefined,
    onProgress?: CopyProgress,
    resume?: CopyResumeOptions,
    resumeAt?: { uri: string; offset: number | undefined },
  ): Promise<StoredArchive> {
    // On a resumed session only the tail passes through here: our own hashes cover part of the
    // archive, so the end-to-end check is Cloud Storage's checksum of the whole object.
    const partial = resumeAt !== undefined;
    // The upload declares the source's size and checksums, and Cloud Storage refuses (400) an upload
    // whose bytes do not match them: it verifies against the source itself. Hashing here too would
    // cost the CPU a copy is bound by, so we hash only what the source did not declare.
    const crc = src.crc32c === undefined ? new Crc32c() : undefined;
    const md5 = src.crc32c === undefined && src.md5 !== undefined ? createHash('md5') : undefined;
    let count = 0;
    let sourceEnded = false;
    let reported = 0;
    let reportedAt = Date.now();
    const maxBytes = this.maxBytes;
    const { progressEveryBytes, progressEveryMs } = this;

    const meter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        armStall();
        count += chunk.length;
        if (count > maxBytes) {
          const e = new ArchiveRejectedError(`Archive exceeds the limit of ${maxBytes} bytes (${where})`);
          fail(e);
          return cb(e);
        }
        crc?.update(chunk);
        md5?.update(chunk);
        const now = Date.now();
        if (onProgress && (count - reported >= progressEveryBytes || now - reportedAt >= progressEveryMs)) {
          reported = count;
          reportedAt = now;
          onProgress(count);
        }
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        sourceEnded = true;
        cb();
      },
    });

    // Declaring size and checksums makes Cloud Storage itself refuse a truncated or altered upload.
    const metadata: Record<string, unknown> = { contentType: src.contentType };
    if (src.size !== undefined) metadata.contentLength = src.size;
    if (src.crc32c !== undefined) metadata.crc32c = src.crc32c;
    if (src.md5 !== undefined) metadata.md5Hash = src.md5;
    const sink = file.createWriteStream({
      resumable: true,
      validation: false,
      preconditionOpts: { ifGenerationMatch: 0 },
      metadata,
      ...(resume ? { chunkSize: resume.chunkSize ?? DEFAULT_CHUNK_SIZE } : {}),
      // With an offset the stream starts there; without one, the client asks and skips ahead itself.
      ...(resumeAt ? { uri: resumeAt.uri, ...(resumeAt.offset ? { offset: resumeAt.offset } : {}) } : {}),
    });
    let checkpointSaved: Promise<void> = Promise.resolve();
    if (resume?.onCheckpoint && !resumeAt) {
      const save = resume.onCheckpoint;
      sink.on('uri', (uploadUri: string) => {
        checkpointSaved = save({ uploadUri, ...(src.size !== undefined ? { size: src.size } : {}), ...(src.crc32c ? { crc32c: src.crc32c } : {}), ...(src.md5 ? { md5: src.md5 } : {}) });
      });
    }

    let uploadError: unknown;
    try {
      await pipeline(body, meter, sink);
    } catch (e) {
      uploadError = e;
    }

    await checkpointSaved;
    const computed = { crc32c: crc?.digestBase64(), md5: md5?.digest('base64') };
    if (uploadError !== undefined) {
      const own = ownFailure();
      if (own instanceof CopyInterruptedError) throw own;
      if (!own && sourceEnded && httpStatusOf(uploadError) === 400 && (src.crc32c !== undefined || src.md5 !== undefined || src.size !== undefined)) {
        // Every byte arrived and Cloud Storage refused them against the declared size/checksums.
        throw new ArchiveRejectedError(
          `Archive checksum mismatch: Cloud Storage refused the ${count} bytes received against the source's size ${src.size ?? '?'}, crc32c ${src.crc32c ?? '?'}, md5 ${src.md5 ?? '?'} (${where})`,
        );
      }
      if (resume && !(own instanceof ArchiveRejectedError) && httpStatusOf(uploadError) !== 412) {
        // Keep the session: the next attempt resumes from what Cloud Storage committed.
        const status = httpStatusOf(uploadError);
        throw own ?? new CopyInterruptedError(`Archive copy to gs://${this.bucket}/${objectName} broke off (${status !== undefined ? `HTTP ${status}` : networkReason(uploadError)}) from ${where}`);
      }
      if (own) {
        await this.removeIfPartial(file, src, computed.crc32c, count);
        throw own;
      }
      if (sourceEnded && !this.matchesSource(count, computed, src)) {
        await this.removeIfPartial(file, src, computed.crc32c, count);
        throw new ArchiveRejectedError(this.mismatchMessage(count, computed, src, where));
      }
      if (httpStatusOf(uploadError) === 412) {
        // Someone else created the object meanwhile (a duplicate delivery racing us).
        const now = await this.metadataOrUndefined(file);
        if (now) return this.existing(now, src, objectName);
      }
      await this.removeIfPartial(file, src, computed.crc32c, count);
      const status = httpStatusOf(uploadError);
      const reason = status !== undefined ? `HTTP ${status}` : networkReason(uploadError);
      throw new Error(`Archive copy to gs://${this.bucket}/${objectName} failed (${reason}) from ${where}`);
    }

    if (onProgress && reported !== count) onProgress(count);

    if (!partial && !this.matchesSource(count, computed, src)) {
      await this.removeIfPartial(file, src, computed.crc32c, count, true);
      throw new ArchiveRejectedError(this.mismatchMessage(count, computed, src, where));
    }
    const [stored] = await file.getMetadata();
    if (partial) {
      if (sameArchive(stored, src) !== true) {
        await file.delete({ ifGenerationMatch: stored.generation }).catch(() => undefined);
        throw new ArchiveRejectedError(
          `Resumed object gs://${this.bucket}/${objectName} does not match the source (size ${String(stored.size)}, crc32c ${String(stored.crc32c)}; source ${src.size ?? '?'}, ${src.crc32c ?? '?'})`,
        );
      }
      return toStored(this.bucket, objectName, stored);
    }
    const expectedCrc = computed.crc32c ?? src.crc32c;
    if (stored.crc32c !== expectedCrc || Number(stored.size) !== count || (src.md5 !== undefined && stored.md5Hash !== undefined && stored.md5Hash !== src.md5)) {
      await file.delete({ ifGenerationMatch: stored.generation }).catch(() => undefined);
      throw new ArchiveRejectedError(
        `Stored object gs://${this.bucket}/${objectName} does not match the bytes sent (size ${String(stored.size)} vs ${count}, crc32c ${String(stored.crc32c)} vs ${expectedCrc ?? '?'})`,
      );
    }
    return toStored(this.bucket, objectName, stored);
  }

  private matchesSource(count: number, computed: { crc32c?: string | undefined; md5?: string | undefined }, src: SourceFacts): boolean {
    return (
      (src.size === undefined || src.size === count) &&
      (src.crc32c === undefined || computed.crc32c === undefined || src.crc32c === computed.crc32c) &&
      (src.md5 === undefined || computed.md5 === undefined || src.md5 === computed.md5)
    );
  }

  private mismatchMessage(count: number, computed: { crc32c?: string | undefined; md5?: string | undefined }, src: SourceFacts, where: string): string {
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
  private async removeIfPartial(file: File, src: SourceFacts, sentCrc32c: string | undefined, sentBytes: number, wroteIt = false): Promise<void> {
    const meta = await this.metadataOrUndefined(file).catch(() => undefined);
    if (!meta) return;
    if (sameArchive(meta, src) === true) return;
    const ours = wroteIt || (meta.crc32c === sentCrc32c && Number(meta.size) === sentBytes);
    if (!ours) return;
    await file.delete({ ifGenerationMatch: meta.generation }).catch(() => undefined);
  }

  /**
   * Copies a large archive as `parts` byte ranges downloaded in parallel (HTTP `Range`), each into
   * its own part object `NAME.part-I-of-N`, then `compose`s them into `objectName` and deletes the
   * parts. Each part is verified like a whole copy (its size, and the stored CRC32C against the
   * bytes sent); the composite's CRC32C, which Cloud Storage combines from the parts', must equal
   * the source's `x-goog-hash`. Resumable: a part object left complete by an earlier attempt is
   * kept, a partial one is replaced. Falls back to `copy` when the source declares no size or no
   * CRC32C (a composite has no MD5 to check). All parts run in this invocation; the job runner
   * spreads them across invocations with `probe`, `copyPart` and `composeParts` instead.
   */
  async copyInParts(url: string, objectName: string, parts: number, onProgress?: CopyProgress): Promise<StoredArchive> {
    if (!Number.isInteger(parts) || parts < 1 || parts > 32) throw new RangeError('parts must be an integer from 1 to 32 (the compose limit)');
    const src = await this.probe(url);
    if (src.size === undefined || src.size < parts || src.crc32c === undefined) return this.copy(url, objectName, onProgress);
    const u = this.checkUrl(url);
    if (src.size > this.maxBytes) throw new ArchiveRejectedError(`Archive is ${src.size} bytes, more than the limit of ${this.maxBytes} (${describe(u)})`);
    const before = await this.metadataOrUndefined(this.storage.bucket(this.bucket).file(objectName));
    if (before) return this.existing(before, src, objectName);

    const size = src.size;
    const ranges = partRanges(size, parts);
    const done = ranges.map(() => 0);
    const report = (i: number, n: number): void => {
      done[i] = n;
      onProgress?.(done.reduce((a, b) => a + b, 0));
    };
    await Promise.all(ranges.map((_, i) => this.copyPart(url, objectName, i, ranges.length, size, (n) => report(i, n))));
    return this.composeParts(objectName, ranges.length, { size, crc32c: src.crc32c, ...(src.md5 ? { md5: src.md5 } : {}), contentType: src.contentType });
  }

  /** Learns the archive's size and checksums from a one-byte ranged GET (a signed URL allows GET only). */
  async probe(url: string): Promise<ArchiveFacts> {
    const u = this.checkUrl(url);
    await this.checkAddress(u);
    const where = describe(u);
    let res: SourceResponse;
    try {
      res = await this.get(u, { headers: { 'accept-encoding': 'identity', range: 'bytes=0-0' }, signal: AbortSignal.timeout(this.stallTimeoutMs) });
    } catch (e) {
      throw this.downloadFailure(e, 'Archive probe', where);
    }
    res.discard();
    const s = res.status;
    if (s === 400 || s === 401 || s === 403) throw new ArchiveUrlExpiredError(`The signed archive URL was refused with ${s} (expired?) (${where})`);
    if (s === 429 || s >= 500) throw new Error(`Archive probe answered ${s}; try again later (${where})`);
    if (s !== 206 && s !== 200) throw new ArchiveRejectedError(`Archive probe answered ${s} (${where})`);
    const m = /\/(\d+)$/.exec(res.header('content-range') ?? '');
    return {
      ...(s === 206 && m ? { size: Number(m[1]) } : {}),
      ...parseGoogHash(res.header('x-goog-hash')),
      contentType: res.header('content-type') ?? 'application/zip',
    };
  }

  /**
   * Range `index` of `partRanges(size, count)` into its part object, verified; kept as is if an
   * earlier attempt completed it. Two deliveries copying the same part at once are harmless: the
   * second upload's `ifGenerationMatch: 0` fails and it finds the first one's part.
   */
  async copyPart(url: string, objectName: string, index: number, count: number, size: number, onProgress?: CopyProgress): Promise<void> {
    const ranges = partRanges(size, count);
    const range = ranges[index];
    if (ranges.length !== count || !Number.isInteger(index) || range === undefined) {
      throw new RangeError(`part ${index} of ${count} does not cut ${size} bytes into ${count} non-empty ranges`);
    }
    const [start, end] = range;
    const length = end - start + 1;
    if (size > this.maxBytes) throw new ArchiveRejectedError(`Archive is ${size} bytes, more than the limit of ${this.maxBytes}`);
    const u = this.checkUrl(url);
    await this.checkAddress(u);
    const where = describe(u);
    const partFile = this.storage.bucket(this.bucket).file(partObjectName(objectName, index, count));
    const existing = await this.metadataOrUndefined(partFile);
    if (existing && Number(existing.size) === length) {
      onProgress?.(length);
      return;
    }
    if (existing) await partFile.delete({ ifGenerationMatch: existing.generation }).catch(() => undefined);

    const guard = new DownloadGuard(this.stallTimeoutMs, `Archive part copy stalled: no bytes for ${this.stallTimeoutMs} ms (${where})`);
    const { controller, fail, arm: armStall } = guard;
    try {
      armStall();
      let res: SourceResponse;
      try {
        res = await this.get(u, { signal: controller.signal, headers: { 'accept-encoding': 'identity', range: `bytes=${start}-${end}` } });
      } catch (e) {
        throw guard.ownFailure ?? this.downloadFailure(e, 'Archive part download', where);
      }
      const served = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.header('content-range') ?? '');
      if (res.status !== 206 || !served || Number(served[1]) !== start || Number(served[2]) !== end) {
        res.discard();
        const s = res.status;
        if (s === 400 || s === 401 || s === 403) throw new ArchiveUrlExpiredError(`The signed archive URL was refused with ${s} (expired?) (${where})`);
        if (s === 429 || s >= 500) throw new Error(`Archive part download answered ${s}; try again later (${where})`);
        throw new ArchiveRejectedError(`Archive source did not serve bytes ${start}-${end} (status ${s}) (${where})`);
      }
      if (Number(served[3]) !== size) {
        // A part of another archive (the URL now serves something else) must not be mixed in.
        res.discard();
        throw new ArchiveRejectedError(`Archive is now ${served[3]} bytes, not the ${size} its copy began with (${where})`);
      }
      // The range's x-goog-hash describes the whole archive: a part is checked by its size and the stored CRC32C.
      const noop: CopyProgress = () => undefined;
      try {
        await this.stream(res.body, partFile, { size: length, contentType: 'application/octet-stream' }, partFile.name, where, armStall, fail, () => guard.ownFailure, onProgress ?? noop);
      } catch (e) {
        // Another delivery finished this part first (our upload's precondition failed): a part has
        // no checksum of its own to compare, its size is the check (the composite's CRC32C is the real one).
        if (!(e instanceof ArchiveObjectConflictError)) throw e;
        const now = await this.metadataOrUndefined(partFile);
        if (!now || Number(now.size) !== length) throw e;
        onProgress?.(length);
      }
    } finally {
      guard.clear();
    }
  }

  /** See ArchiveCopier.composeParts. */
  async composeParts(objectName: string, count: number, source: PartedSource): Promise<StoredArchive> {
    const ranges = partRanges(source.size, count);
    if (ranges.length !== count) throw new RangeError(`${source.size} bytes do not cut into ${count} non-empty ranges`);
    const bucket = this.storage.bucket(this.bucket);
    const file = bucket.file(objectName);
    const partFiles = ranges.map((_, i) => bucket.file(partObjectName(objectName, i, count)));
    const src: SourceFacts = { size: source.size, crc32c: source.crc32c, contentType: source.contentType ?? 'application/zip' };
    const removeParts = (): Promise<unknown> => Promise.all(partFiles.map((f) => f.delete().catch(() => undefined)));
    // A duplicate (or a composer that died before deleting the parts): the archive is there already.
    const already = async (): Promise<StoredArchive | undefined> => {
      const meta = await this.metadataOrUndefined(file);
      if (!meta) return undefined;
      const stored = this.existing(meta, src, objectName);
      await removeParts();
      return stored;
    };
    const found = await already();
    if (found) return found;

    const metas = await Promise.all(partFiles.map((f) => this.metadataOrUndefined(f)));
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
      await file.delete({ ifGenerationMatch: meta.generation }).catch(() => undefined);
      await removeParts();
      throw new ArchiveRejectedError(
        `Composed object gs://${this.bucket}/${objectName} does not match the source (size ${String(meta.size)} vs ${source.size}, crc32c ${String(meta.crc32c)} vs ${source.crc32c})`,
      );
    }
    await removeParts();
    return toStored(this.bucket, objectName, meta);
  }

  /**
   * Asks Cloud Storage how much of a resumable session it has committed (`Content-Range: bytes *\/*`):
   * 308 with `Range: bytes=0-N` (N+1 committed; no Range: none), 200/201 when it is complete,
   * 404/410 when the session is gone (expired after a week, or cancelled).
   */
  private async sessionStatus(cp: CopyCheckpoint): Promise<{ kind: 'open'; committed: number } | { kind: 'complete' } | { kind: 'gone' }> {
    const authHeaders = await this.sessionAuthHeaders();
    const res = await this.fetchImpl(cp.uploadUri, {
      method: 'PUT',
      headers: { ...authHeaders, 'content-range': `bytes */${cp.size ?? '*'}`, 'content-length': '0' },
      redirect: 'manual',
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 308) {
      const m = /bytes=0-(\d+)/.exec(res.headers.get('range') ?? '');
      return { kind: 'open', committed: m ? Number(m[1]) + 1 : 0 };
    }
    if (res.status === 200 || res.status === 201) return { kind: 'complete' };
    if (res.status === 404 || res.status === 410 || res.status === 400) return { kind: 'gone' };
    throw new Error(`Cloud Storage answered ${res.status} to an upload status query`);
  }

  /** The credentials the storage client itself would send (none for a local endpoint). */
  private async sessionAuthHeaders(): Promise<Record<string, string>> {
    if (!/^https:\/\/storage\.googleapis\.com/.test(this.storage.apiEndpoint)) return {};
    const token = await this.storage.authClient.getAccessToken();
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  async deletePrefix(prefix: string): Promise<number> {
    if (prefix.length === 0) throw new Error('Refusing to delete an empty prefix (the whole bucket)');
    const bucket = this.storage.bucket(this.bucket);
    let deleted = 0;
    let query: { prefix: string; autoPaginate: false; pageToken?: string; maxResults: number } | null = {
      prefix,
      autoPaginate: false,
      maxResults: 500,
    };
    while (query) {
      const [files, next]: [File[], { pageToken?: string } | null | undefined, unknown] = (await bucket.getFiles(query)) as [
        File[],
        { pageToken?: string } | null | undefined,
        unknown,
      ];
      // A few deletes at a time: fast enough, and gentle on the per-object mutation rate.
      for (let i = 0; i < files.length; i += 8) {
        const results = await Promise.all(
          files.slice(i, i + 8).map((f) =>
            f.delete().then(
              () => 1,
              (e: unknown) => {
                if (httpStatusOf(e) === 404) return 0;
                throw e;
              },
            ),
          ),
        );
        deleted += results.reduce<number>((a, b) => a + b, 0);
      }
      query = next?.pageToken ? { prefix, autoPaginate: false, maxResults: 500, pageToken: next.pageToken } : null;
    }
    return deleted;
  }
}
