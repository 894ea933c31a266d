/**
 * The seams between the pure domain and the outside world. Adapters in ../adapters implement
 * these; the composition root wires them once; tests may hand in their own.
 */
import type { Readable } from 'node:stream';
import type { ExportAdmission } from './admission';
import type { ExportState } from './export-state';
import type { Job } from './job';
import type { Schedule } from './schedule';

// ---------- Data Portability API ----------

export type ArchiveState = 'STATE_UNSPECIFIED' | 'IN_PROGRESS' | 'COMPLETE' | 'FAILED' | 'CANCELLED';
export type AccessType = 'ACCESS_TYPE_UNSPECIFIED' | 'ACCESS_TYPE_ONE_TIME' | 'ACCESS_TYPE_TIME_BASED';

export interface InitiateRequest {
  resources: string[];
  startTime?: string;
  endTime?: string;
}

export interface PortabilityArchiveState {
  /** `archiveJobs/{id}/portabilityArchiveState` */
  name: string;
  state: ArchiveState;
  /** Signed URLs: credentials. Never log or store them. */
  urls: string[];
  startTime?: string;
  exportTime?: string;
}

export interface AccessTypeResult {
  oneTimeResources: string[];
  timeBasedResources: string[];
}

/** Every call takes the user's OAuth access token and a `quotaUser` (<= 40 chars, a hash of the user). */
export interface PortabilityApi {
  initiate(accessToken: string, request: InitiateRequest, quotaUser: string): Promise<{ archiveJobId: string; accessType: AccessType }>;
  getState(accessToken: string, archiveJobId: string, quotaUser: string): Promise<PortabilityArchiveState>;
  /** Returns the NEW archive job id. */
  retry(accessToken: string, archiveJobId: string, quotaUser: string): Promise<{ archiveJobId: string }>;
  cancel(accessToken: string, archiveJobId: string, quotaUser: string): Promise<void>;
  resetAuthorization(accessToken: string, quotaUser: string): Promise<void>;
  checkAccessType(accessToken: string, quotaUser: string): Promise<AccessTypeResult>;
}

/**
 * A non-2xx answer of the Data Portability API, parsed from Google's error body
 * `{error: {code, message, status, details: [{'@type': '...ErrorInfo', reason, metadata}]}}`.
 * `message` never contains a token or a signed URL.
 */
export class PortabilityApiError extends Error {
  constructor(
    readonly httpStatus: number,
    /** google.rpc status name, e.g. `FAILED_PRECONDITION`; '' when the body had none. */
    readonly status: string,
    message: string,
    /** `ErrorInfo.reason`, e.g. `ALREADY_EXISTS_ONE_TIME`. */
    readonly reason?: string,
    readonly metadata: Record<string, string> = {},
    /** Seconds from a `Retry-After` header, when sent. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'PortabilityApiError';
  }
}

// ---------- OAuth (Google's token endpoint) ----------

export interface ExchangedTokens {
  accessToken: string;
  refreshToken?: string;
  /** epoch ms */
  expiresAt: number;
  /** space-separated granted scopes */
  scope: string;
  /** epoch ms: when the refresh token stops working (Google sends `refresh_token_expires_in` for time-based access only). */
  refreshTokenExpiresAt?: number;
}

export interface OAuthTokenClient {
  /** `codeVerifier`: the PKCE verifier of the consent the code answers (RFC 7636). */
  exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<ExchangedTokens>;
  /** Throws ConsentRevokedError when the token endpoint answers invalid_grant. */
  refresh(refreshToken: string): Promise<{ accessToken: string; expiresAt: number }>;
}

/** The refresh token no longer works (revoked, expired, `invalid_grant`): the user must consent again. */
export class ConsentRevokedError extends Error {
  constructor(message = 'The stored Google authorization is no longer valid; the user must consent again') {
    super(message);
    this.name = 'ConsentRevokedError';
  }
}

/** The code could not be exchanged (bad, used or expired code, wrong redirect URI or PKCE verifier). */
export class AuthorizationCodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthorizationCodeError';
  }
}

// ---------- Caller identity (ID tokens of the frontend's users) ----------

export interface IdTokenVerifier {
  /** Returns the verified subject (`sub`); throws UnauthenticatedError otherwise. */
  verify(idToken: string): Promise<{ userId: string }>;
  /** Optional: fetch signing keys ahead of the first token. */
  warm?(): Promise<void>;
}

