/**
 * The data model: what an export, its jobs, a user's grant, a stored archive and a schedule are, as they are
 * kept in Firestore and shown by the API. Types only (and the lists of states): the decisions about
 * them live beside, in job.ts, export-state.ts, schedule.ts and admission.ts.
 */

export const JOB_STATES = ['INITIATING', 'WAITING', 'COPYING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const EXPORT_STATES = ['RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED', 'CANCELLED'] as const;
export type ExportState = (typeof EXPORT_STATES)[number];

export type JobErrorCode =
  | 'ARCHIVE_FAILED'
  | 'ONE_TIME_CONSENT_USED'
  | 'TIME_BASED_COOLDOWN'
  | 'RESOURCE_NOT_AUTHORIZED'
  | 'CONSENT_REVOKED'
  | 'INVALID_REQUEST'
  | 'COPY_FAILED'
  | 'DATA_EXPIRED'
  | 'RETRY_BUDGET_EXHAUSTED'
  | 'RESOURCE_GROUP_BUSY';

export interface JobError {
  code: JobErrorCode;
  message: string;
  /** TIME_BASED_COOLDOWN: when Google allows the next export (`metadata.timestamp_after_24hrs`), when it said. */
  retryAt?: string;
}

/** One resource group of one export: its Google archive job(s) and the copy of what they produced. */
export interface Job {
  id: string;
  exportId: string;
  userId: string;
  resource: string;
  state: JobState;
  /** Bumped on every change of step; a task carries the seq it was made for, and a stale one is dropped. */
  seq: number;
  /** The Google archive job being followed now (changes on retry). */
  archiveJobId?: string;
  /** Every Google archive job of this job, oldest first. */
  archiveJobIds: string[];
  retries: number;
  checks: number;
  startTime?: string;
  endTime?: string;
  exportTime?: string;
  /** epoch ms */
  createdAt: number;
  updatedAt: number;
  /** When Google's archive job was started (the first initiate), epoch ms. */
  waitingSince?: number;
  /** When Google reported COMPLETE, epoch ms: the 14-day data clock starts here. */
  readyAt?: number;
  /**
   * When the job's next step is due (epoch ms): the scheduled check, or the end of a copy's lease.
   * Only non-terminal jobs have one; the sweeper re-enqueues jobs that are overdue.
   */
  nextCheckAt?: number;
  finishedAt?: number;
  archives: StoredArchive[];
  /**
   * Held while a step makes a Google call that is not idempotent (initiate, retry): a duplicate
   * delivery of the same task finds the lease and backs off instead of calling Google again.
   */
  lease?: { until: number };
  /**
   * The user cancelled while a Google call that starts an archive job was in flight (initiate,
   * retry), epoch ms: the step that records the new job id cancels it at Google, then ends CANCELLED.
   */
  cancelRequested?: number;
  /** While COPYING: what is already in the bucket, and the resumable session of the archive under way. */
  copy?: CopyState;
  bytesCopied: number;
  /** While COPYING: the size of all the job's archives together, when their URLs declared it (for "45 % of 2.6 GB"). */
  bytesTotal?: number;
  error?: JobError;
  /** What the archives' manifests found (Google marked a service incomplete, an archive is not a zip): the export may not be whole. */
  warnings?: JobWarning[];
  /** The archives (0-based) whose manifest is stored, with their entry counts: `manifests/{jobId}_{n}`. */
  manifests?: ManifestCount[];
  /** A scheduled run's job: its schedule, and whether it asked for what is new (`incremental`) or all (`full`: no time filter). */
  scheduleId?: string;
  window?: 'incremental' | 'full';
}

export type JobWarningCode = 'SERVICE_INCOMPLETE' | 'ARCHIVE_NOT_ZIP' | 'ARCHIVE_DAMAGED' | 'ARCHIVE_BROWSER_UNREADABLE';

/** Something a job's archives say about their completeness; the job still SUCCEEDED (its bytes are copied and verified). */
export interface JobWarning {
  code: JobWarningCode;
  /** Which archive (0-based, URL order). */
  archive: number;
  message: string;
  /** SERVICE_INCOMPLETE: the service as Google's index names it. */
  service?: string;
}

export interface ManifestCount {
  archive: number;
  entries: number;
}

export interface CopyState {
  /** Archives already copied and verified, in URL order. */
  done: StoredArchive[];
  /** The upload session of archive `archive` (0-based), encrypted: a session URI can write the object. */
  session?: { archive: number; checkpoint: EncryptedSecret };
  /** Archive `archive` is being copied as byte ranges, one 'copy-part' task each. */
  parts?: CopyPartsPlan;
}

/** A large archive copied in parts: what its composite must match, and the parts already in the bucket. */
export interface CopyPartsPlan {
  /** Which archive (0-based, URL order). */
  archive: number;
  /** How many parts (`partRanges(size, count)`). */
  count: number;
  size: number;
  crc32c: string;
  md5?: string;
  /** Parts (0-based) copied and verified, ascending. */
  done: number[];
}

/** An archive copied into the app's bucket and verified. */
export interface StoredArchive {
  bucket: string;
  name: string;
  size: number;
  /** base64, as Cloud Storage reports it */
  crc32c: string;
  md5Hash?: string;
}

/** Ciphertext of one secret, as stored: envelope encryption with a per-secret data key. */
export interface EncryptedSecret {
  /** Which key wrapped the data key (e.g. `local-v1`, or a KMS key version name). */
  keyVersion: string;
  /** The data key, wrapped. base64 */
  wrappedKey: string;
  /** AES-256-GCM of the secret under the data key: iv | ciphertext | tag, base64. */
  ciphertext: string;
}

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
  /**
   * epoch ms: when the person is to be told that time-based access ends soon (GRANT_EXPIRY_WARNING_DAYS
   * before `expiresAt`). Only a grant not warned yet carries it, so the sweeper's indexed query reads
   * only those; the warning removes it and sets `expiryWarnedAt`.
   */
  warnAt?: number;
  expiryWarnedAt?: number;
  /** What the consent asked for (more than `resources` after a partial consent), and when it was given (epoch ms). */
  requestedResources?: string[];
  consentedAt?: number;
  createdAt: number;
  updatedAt: number;
}

