/**
 * A Cloud Storage stand-in for the local stack and tests: a small HTTP server speaking enough of
 * the GCS JSON API for the real `@google-cloud/storage` client (no GCS emulator runs here).
 *
 * Object bytes are streamed to files in a temp dir and hashed (CRC32C + MD5) on the way in, so an
 * object of any size costs no memory. Metadata lives in memory: it is lost on stop, by design.
 * Object names are compared as UTF-8 bytes when listing, as GCS does.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FastCrc32c } from './fast-crc32c';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { verifyV4SignedUrl } from './gcs-signed-urls';

export interface GcsServer {
  /** e.g. `http://127.0.0.1:PORT`, for `new Storage({apiEndpoint})`. */
  endpoint: string;
  port: number;
  /** Where object bytes are kept (removed on stop when the server made it). */
  dataDir: string;
  /** How many times an upload or compose made a new generation of this object (refused ones do not count). */
  writesOf(bucket: string, name: string): number;
  /** What downloads of this object sent so far (body bytes, requests): what a ranged reader cost. */
  servedOf(bucket: string, name: string): { bytes: number; requests: number };
  /**
   * Benchmarks: makes a file already on disk an object without reading it (a sparse multi-gigabyte
   * archive stays cheap), trusting the checksums given. Tests upload through the client instead.
   */
  adoptFile(bucket: string, name: string, file: string, facts: { size: number; crc32c: string; md5Hash?: string }): void;
  faults: GcsFaults;
  /** Trusts this account's key (PEM, public or private) for V4 signed URLs: `GET /{bucket}/{object}?X-Goog-…`. */
  trustSigner(email: string, keyPem: string): void;
  /** Moves the clock signed URLs are checked against (ms, may be negative): expiry without waiting. */
  advanceClock(ms: number): void;
  stop(): Promise<void>;
}

/** Ways the stand-in can misbehave, so tests reach the checks that a well-behaved store makes redundant. */
export interface GcsFaults {
  /**
   * Uploads to names starting with `prefix` keep their first byte flipped and ignore the hashes the
   * uploader declared, reporting the size and hashes of what they kept (a store that rots bytes).
   */
  corruptUploads(prefix: string): void;
  /**
   * Uploads to names starting with `prefix` are kept intact, but their metadata reports a wrong MD5
   * or size, or no MD5 at all (`noMd5Hash`: what Cloud Storage reports for a composed object).
   */
  misreportUploads(prefix: string, field: 'md5Hash' | 'size' | 'noMd5Hash'): void;
  clear(): void;
}

interface StoredObject {
  bucket: string;
  name: string;
  generation: number;
  metageneration: number;
  size: number;
  md5Hash: string;
  crc32c: string;
  contentType: string;
  metadata?: Record<string, string>;
  timeCreated: string;
  updated: string;
  file: string;
  /** A composed object: its bytes are these files in order (hard links to the components' files), and `file` is unused. */
  segments?: Array<{ file: string; size: number }>;
  componentCount?: number;
}

interface BucketRecord {
  name: string;
  timeCreated: string;
  objects: Map<string, StoredObject>;
}

/** What a finished upload declared about itself: the object resource sent with it, and query preconditions. */
interface UploadIntent {
  bucket: string;
  name: string;
  resource: Record<string, unknown>;
  preconditions: Preconditions;
  /** From `X-Upload-Content-Length` or a final `Content-Range` total. */
  expectedSize?: number;
}

interface Preconditions {
  ifGenerationMatch?: number;
  ifGenerationNotMatch?: number;
  ifMetagenerationMatch?: number;
  ifMetagenerationNotMatch?: number;
}

interface UploadSession {
  id: string;
  intent: UploadIntent;
  file: string;
  received: number;
  crc: FastCrc32c;
  md5: Hash;
  /** Set once the upload is finalized, so a status query can answer with the object. */
  result?: StoredObject;
  /** A chunk is being written: a second concurrent PUT would corrupt the file. */
  busy: boolean;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

/** Counts and hashes bytes on their way to disk; can skip a prefix already received (a resent chunk). */
class HashingCounter extends Transform {
  count = 0;
  constructor(
    private readonly crc: FastCrc32c,
    private readonly md5: Hash,
    private skip = 0,
    /** Flip the first byte kept (the `corruptUploads` fault). */
    private flipFirst = false,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let data = chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, data.length);
      this.skip -= n;
      data = data.subarray(n);
    }
    if (data.length > 0 && this.flipFirst) {
      data = Buffer.from(data);
      data[0] ^= 0xff;
      this.flipFirst = false;
    }
    if (data.length > 0) {
      this.crc.update(data);
      this.md5.update(data);
      this.count += data.length;
      this.push(data);
    }
    cb();
  }
}

/**
 * Cuts the media part out of a `multipart/related` body as it streams: the first part (JSON
 * metadata) is buffered (capped), the second part's bytes pass through up to the closing boundary.
 */