export class UnauthenticatedError extends Error {
  constructor(message = 'A valid ID token is required') {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

// ---------- Cloud Tasks ----------

export type TaskStep = 'initiate' | 'check' | 'copy' | 'copy-part';

export interface PipelineTask {
  step: TaskStep;
  jobId: string;
  /** The job's sequence number the task was made for; a task whose seq is stale is dropped. */
  seq: number;
  /** Delay before delivery, seconds (0 = now). */
  delaySeconds: number;
  /** Set by the sweeper when it enqueues a step again (a distinct task name per sweep window). */
  redelivery?: number;
  /** 'copy-part' only: which byte range (0-based) of the archive under way this task copies. */
  part?: number;
}

export interface TaskQueue {
  /** Idempotent: the task name is derived from (jobId, step, seq); a duplicate is ignored. */
  enqueue(task: PipelineTask): Promise<void>;
}

// ---------- Archive copy (signed URL -> bucket) ----------

export interface StoredArchive {
  bucket: string;
  name: string;
  size: number;
  /** base64, as Cloud Storage reports it */
  crc32c: string;
  md5Hash?: string;
}

/** The signed URL answered 400/403 (expired): fetch fresh URLs and try again. */
export class ArchiveUrlExpiredError extends Error {
  constructor(message = 'The signed archive URL has expired') {
    super(message);
    this.name = 'ArchiveUrlExpiredError';
  }
}

/** The URL is not allowed (scheme, host) or the bytes did not match: retrying the same URL will not help. */
export class ArchiveRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveRejectedError';
  }
}

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
export class ArchiveNeedsPartsError extends Error {
  constructor(readonly source: PartedSource) {
    super(`The archive is ${source.size} bytes: copy it in parts`);
    this.name = 'ArchiveNeedsPartsError';
  }
}

/** Some part objects are not (or no longer) there to compose: copy these parts (0-based) again. */
export class ArchivePartsMissingError extends Error {
  constructor(readonly missing: number[]) {
    super(`Archive parts missing: ${missing.map((i) => i + 1).join(', ')}`);
    this.name = 'ArchivePartsMissingError';
  }
}

/** The copy was stopped on purpose (deadline) or died part-way; its checkpoint can resume it. */
export class CopyInterruptedError extends Error {
  constructor(message = 'The archive copy was interrupted') {
    super(message);
    this.name = 'CopyInterruptedError';
  }
}

export interface ArchiveCopier {
  /**
   * Streams one signed URL into the bucket as `objectName` (never holding the archive in memory),
   * verifies size and checksums against the source's `Content-Length`/`x-goog-hash` and against
   * the stored object, and writes with `ifGenerationMatch: 0`. If the object already exists with
   * the source's checksum (a duplicate delivery), returns it without copying again.
   */
  copy(url: string, objectName: string, onProgress?: CopyProgress, resume?: CopyResumeOptions): Promise<StoredArchive>;
  /** Removes every object under a prefix (used when deleting an export). */
  deletePrefix(prefix: string): Promise<number>;
  // The ranged copy, one piece per call so that parts can run in separate invocations. Optional:
  // with a copier that lacks them, every archive is copied as one stream.
  /** The archive's size and checksums, from a one-byte ranged GET (a signed URL allows GET only). */
  probe?(url: string): Promise<ArchiveFacts>;
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

/** A readable archive source; exported for the copy engine's tests and benchmarks. */
export interface ArchiveSource {
  body: Readable;
  size?: number;
  crc32c?: string;
  md5?: string;
}

// ---------- Secrets at rest ----------

/** Ciphertext of one secret, as stored: envelope encryption with a per-secret data key. */
export interface EncryptedSecret {
  /** Which key wrapped the data key (e.g. `local-v1`, or a KMS key version name). */
  keyVersion: string;
  /** The data key, wrapped. base64 */
  wrappedKey: string;
  /** AES-256-GCM of the secret under the data key: iv | ciphertext | tag, base64. */
  ciphertext: string;
}

export interface SecretCipher {
  /** `context` (e.g. the user id) is bound as associated data: ciphertext moved to another user fails to decrypt. */
  encrypt(plaintext: string, context: string): Promise<EncryptedSecret>;
  decrypt(secret: EncryptedSecret, context: string): Promise<string>;
}

// ---------- Persistence (Firestore) ----------

export type GrantState = 'ACTIVE' | 'NEEDS_CONSENT';

/** A user's Google grant to this app. The refresh token is stored only encrypted. */
export interface Grant {
  userId: string;
  refreshToken: EncryptedSecret;
  /** Resource groups the user granted (from the token's scopes). */
  resources: string[];
  oneTimeResources: string[];
  timeBasedResources: string[];
  state: GrantState;
  /** epoch ms: when time-based access ends, when Google said (`refresh_token_expires_in`). */
  expiresAt?: number;
  /** What the consent asked for (more than `resources` after a partial consent), and when it was given (epoch ms). */
  requestedResources?: string[];
  consentedAt?: number;
  createdAt: number;
  updatedAt: number;
}

export interface ExportRecord {
  id: string;
  userId: string;
  state: ExportState;
  resources: string[];
  startTime?: string;
  endTime?: string;
  createdAt: number;
  updatedAt: number;
  /** sha256 of the request body that created it (for Idempotency-Key replays). */
  requestHash?: string;
  /** Set on the exports a schedule started: which schedule, which run. */
  scheduleId?: string;
  run?: number;
}

export interface JobUpdate {
  before: Job;
  after: Job;
}

export interface ExportStore {
  getGrant(userId: string): Promise<Grant | undefined>;
  putGrant(grant: Grant): Promise<void>;
  /** Compare-and-set on the grant's state; returns false when it was not `expected`. */
  setGrantState(userId: string, expected: GrantState, next: GrantState): Promise<boolean>;
  deleteGrant(userId: string): Promise<void>;

