/**
 * The upload leg of a copy: a download's bytes metered (size cap, stall clock, progress, the
 * hashes the source did not declare) into a resumable Cloud Storage upload that creates the object
 * only if it does not exist (`ifGenerationMatch: 0`); what a failed upload means; and the status
 * query that tells how much of an interrupted session Cloud Storage has kept.
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { File, Storage } from '@google-cloud/storage';
import { ArchiveRejectedError, CopyInterruptedError } from '../domain/errors';
import type { ArchiveFacts, CopyCheckpoint, CopyProgress, CopyResumeOptions } from '../domain/ports/archive-copier';
import { UPLOAD_STATUS_RETRY_DELAYS_MS } from '../domain/retry-policies';
import type { StoredArchive } from '../domain/model';
import { Crc32c } from './crc32c';
import type { DownloadGuard } from './download-guard';
import { networkReason } from './signed-url-source';
import { existing, httpStatusOf, matchesSource, metadataOrUndefined, mismatchMessage, removeIfPartial, verifyUpload, type SentHashes } from './stored-archive';

/**
 * 8 MiB: a multiple of 256 KiB as Cloud Storage requires, and the size it recommends at least;
 * one chunk is the most a crash can lose.
 */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/**
 * How far the download may run ahead of a chunked upload: half a chunk. The storage client gathers
 * a whole chunk before it sends it and takes no byte while it waits for Cloud Storage's answer to
 * it, so with nothing between them the download stops at every chunk and the legs run one after
 * the other. This read-ahead lets half of the next chunk arrive meanwhile, for half a chunk more
 * memory (the benchmark's copy figures, and its peak RSS, measure both).
 */
export function readAheadBytes(chunkSize: number): number {
  return Math.floor(chunkSize / 2);
}

export interface UploadLimits {
  /** The most bytes an archive may have. */
  maxBytes: number;
  /** Progress is reported at most every this many bytes or this many ms, whichever comes first. */
  progressEveryBytes: number;
  progressEveryMs: number;
}

export interface ArchiveUploadOptions {
  /** The download's body, and the guard that owns its stall clock and abort. */
  body: Readable;
  guard: DownloadGuard;
  /** Where the bytes go: the archive object, or a part object. */
  file: File;
  /** What the source declared: declared to Cloud Storage, and checked against. */
  source: ArchiveFacts;
  /** The source, as it may appear in errors (`describe(url)`). */
  where: string;
  limits: UploadLimits;
  onProgress?: CopyProgress | undefined;
  /** A chunked upload that can be resumed: its checkpoint is saved, a broken one keeps its session. */
  resumable?: Pick<CopyResumeOptions, 'chunkSize' | 'onCheckpoint'> | undefined;
  /** Continue this session (only the rest of the archive is in `body`) instead of starting one. */
  session?: { uri: string; offset: number | undefined } | undefined;
}

/** Counts and hashes the bytes passing, restarts the stall clock, reports progress, enforces the cap. */
class UploadMeter extends Transform {
  count = 0;
  sourceEnded = false;
  private reported = 0;
  private reportedAt = Date.now();