class MultipartMediaExtractor extends Transform {
  private state: 'preamble' | 'meta' | 'mediaHeaders' | 'media' | 'done' = 'preamble';
  private buf: Buffer = Buffer.alloc(0);
  private readonly delimiter: Buffer;
  metadataJson = '';
  mediaContentType = 'application/octet-stream';

  constructor(boundary: string) {
    super();
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
    // The body starts with `--boundary` (no CRLF before it): prepend one so one delimiter fits all.
    this.buf = Buffer.from('\r\n');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      this.drain();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.state !== 'done') return cb(new HttpError(400, 'Malformed multipart body', 'invalid'));
    cb();
  }

  private drain(): void {
    for (;;) {
      if (this.state === 'preamble' || this.state === 'meta') {
        const at = this.buf.indexOf(this.delimiter);
        if (at < 0) {
          if (this.buf.length > 1 << 20) throw new HttpError(400, 'Multipart metadata part too large', 'invalid');
          return;
        }
        if (this.state === 'meta') this.metadataJson = stripPartHeaders(this.buf.subarray(0, at)).body.toString('utf8');
        this.buf = this.buf.subarray(at + this.delimiter.length);
        this.state = this.state === 'preamble' ? 'meta' : 'mediaHeaders';
        continue;
      }
      if (this.state === 'mediaHeaders') {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headers = this.buf.subarray(0, end).toString('latin1');
        const ct = /content-type:\s*([^\r\n]+)/i.exec(headers);
        if (ct) this.mediaContentType = ct[1].trim();
        this.buf = this.buf.subarray(end + 4);
        this.state = 'media';
        continue;
      }
      if (this.state === 'media') {
        const at = this.buf.indexOf(this.delimiter);
        if (at >= 0) {
          if (at > 0) this.push(this.buf.subarray(0, at));
          this.buf = Buffer.alloc(0);
          this.state = 'done';
          return;
        }
        // Keep a tail that could be the start of the delimiter split across chunks.
        const keep = Math.min(this.buf.length, this.delimiter.length - 1);
        const out = this.buf.subarray(0, this.buf.length - keep);
        if (out.length > 0) this.push(Buffer.from(out));
        this.buf = Buffer.from(this.buf.subarray(this.buf.length - keep));
        return;
      }
      return;
    }
  }
}

/** A part is `\r\nHeaders\r\n\r\nbody` after its delimiter. */
function stripPartHeaders(part: Buffer): { body: Buffer } {
  const end = part.indexOf('\r\n\r\n');
  return { body: end < 0 ? part : part.subarray(end + 4) };
}

function errorBody(code: number, message: string, reason: string): string {
  return JSON.stringify({ error: { code, message, errors: [{ message, domain: 'global', reason }] } });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = errorBody(err.code, err.message, err.reason);
  res.writeHead(err.code, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 1 << 20) throw new HttpError(413, 'Request body too large', 'invalid');
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    throw new HttpError(400, 'Invalid JSON body', 'parseError');
  }
}

function intParam(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new HttpError(400, `Invalid value for ${key}`, 'invalid');
  return n;
}

function preconditionsOf(q: URLSearchParams): Preconditions {
  return {
    ifGenerationMatch: intParam(q, 'ifGenerationMatch'),
    ifGenerationNotMatch: intParam(q, 'ifGenerationNotMatch'),
    ifMetagenerationMatch: intParam(q, 'ifMetagenerationMatch'),
    ifMetagenerationNotMatch: intParam(q, 'ifMetagenerationNotMatch'),
  };
}

/** GCS semantics: generation 0 stands for "no live object". */
function checkPreconditions(p: Preconditions, current: StoredObject | undefined): void {
  const gen = current?.generation ?? 0;
  const fail = (): never => {
    throw new HttpError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
  };
  if (p.ifGenerationMatch !== undefined && p.ifGenerationMatch !== gen) fail();
  if (p.ifGenerationNotMatch !== undefined && p.ifGenerationNotMatch === gen) fail();
  if (p.ifMetagenerationMatch !== undefined && (!current || current.metageneration !== p.ifMetagenerationMatch)) fail();
  if (p.ifMetagenerationNotMatch !== undefined && current && current.metageneration === p.ifMetagenerationNotMatch) fail();
}

/** Bytes `start..end` (inclusive) of a composite object, read segment by segment. */
async function* segmentsRange(segments: Array<{ file: string; size: number }>, start: number, end: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for (const seg of segments) {
    const segStart = offset;
    offset += seg.size;
    if (offset <= start || seg.size === 0) continue;
    if (segStart > end) return;
    const from = Math.max(0, start - segStart);
    const to = Math.min(seg.size - 1, end - segStart);
    for await (const chunk of createReadStream(seg.file, { start: from, end: to })) yield chunk as Buffer;
  }
}