  /**
   * Creates the export and its jobs in one transaction. With an idempotency key, a second call
   * with the same (user, key) returns the first export instead (`created: false`), unlimited.
   * With `admission`, the same transaction admits it against the user's ledger
   * (domain/admission.ts: limits, one export per resource group) or throws its RequestError.
   */
  createExport(
    record: ExportRecord,
    jobs: Job[],
    idempotency?: { userId: string; key: string },
    admission?: ExportAdmission,
  ): Promise<{ record: ExportRecord; jobs: Job[]; created: boolean }>;
  getExport(exportId: string): Promise<ExportRecord | undefined>;
  listExports(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: ExportRecord[]; nextPageToken?: string }>;
  listJobs(exportId: string): Promise<Job[]>;
  getJob(jobId: string): Promise<Job | undefined>;
  /** The jobs whose archiveJobIds hold this Google archive job (at most a few). */
  jobsFollowing(archiveJobId: string): Promise<Job[]>;
  /**
   * A compare-and-set on one job, in a transaction: `decide` sees the current job and returns the
   * next one, or undefined to change nothing (a stale or duplicate step). When the job reaches a
   * terminal state, its export's state is derived again in the same transaction.
   */
  updateJob(jobId: string, decide: (job: Job) => Job | undefined): Promise<JobUpdate | undefined>;
  /**
   * Progress only (not a state change): the bytes copied so far, if the job is still COPYING at
   * `seq`. False when it is not: the copy must stop (the job was revoked, or moved on).
   */
  recordProgress(jobId: string, seq: number, bytes: number): Promise<boolean>;
  /** The user's jobs that have not ended (from the admission ledger: every live job holds its group). */
  liveJobsOfUser(userId: string): Promise<Job[]>;
  /** Non-terminal jobs whose next step was due at or before `dueBefore`, oldest first (an indexed query). */
  listOverdueJobs(dueBefore: number, limit: number): Promise<Job[]>;
  /** Moves a job's due time if it is still at `seq`; false when it moved on. */
  postponeJob(jobId: string, seq: number, nextCheckAt: number): Promise<boolean>;
}

// ---------- Schedules (time-based access) ----------

/** One run of a schedule, as a Cloud Task: named after (scheduleId, run), so a duplicate is refused. */
export interface ScheduleRunTask {
  scheduleId: string;
  /** The run number the task claims (the schedule's runCount + 1 when it was enqueued). */
  run: number;
  /** Set when the scheduler enqueues the same run again after its lease ran out (a distinct task name). */
  redelivery?: number;
}

export interface ScheduleRunQueue {
  /** Idempotent per (scheduleId, run, redelivery). */
  enqueueScheduleRun(task: ScheduleRunTask): Promise<void>;
}

export interface ScheduleStore {
  /**
   * Creates the schedule in the transaction that admits it against the user's ledger
   * (domain/admission.ts: one active schedule per group, at most `maxActive`), or throws its RequestError.
   */
  createSchedule(schedule: Schedule, maxActive: number): Promise<void>;
  getSchedule(scheduleId: string): Promise<Schedule | undefined>;
  /** A user's schedules, newest first (at most `limit`). */
  listSchedules(userId: string, limit: number): Promise<Schedule[]>;
  deleteSchedule(scheduleId: string): Promise<void>;
  /** A compare-and-set in a transaction: `decide` sees the current schedule; undefined changes nothing. */
  updateSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined): Promise<Schedule | undefined>;
  /** ACTIVE schedules with nextRunAt <= dueBefore, earliest first (the composite index state + nextRunAt). */
  listDueSchedules(dueBefore: number, limit: number): Promise<Schedule[]>;
  /** The exports a schedule started, newest first (the composite index scheduleId + createdAt). */
  listRuns(scheduleId: string, limit: number): Promise<ExportRecord[]>;
}