/** One request to export some resource groups: its state follows from its jobs' (export-state.ts). */
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

// ---------- Schedules (time-based access): decisions in schedule.ts ----------

export type ScheduleState = 'ACTIVE' | 'NEEDS_CONSENT' | 'ENDED';
/** Why a schedule stopped: the frontend shows NEEDS_CONSENT ones as "needs new consent". */
export type ScheduleEndReason = 'GRANT_EXPIRED' | 'CONSENT_REVOKED' | 'NO_AUTHORIZATION' | 'NOT_TIME_BASED';

/** `incremental`: each run asks for what is new since the cursor; `full`: the group has no time filter, so every run exports it whole. */
export type ExportWindow = 'incremental' | 'full';

export interface ScheduleGroup {
  resource: string;
  window: ExportWindow;
  /** RFC 3339: the `exportTime` of the last successful job; the next run's `startTime`. */
  cursor?: string;
  /** epoch ms: when this group is next due. */
  dueAt: number;
  /** The group's most recent job, and whether its outcome was folded in already. */
  lastJobId?: string;
  lastJobSettled?: boolean;
}

export interface RunJob {
  resource: string;
  jobId: string;
  window: ExportWindow;
  /** Omitted on a first run without a chosen start, and always for `full` groups. */
  startTime?: string;
}

export interface ScheduleRun {
  /** 1, 2, 3, ... */
  run: number;
  exportId: string;
  /** epoch ms */
  startedAt: number;
  jobs: RunJob[];
}

export interface Schedule {
  id: string;
  userId: string;
  state: ScheduleState;
  everyHours: number;
  /** The first run's `startTime` (chosen by the user); later runs start at each group's cursor. */
  startTime?: string;
  groups: ScheduleGroup[];
  /** Runs started so far; a run task carries the number it claims (compare-and-set). */
  runCount: number;
  /** The latest run: written in the same transaction that claims it, so a retried task re-creates exactly this export. */
  lastRun?: ScheduleRun;
  /** epoch ms: when the scheduler next looks at it (only ACTIVE schedules have one; indexed). */
  nextRunAt?: number;
  /** epoch ms: the grant's end (from `refresh_token_expires_in`), when Google said. */
  endsAt?: number;
  endReason?: ScheduleEndReason;
  endMessage?: string;
  createdAt: number;
  updatedAt: number;
}