const CRC32C_POLY = 0x82f63b78;

function crcValue(b64: string): number {
  return Buffer.from(b64, 'base64').readUInt32BE(0);
}

function crcBase64(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b.toString('base64');
}

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i];
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]);
}

/**
 * CRC32C of A‖B from CRC32C(A), CRC32C(B) and B's length (zlib's crc32_combine with the Castagnoli
 * polynomial): how GCS gives a composite object a checksum without reading its bytes.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = CRC32C_POLY;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2Square(even, odd);
  gf2Square(odd, even);
  let crc = crcA >>> 0;
  let len = lengthB;
  for (;;) {
    gf2Square(even, odd);
    if (len % 2 === 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
  }
  return (crc ^ crcB) >>> 0;
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A refusal on the XML API (where signed URLs point), worded as Cloud Storage words it. */
function sendXmlError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const text = `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>${message.replace(/[<&>]/g, '')}</Message></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml; charset=UTF-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startGcsServer(opts: { dataDir?: string } = {}): Promise<GcsServer> {
  const signers = new Map<string, KeyObject>();
  let clockOffsetMs = 0;
  const ownsDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'gcs-server-')));
  await fsp.mkdir(dataDir, { recursive: true });

  const buckets = new Map<string, BucketRecord>();
  const sessions = new Map<string, UploadSession>();
  // Generations grow like GCS's (microseconds since the epoch), strictly increasing.
  let lastGeneration = 0;
  const nextGeneration = (): number => (lastGeneration = Math.max(lastGeneration + 1, Date.now() * 1000));
  const writes = new Map<string, number>();
  const servedCounts = new Map<string, { bytes: number; requests: number }>();
  const countWrite = (o: StoredObject): void => {
    const key = `${o.bucket}/${o.name}`;
    writes.set(key, (writes.get(key) ?? 0) + 1);
  };
  const corruptPrefixes: string[] = [];
  const corrupts = (name: string): boolean => corruptPrefixes.some((p) => name.startsWith(p));
  const misreports: Array<{ prefix: string; field: 'md5Hash' | 'size' | 'noMd5Hash' }> = [];

  const bucketOr404 = (name: string): BucketRecord => {
    const b = buckets.get(name);
    if (!b) throw new HttpError(404, 'The specified bucket does not exist.', 'notFound');
    return b;
  };
  const objectOr404 = (bucket: string, name: string): StoredObject => {
    const o = bucketOr404(bucket).objects.get(name);
    if (!o) throw new HttpError(404, `No such object: ${bucket}/${name}`, 'notFound');
    return o;
  };

  const objectResource = (o: StoredObject, base: string): Record<string, unknown> => {
    const enc = encodeURIComponent(o.name);
    return {
      kind: 'storage#object',
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${base}/storage/v1/b/${o.bucket}/o/${enc}`,
      mediaLink: `${base}/download/storage/v1/b/${o.bucket}/o/${enc}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: String(o.generation),
      metageneration: String(o.metageneration),
      contentType: o.contentType,
      storageClass: 'STANDARD',
      size: String(o.size),
      // Composite objects have no MD5 in GCS: only CRC32C can be combined.
      ...(o.md5Hash ? { md5Hash: o.md5Hash } : {}),
      crc32c: o.crc32c,
      ...(o.componentCount ? { componentCount: o.componentCount } : {}),
      etag: `${o.generation}.${o.metageneration}`,
      timeCreated: o.timeCreated,
      updated: o.updated,
      timeStorageClassUpdated: o.timeCreated,
      ...(o.metadata ? { metadata: o.metadata } : {}),
    };
  };

  const bucketResource = (b: BucketRecord, base: string): Record<string, unknown> => ({
    kind: 'storage#bucket',
    id: b.name,
    selfLink: `${base}/storage/v1/b/${b.name}`,
    name: b.name,
    projectNumber: '0',
    metageneration: '1',
    location: 'US',
    storageClass: 'STANDARD',
    etag: 'CAE=',
    timeCreated: b.timeCreated,
    updated: b.timeCreated,
  });

  const removeFile = (file: string): void => {
    fsp.unlink(file).catch(() => undefined);
  };
  const removeObjectFiles = (o: StoredObject): void => {
    if (o.segments) for (const seg of o.segments) removeFile(seg.file);
    else removeFile(o.file);
  };

  /**
   * Makes a fully received upload the live object, or refuses it. Synchronous from the checks to
   * the map update, so two uploads racing with `ifGenerationMatch=0` cannot both win.
   */
  const finalize = (
    intent: UploadIntent,
    file: string,
    size: number,
    crc: FastCrc32c,
    md5: Hash,
    sent: { crc32c?: string; md5?: string } = {},
  ): StoredObject => {
    try {
      const bucket = bucketOr404(intent.bucket);
      const crc32c = crc.toString();
      const md5Hash = md5.digest('base64');
      if (intent.expectedSize !== undefined && intent.expectedSize !== size) {
        throw new HttpError(400, `Upload size ${size} does not match the declared size ${intent.expectedSize}`, 'invalid');
      }
      // The JSON API validates hashes given in the object resource of an upload (unless it misbehaves).
      const validates = !corrupts(intent.name);
      const wantCrc = validates ? (sent.crc32c ?? intent.resource.crc32c) : undefined;
      const wantMd5 = validates ? (sent.md5 ?? intent.resource.md5Hash) : undefined;
      if (typeof wantCrc === 'string' && wantCrc !== crc32c) {
        throw new HttpError(400, `Provided CRC32C "${wantCrc}" doesn't match calculated CRC32C "${crc32c}".`, 'invalid');
      }
      if (typeof wantMd5 === 'string' && wantMd5 !== md5Hash) {
        throw new HttpError(400, `Provided MD5 hash "${wantMd5}" doesn't match calculated MD5 hash "${md5Hash}".`, 'invalid');
      }
      const current = bucket.objects.get(intent.name);
      checkPreconditions(intent.preconditions, current);
      const now = new Date().toISOString();
      const r = intent.resource;
      const obj: StoredObject = {
        bucket: intent.bucket,
        name: intent.name,
        generation: nextGeneration(),
        metageneration: 1,
        size,
        md5Hash,
        crc32c,
        contentType: typeof r.contentType === 'string' ? r.contentType : 'application/octet-stream',
        metadata: r.metadata && typeof r.metadata === 'object' ? (r.metadata as Record<string, string>) : undefined,
        timeCreated: now,
        updated: now,
        file,
      };
      for (const m of misreports) {
        if (!intent.name.startsWith(m.prefix)) continue;
        if (m.field === 'md5Hash') obj.md5Hash = Buffer.alloc(16).toString('base64');
        else if (m.field === 'noMd5Hash') obj.md5Hash = '';
        else obj.size += 1;
      }
      bucket.objects.set(intent.name, obj);
      countWrite(obj);
      if (current) removeObjectFiles(current);
      return obj;
    } catch (e) {
      removeFile(file);
      throw e;
    }
  };

  /** `X-Goog-Hash: crc32c=…,md5=…` sent with the last request of an upload. */
  const hashHeader = (req: http.IncomingMessage): { crc32c?: string; md5?: string } => {
    const h = req.headers['x-goog-hash'];
    const out: { crc32c?: string; md5?: string } = {};
    if (typeof h !== 'string') return out;
    for (const pair of h.split(',')) {
      const i = pair.indexOf('=');
      const k = pair.slice(0, i).trim();
      const v = pair.slice(i + 1).trim();
      if (k === 'crc32c') out.crc32c = v;
      if (k === 'md5') out.md5 = v;
    }
    return out;
  };

  const intentFrom = (q: URLSearchParams, bucket: string, resource: Record<string, unknown>): UploadIntent => {
    const name = q.get('name') ?? (typeof resource.name === 'string' ? resource.name : undefined);
    if (!name) throw new HttpError(400, 'Required parameter: name', 'required');
    bucketOr404(bucket);
    return { bucket, name, resource, preconditions: preconditionsOf(q) };
  };

  /** `uploadType=media` or `multipart`: one request carries the whole object. */
  const simpleUpload = async (req: http.IncomingMessage, q: URLSearchParams, bucket: string, base: string) => {
    const uploadType = q.get('uploadType') ?? 'media';
    const file = path.join(dataDir, randomUUID());
    const crc = new FastCrc32c();
    const md5 = createHash('md5');
    const counter = new HashingCounter(crc, md5, 0, corrupts(q.get('name') ?? ''));
    let resource: Record<string, unknown> = {};
    try {
      if (uploadType === 'multipart') {
        const ct = req.headers['content-type'] ?? '';
        const m = /boundary=("?)([^";]+)\1/i.exec(ct);
        if (!m) throw new HttpError(400, 'Missing multipart boundary', 'invalid');
        const extractor = new MultipartMediaExtractor(m[2]);
        await pipeline(req, extractor, counter, createWriteStream(file));
        try {
          resource = extractor.metadataJson ? (JSON.parse(extractor.metadataJson) as Record<string, unknown>) : {};
        } catch {
          throw new HttpError(400, 'Invalid JSON metadata part', 'parseError');
        }
        resource.contentType ??= extractor.mediaContentType;
      } else if (uploadType === 'media') {
        await pipeline(req, counter, createWriteStream(file));
        resource = { contentType: req.headers['content-type'] ?? 'application/octet-stream' };
      } else {
        throw new HttpError(400, `Unsupported uploadType ${uploadType}`, 'invalid');
      }
    } catch (e) {
      removeFile(file);
      throw e;
    }
    const intent = intentFrom(q, bucket, resource);
    const obj = finalize(intent, file, counter.count, crc, md5, hashHeader(req));
    return objectResource(obj, base);
  };

  const startResumable = async (req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams, bucket: string, base: string) => {
    const resource = await readJson(req);
    const ct = req.headers['x-upload-content-type'];
    if (typeof ct === 'string') resource.contentType = ct;
    const intent = intentFrom(q, bucket, resource);
    // Fail early on a precondition that already cannot hold; it is checked again when the upload completes.
    checkPreconditions(intent.preconditions, buckets.get(bucket)?.objects.get(intent.name));
    const declared = req.headers['x-upload-content-length'];
    if (typeof declared === 'string' && declared !== '') intent.expectedSize = Number(declared);
    const id = randomUUID();
    const file = path.join(dataDir, `${id}.upload`);
    await fsp.writeFile(file, '');
    sessions.set(id, { id, intent, file, received: 0, crc: new FastCrc32c(), md5: createHash('md5'), busy: false });
    const location = `${base}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&name=${encodeURIComponent(intent.name)}&upload_id=${id}`;
    res.writeHead(200, { Location: location, 'X-GUploader-UploadID': id, 'Content-Length': 0 });
    res.end();
  };

  const incomplete = (res: http.ServerResponse, s: UploadSession): void => {
    const headers: http.OutgoingHttpHeaders = { 'Content-Length': 0 };
    if (s.received > 0) headers.Range = `bytes=0-${s.received - 1}`;
    res.writeHead(308, headers);
    res.end();
  };

  /** A PUT to a session URI: a status query (`bytes *\/N`), a chunk, or the last (or only) chunk. */
  const resumableChunk = async (req: http.IncomingMessage, res: http.ServerResponse, s: UploadSession, base: string) => {
    if (s.result) {
      req.resume();
      return sendJson(res, 200, objectResource(s.result, base));
    }
    const range = req.headers['content-range'];
    let start = 0;
    let end: number | undefined;
    let total: number | undefined;
    let statusQuery = false;
    if (typeof range === 'string') {
      const m = /^bytes (?:(\*)|(\d+)-(\d+|\*))\/(\d+|\*)$/.exec(range.trim());
      if (!m) throw new HttpError(400, `Invalid Content-Range: ${range}`, 'invalid');
      statusQuery = m[1] === '*';
      if (!statusQuery) {
        start = Number(m[2]);
        end = m[3] === '*' ? undefined : Number(m[3]);
      }
      total = m[4] === '*' ? undefined : Number(m[4]);
    }
    // `bytes 0-*/*` (and no Content-Range at all) means: this request's body is the rest of the object.
    const bodyIsRest = typeof range !== 'string' || (!statusQuery && end === undefined);

    if (s.busy) throw new HttpError(503, 'Another request is writing to this upload session', 'backendError');
    if (statusQuery) {
      req.resume();
      if (total !== undefined && total === s.received) return completeSession(res, s, base);
      return incomplete(res, s);
    }
    if (start > s.received) {
      req.resume();
      throw new HttpError(400, `Chunk starts at ${start} but only ${s.received} bytes were received`, 'invalid');
    }
    s.busy = true;
    const before = { received: s.received, crc: s.crc.valueOf(), md5: s.md5.copy() };
    const counter = new HashingCounter(s.crc, s.md5, s.received - start, s.received === 0 && corrupts(s.intent.name));
    try {
      await pipeline(req, counter, createWriteStream(s.file, { flags: 'a' }));
    } catch (e) {
      // The chunk was cut off: roll back to before it, so what we report is exactly what we keep.
      s.received = before.received;
      s.crc = new FastCrc32c(before.crc);
      s.md5 = before.md5;
      await fsp.truncate(s.file, before.received).catch(() => undefined);
      s.busy = false;
      throw e;
    }
    s.received += counter.count;
    s.busy = false;
    if (total !== undefined) s.intent.expectedSize = total;
    if (bodyIsRest || (total !== undefined && s.received >= total)) return completeSession(res, s, base, req);
    incomplete(res, s);
  };

  const completeSession = (res: http.ServerResponse, s: UploadSession, base: string, req?: http.IncomingMessage): void => {
    try {
      s.result = finalize(s.intent, s.file, s.received, s.crc, s.md5, req ? hashHeader(req) : {});
      sendJson(res, 200, objectResource(s.result, base));
    } catch (e) {
      // A refused upload (precondition, size, hash) ends its session, as in GCS.
      sessions.delete(s.id);
      throw e;
    }
  };

  const download = async (req: http.IncomingMessage, res: http.ServerResponse, obj: StoredObject) => {
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': obj.contentType,
      'x-goog-hash': obj.md5Hash ? `crc32c=${obj.crc32c},md5=${obj.md5Hash}` : `crc32c=${obj.crc32c}`,
      'x-goog-generation': String(obj.generation),
      'x-goog-metageneration': String(obj.metageneration),
      'x-goog-stored-content-encoding': 'identity',
      'x-goog-stored-content-length': String(obj.size),
      ETag: `"${obj.md5Hash || obj.crc32c}"`,
      'Accept-Ranges': 'bytes',
      'Last-Modified': new Date(obj.updated).toUTCString(),
    };
    let start = 0;
    let end = obj.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (typeof range === 'string') {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') {
          start = Math.max(0, obj.size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== '') end = Math.min(end, Number(m[2]));
        }
        if (start >= obj.size || start > end) {
          res.writeHead(416, { 'Content-Range': `bytes */${obj.size}`, 'Content-Length': 0 });
          res.end();
          return;
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${obj.size}`;
      }
    }
    headers['Content-Length'] = obj.size === 0 ? 0 : end - start + 1;
    res.writeHead(status, headers);
    const served = servedCounts.get(`${obj.bucket}/${obj.name}`) ?? { bytes: 0, requests: 0 };
    served.requests++;
    if (req.method !== 'HEAD') served.bytes += obj.size === 0 ? 0 : end - start + 1;
    servedCounts.set(`${obj.bucket}/${obj.name}`, served);
    if (req.method === 'HEAD' || obj.size === 0) {
      res.end();
      return;
    }
    const stream: Readable = obj.segments ? Readable.from(segmentsRange(obj.segments, start, end)) : createReadStream(obj.file, { start, end });
    await pipeline(stream, res).catch(() => res.destroy());
  };

  /**
   * `objects.compose`: like GCS, metadata only. The composite's bytes are hard links to its
   * components' files (deleting a component later keeps them), and its CRC32C is combined from the
   * components' CRC32Cs and sizes, never recomputed from the bytes; it has no MD5.
   */
  const compose = async (req: http.IncomingMessage, q: URLSearchParams, bucketName: string, destName: string): Promise<StoredObject> => {
    const body = await readJson(req);
    const bucket = bucketOr404(bucketName);
    const sources = Array.isArray(body.sourceObjects) ? (body.sourceObjects as Array<Record<string, unknown>>) : [];
    if (sources.length === 0) throw new HttpError(400, 'Required field: sourceObjects', 'required');
    if (sources.length > 32) throw new HttpError(400, 'The number of source objects provided exceeds the maximum of 32.', 'invalid');
    const components = sources.map((src) => {
      if (typeof src.name !== 'string' || src.name === '') throw new HttpError(400, 'Required field: sourceObjects.name', 'required');
      const o = objectOr404(bucketName, src.name);
      if (src.generation !== undefined && Number(src.generation) !== o.generation) throw new HttpError(404, `No such object: ${bucketName}/${src.name}`, 'notFound');
      return o;
    });
    checkPreconditions(preconditionsOf(q), bucket.objects.get(destName));
    const segments: Array<{ file: string; size: number }> = [];
    let crc = 0;
    let size = 0;
    for (const c of components) {
      for (const seg of c.segments ?? [{ file: c.file, size: c.size }]) {
        const link = path.join(dataDir, `${randomUUID()}.segment`);
        await fsp.link(seg.file, link);
        segments.push({ file: link, size: seg.size });
      }
      crc = size === 0 ? crcValue(c.crc32c) : crc32cCombine(crc, crcValue(c.crc32c), c.size);
      size += c.size;
    }
    // Checked again after the awaits: another request may have created the destination meanwhile.
    const current = bucket.objects.get(destName);
    try {
      checkPreconditions(preconditionsOf(q), current);
    } catch (e) {
      for (const seg of segments) removeFile(seg.file);
      throw e;
    }
    const dest = body.destination && typeof body.destination === 'object' ? (body.destination as Record<string, unknown>) : {};
    const now = new Date().toISOString();
    const obj: StoredObject = {
      bucket: bucketName,
      name: destName,
      generation: nextGeneration(),
      metageneration: 1,
      size,
      md5Hash: '',
      crc32c: crcBase64(crc),
      contentType: typeof dest.contentType === 'string' ? dest.contentType : 'application/octet-stream',
      metadata: dest.metadata && typeof dest.metadata === 'object' ? (dest.metadata as Record<string, string>) : undefined,
      timeCreated: now,
      updated: now,
      file: '',
      segments,
      componentCount: components.reduce((n, c) => n + (c.componentCount ?? 1), 0),
    };
    bucket.objects.set(destName, obj);
    countWrite(obj);
    if (current) removeObjectFiles(current);
    return obj;
  };

  const list = (q: URLSearchParams, bucketName: string, base: string) => {
    const bucket = bucketOr404(bucketName);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const startOffset = q.get('startOffset') ?? '';
    const endOffset = q.get('endOffset') ?? '';
    const maxResults = Math.min(intParam(q, 'maxResults') ?? 1000, 1000) || 1000;
    const token = q.get('pageToken');
    const after = token ? Buffer.from(token, 'base64url').toString('utf8') : undefined;

    const names = [...bucket.objects.keys()]
      .filter((n) => n.startsWith(prefix))
      .filter((n) => (startOffset ? utf8Compare(n, startOffset) >= 0 : true))
      .filter((n) => (endOffset ? utf8Compare(n, endOffset) < 0 : true))
      .sort(utf8Compare);
    // Entries are objects or, with a delimiter, the "directories" they roll up into.
    const entries: Array<{ key: string; object?: StoredObject }> = [];
    let lastPrefix: string | undefined;
    for (const n of names) {
      const i = delimiter ? n.indexOf(delimiter, prefix.length) : -1;
      if (i >= 0) {
        const p = n.slice(0, i + delimiter.length);
        if (p !== lastPrefix) entries.push({ key: p });
        lastPrefix = p;
      } else {
        entries.push({ key: n, object: bucket.objects.get(n) });
      }
    }
    const rest = after === undefined ? entries : entries.filter((e) => utf8Compare(e.key, after) > 0);
    const page = rest.slice(0, maxResults);
    const items = page.filter((e) => e.object).map((e) => objectResource(e.object as StoredObject, base));
    const prefixes = page.filter((e) => !e.object).map((e) => e.key);
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (items.length > 0) body.items = items;
    if (prefixes.length > 0) body.prefixes = prefixes;
    if (rest.length > page.length) body.nextPageToken = Buffer.from(page[page.length - 1].key, 'utf8').toString('base64url');
    return body;
  };

  /** The XML API's `GET /{bucket}/{object}`: only with a valid V4 signature (nothing here is public). */
  const signedRead = async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') return sendXmlError(res, 405, 'MethodNotAllowed', 'Only GET and HEAD are served here');
    if (!url.searchParams.has('X-Goog-Signature')) return sendXmlError(res, 403, 'AccessDenied', 'Anonymous caller does not have storage.objects.get access');
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    const verdict = verifyV4SignedUrl({ method, host, rawPath: url.pathname, query: url.searchParams }, signers, Date.now() + clockOffsetMs);
    if (!verdict.ok) return sendXmlError(res, verdict.code === 'AuthorizationQueryParametersError' ? 400 : 403, verdict.code, verdict.message);
    const [bucketSeg, ...nameSegs] = url.pathname.slice(1).split('/');
    const bucket = buckets.get(decodeURIComponent(bucketSeg ?? ''));
    const obj = bucket?.objects.get(decodeURIComponent(nameSegs.join('/')));
    if (!obj) return sendXmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
    return download(req, res, obj);
  };

  const route = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = url.searchParams;
    const base = `http://${req.headers.host ?? `127.0.0.1:${port}`}`;
    const method = req.method ?? 'GET';
    let p = url.pathname;
    let upload = false;
    if (p.startsWith('/upload/')) {
      upload = true;
      p = p.slice('/upload'.length);
    } else if (p.startsWith('/download/')) {
      p = p.slice('/download'.length);
    }
    if (p.startsWith('/storage/v1/')) p = p.slice('/storage/v1'.length);
    else if (!upload && !p.startsWith('/b/') && !p.startsWith('/b?') && p !== '/b' && !url.pathname.startsWith('/download/')) return signedRead(req, res, url);
    // Segments stay URL-encoded until split, so an object name may contain '/'.
    const seg = p.split('/').slice(1);
    if (seg[0] !== 'b') throw new HttpError(404, `Not found: ${url.pathname}`, 'notFound');
    const bucketName = seg[1] ? decodeURIComponent(seg[1]) : undefined;
    const objectName = seg[2] === 'o' && seg.length > 3 ? decodeURIComponent(seg.slice(3).join('/')) : undefined;

    if (upload) {
      if (!bucketName || seg[2] !== 'o') throw new HttpError(404, 'Not found', 'notFound');
      const uploadId = q.get('upload_id');
      if (uploadId) {
        const s = sessions.get(uploadId);
        if (!s) throw new HttpError(404, 'No such upload session (expired, cancelled or failed)', 'notFound');
        if (method === 'DELETE') {
          sessions.delete(uploadId);
          removeFile(s.file);
          res.writeHead(499, { 'Content-Length': 0 });
          res.end();
          return;
        }
        if (method !== 'PUT' && method !== 'POST') throw new HttpError(405, 'Method not allowed', 'invalid');
        return resumableChunk(req, res, s, base);
      }
      if (method !== 'POST') throw new HttpError(405, 'Method not allowed', 'invalid');
      if (q.get('uploadType') === 'resumable') return startResumable(req, res, q, bucketName, base);
      return sendJson(res, 200, await simpleUpload(req, q, bucketName, base));
    }

    if (!bucketName) {
      if (method === 'POST') {
        const body = await readJson(req);
        const name = typeof body.name === 'string' ? body.name : q.get('name');
        if (!name) throw new HttpError(400, 'Required field: name', 'required');
        if (buckets.has(name)) throw new HttpError(409, 'Your previous request to create the named bucket succeeded and you already own it.', 'conflict');
        const b: BucketRecord = { name, timeCreated: new Date().toISOString(), objects: new Map() };
        buckets.set(name, b);
        return sendJson(res, 200, bucketResource(b, base));
      }
      if (method === 'GET') {
        return sendJson(res, 200, { kind: 'storage#buckets', items: [...buckets.values()].map((b) => bucketResource(b, base)) });
      }
      throw new HttpError(405, 'Method not allowed', 'invalid');
    }

    if (seg.length === 2 || (seg.length === 3 && seg[2] === '')) {
      const b = bucketOr404(bucketName);
      if (method === 'GET') return sendJson(res, 200, bucketResource(b, base));
      if (method === 'DELETE') {
        if (b.objects.size > 0) throw new HttpError(409, 'The bucket you tried to delete is not empty.', 'conflict');
        buckets.delete(bucketName);
        res.writeHead(204);
        res.end();
        return;
      }
      if (method === 'PATCH' || method === 'PUT') {
        req.resume();
        return sendJson(res, 200, bucketResource(b, base));
      }
      throw new HttpError(405, 'Method not allowed', 'invalid');
    }

    if (seg[2] !== 'o') throw new HttpError(404, `Not found: ${url.pathname}`, 'notFound');
    if (objectName === undefined) {
      if (method === 'GET') return sendJson(res, 200, list(q, bucketName, base));
      throw new HttpError(405, 'Method not allowed', 'invalid');
    }

    if (method === 'POST' && objectName.endsWith('/compose')) {
      return sendJson(res, 200, objectResource(await compose(req, q, bucketName, objectName.slice(0, -'/compose'.length)), base));
    }
    const obj = objectOr404(bucketName, objectName);
    const gen = intParam(q, 'generation');
    if (gen !== undefined && gen !== obj.generation) throw new HttpError(404, `No such object: ${bucketName}/${objectName}`, 'notFound');
    checkPreconditions(preconditionsOf(q), obj);
    if (method === 'GET' || method === 'HEAD') {
      if (q.get('alt') === 'media') return download(req, res, obj);
      return sendJson(res, 200, objectResource(obj, base));
    }
    if (method === 'DELETE') {
      bucketOr404(bucketName).objects.delete(objectName);
      removeObjectFiles(obj);
      res.writeHead(204);
      res.end();
      return;
    }
    if (method === 'PATCH') {
      const patch = await readJson(req);
      if (typeof patch.contentType === 'string') obj.contentType = patch.contentType;
      if (patch.metadata && typeof patch.metadata === 'object') {
        const merged: Record<string, string> = { ...(obj.metadata ?? {}) };
        for (const [k, v] of Object.entries(patch.metadata as Record<string, unknown>)) {
          if (v === null) delete merged[k];
          else merged[k] = String(v);
        }
        obj.metadata = merged;
      }
      obj.metageneration += 1;
      obj.updated = new Date().toISOString();
      return sendJson(res, 200, objectResource(obj, base));
    }
    throw new HttpError(405, 'Method not allowed', 'invalid');
  };

  const server = http.createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const err = e instanceof HttpError ? e : new HttpError(500, e instanceof Error ? e.message : 'Internal error', 'backendError');
      // A body the handler did not read must not block the connection.
      if (!req.complete) req.resume();
      sendError(res, err);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    writesOf: (bucket, name) => writes.get(`${bucket}/${name}`) ?? 0,
    servedOf: (bucket, name) => ({ ...(servedCounts.get(`${bucket}/${name}`) ?? { bytes: 0, requests: 0 }) }),
    adoptFile(bucketName, name, file, facts) {
      const b = buckets.get(bucketName) ?? { name: bucketName, timeCreated: new Date().toISOString(), objects: new Map<string, StoredObject>() };
      buckets.set(bucketName, b);
      const now = new Date().toISOString();
      b.objects.set(name, { bucket: bucketName, name, generation: nextGeneration(), metageneration: 1, size: facts.size, md5Hash: facts.md5Hash ?? '', crc32c: facts.crc32c, contentType: 'application/zip', timeCreated: now, updated: now, file });
    },
    trustSigner(email, keyPem) {
      signers.set(email, createPublicKey(keyPem));
    },
    advanceClock(ms) {
      clockOffsetMs += ms;
    },
    faults: {
      corruptUploads(prefix) {
        corruptPrefixes.push(prefix);
      },
      misreportUploads(prefix, field) {
        misreports.push({ prefix, field });
      },
      clear() {
        corruptPrefixes.length = 0;
        misreports.length = 0;
      },
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      sessions.clear();
      buckets.clear();
      if (ownsDir) await fsp.rm(dataDir, { recursive: true, force: true });
    },
  };
}