  constructor(
    private readonly opts: Pick<ArchiveUploadOptions, 'guard' | 'where' | 'limits' | 'onProgress'>,
    private readonly crc: Crc32c | undefined,
    private readonly md5: Hash | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const { guard, limits, onProgress } = this.opts;
    guard.arm();
    this.count += chunk.length;
    if (this.count > limits.maxBytes) {
      const e = new ArchiveRejectedError(`Archive exceeds the limit of ${limits.maxBytes} bytes (${this.opts.where})`);
      guard.fail(e);
      return cb(e);
    }
    this.crc?.update(chunk);
    this.md5?.update(chunk);
    const now = Date.now();
    if (onProgress && (this.count - this.reported >= limits.progressEveryBytes || now - this.reportedAt >= limits.progressEveryMs)) {
      this.reported = this.count;
      this.reportedAt = now;
      onProgress(this.count);
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.sourceEnded = true;
    cb();
  }

  /** The last count, if the last report was not it. */
  reportLast(): void {
    if (this.opts.onProgress && this.reported !== this.count) this.opts.onProgress(this.count);
  }
}

/**
 * What a failed upload means, in this order: our own stop wins; every byte arrived and Cloud
 * Storage refused them against the declarations (permanent); a resumable upload keeps its session;
 * our own reason to abort; the bytes disagree with the source; 412, someone else created the
 * object (`mayHaveRaced`: look for theirs before giving up); else a retryable failure.
 * `removePartial`: what this attempt may have written must go.
 */
export function uploadFailure(f: {
  uploadError: unknown;
  own: Error | undefined;
  sourceEnded: boolean;
  count: number;
  computed: SentHashes;
  source: ArchiveFacts;
  resumable: boolean;
  at: string;
  where: string;
}): { error: Error; removePartial: boolean; mayHaveRaced: boolean } {
  const { own, source: src, count, computed, where } = f;
  const status = httpStatusOf(f.uploadError);
  const reason = status !== undefined ? `HTTP ${status}` : networkReason(f.uploadError);
  const keep = (error: Error) => ({ error, removePartial: false, mayHaveRaced: false });
  const remove = (error: Error) => ({ error, removePartial: true, mayHaveRaced: false });
  if (own instanceof CopyInterruptedError) return keep(own);
  if (!own && f.sourceEnded && status === 400 && (src.crc32c !== undefined || src.md5 !== undefined || src.size !== undefined)) {
    return keep(
      new ArchiveRejectedError(
        `Archive checksum mismatch: Cloud Storage refused the ${count} bytes received against the source's size ${src.size ?? '?'}, crc32c ${src.crc32c ?? '?'}, md5 ${src.md5 ?? '?'} (${where})`,
      ),
    );
  }
  if (f.resumable && !(own instanceof ArchiveRejectedError) && status !== 412) {
    return keep(own ?? new CopyInterruptedError(`Archive copy to ${f.at} broke off (${reason}) from ${where}`));
  }
  if (own) return remove(own);
  if (f.sourceEnded && !matchesSource(count, computed, src)) return remove(new ArchiveRejectedError(mismatchMessage(count, computed, src, where)));
  return { error: new Error(`Archive copy to ${f.at} failed (${reason}) from ${where}`), removePartial: true, mayHaveRaced: status === 412 };
}

/** Streams `body` into `file` and verifies the result; see `uploadFailure` for what a failure becomes. */
export async function uploadArchive(opts: ArchiveUploadOptions): Promise<StoredArchive> {
  const { file, source: src, resumable, session } = opts;
  // The upload declares the source's size and checksums, and Cloud Storage refuses (400) an upload
  // whose bytes do not match them: it verifies against the source itself. Hashing here too would
  // cost the CPU a copy is bound by, so we hash only what the source did not declare.
  const crc = src.crc32c === undefined ? new Crc32c() : undefined;
  const md5 = src.crc32c === undefined && src.md5 !== undefined ? createHash('md5') : undefined;
  const meter = new UploadMeter(opts, crc, md5);
  const chunkSize = resumable ? (resumable.chunkSize ?? DEFAULT_CHUNK_SIZE) : undefined;

  const metadata: Record<string, unknown> = { contentType: src.contentType };
  if (src.size !== undefined) metadata.contentLength = src.size;
  if (src.crc32c !== undefined) metadata.crc32c = src.crc32c;
  if (src.md5 !== undefined) metadata.md5Hash = src.md5;
  const sink = file.createWriteStream({
    resumable: true,
    validation: false,
    preconditionOpts: { ifGenerationMatch: 0 },
    metadata,
    ...(chunkSize !== undefined ? { chunkSize } : {}),
    // With an offset the stream starts there; without one, the client asks and skips ahead itself.
    ...(session ? { uri: session.uri, ...(session.offset ? { offset: session.offset } : {}) } : {}),
  });
  let checkpointSaved: Promise<void> = Promise.resolve();
  const save = resumable?.onCheckpoint;
  if (save && !session) {
    sink.on('uri', (uploadUri: string) => {
      checkpointSaved = save({ uploadUri, ...(src.size !== undefined ? { size: src.size } : {}), ...(src.crc32c ? { crc32c: src.crc32c } : {}), ...(src.md5 ? { md5: src.md5 } : {}) });
    });
  }

  let uploadError: unknown;
  try {
    if (chunkSize === undefined) await pipeline(opts.body, meter, sink);
    else await pipeline(opts.body, meter, new PassThrough({ readableHighWaterMark: readAheadBytes(chunkSize) }), sink);
  } catch (e) {
    uploadError = e;
  }
  await checkpointSaved;
  const { count, sourceEnded } = meter;
  const computed: SentHashes = { crc32c: crc?.digestBase64(), md5: md5?.digest('base64') };

  if (uploadError !== undefined) {
    const at = `gs://${file.bucket.name}/${file.name}`;
    const failure = uploadFailure({ uploadError, own: opts.guard.ownFailure, sourceEnded, count, computed, source: src, resumable: resumable !== undefined, at, where: opts.where });
    if (failure.mayHaveRaced) {
      // Someone else created the object meanwhile (a duplicate delivery racing us).
      const now = await metadataOrUndefined(file);
      if (now) return existing(file, now, src);
    }
    if (failure.removePartial) await removeIfPartial(file, src, computed.crc32c, count);
    throw failure.error;
  }
  meter.reportLast();
  // On a resumed session only the tail passed through here: our own hashes cover part of the
  // archive, so the end-to-end check is Cloud Storage's checksum of the whole object.
  return verifyUpload(file, src, { count, computed, resumed: session !== undefined }, opts.where);
}

export type SessionStatus = { kind: 'open'; committed: number } | { kind: 'complete' } | { kind: 'gone' };

/**
 * Asks Cloud Storage how much of a resumable session it has committed (`Content-Range: bytes *\/*`):
 * 308 with `Range: bytes=0-N` (N+1 committed; no Range: none), 200/201 when it is complete,
 * 404/410 when the session is gone (expired after a week, or cancelled).
 */
export async function sessionStatus(storage: Storage, fetchImpl: typeof fetch, cp: CopyCheckpoint, retryDelaysMs: readonly number[] = UPLOAD_STATUS_RETRY_DELAYS_MS): Promise<SessionStatus> {
  const authHeaders = await sessionAuthHeaders(storage);
  let res: Response;
  for (let attempt = 0; ; attempt++) {
    res = await fetchImpl(cp.uploadUri, {
      method: 'PUT',
      headers: { ...authHeaders, 'content-range': `bytes */${cp.size ?? '*'}`, 'content-length': '0' },
      redirect: 'manual',
    });
    await res.arrayBuffer().catch(() => undefined);
    // A 5xx or 429 is Cloud Storage's to retry (the request of a copy that broke off may still be
    // finishing on the session): ask again after a pause, as the client does with its own requests.
    const delay = retryDelaysMs[attempt];
    if (!(res.status >= 500 || res.status === 429) || delay === undefined) break;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  if (res.status === 308) {
    const m = /bytes=0-(\d+)/.exec(res.headers.get('range') ?? '');
    return { kind: 'open', committed: m ? Number(m[1]) + 1 : 0 };
  }
  if (res.status === 200 || res.status === 201) return { kind: 'complete' };
  if (res.status === 404 || res.status === 410 || res.status === 400) return { kind: 'gone' };
  throw new Error(`Cloud Storage answered ${res.status} to an upload status query`);
}

/** The credentials the storage client itself would send (none for a local endpoint). */
async function sessionAuthHeaders(storage: Storage): Promise<Record<string, string>> {
  if (!/^https:\/\/storage\.googleapis\.com/.test(storage.apiEndpoint)) return {};
  const token = await storage.authClient.getAccessToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}
