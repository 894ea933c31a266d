/**
 * Every kind of retry the pipeline makes, named, with its limits, in one place (the ones a
 * deployment tunes are in config.ts and say so here). From the innermost out:
 *
 * 1. A Google call's blips (429, 503, a dropped connection): `GOOGLE_CALL_RETRIES`, in place,
 *    with full jitter (adapters/retrying-portability-api.ts).
 * 2. A copy's blips (an expired signed URL, an interrupted stream): `COPY_RETRIES`, in place,
 *    resuming the upload session (pipeline/copy-step.ts); the query of how much of that session
 *    Cloud Storage kept asks again on a 5xx or 429: `UPLOAD_STATUS_RETRY_DELAYS_MS`
 *    (adapters/resumable-upload.ts).
 * 3. Firestore contention on one document: `FIRESTORE_CONTENTION_ATTEMPTS` (adapters/firestore-client.ts).
 * 4. A step that still fails: Cloud Tasks delivers its task again, up to TASK_RETRY_BUDGET
 *    deliveries (config.ts; the queues' backoff is in infra/tasks.tf), then the job fails.
 * 5. A Google archive job that FAILED: `archiveJobs.retry`, up to MAX_ARCHIVE_RETRIES (config.ts),
 *    never more than Google allows (`GOOGLE_ARCHIVE_RETRIES_ALLOWED`).
 */
import { DAY_MS } from './durations';

export interface CallRetries {
  attempts: number;
  /** The exponential bound of the first wait; each next one doubles it. */
  baseMs: number;
  /** A longer wait (a Retry-After) is not taken in place: the error goes up to Cloud Tasks. */
  maxWaitMs: number;
}

export const GOOGLE_CALL_RETRIES: CallRetries = { attempts: 3, baseMs: 250, maxWaitMs: 4000 };

export const COPY_RETRIES = {
  /** Fresh URLs fetched (getState) for one archive when Google's signed URL has expired. */
  urlRefreshes: 3,
  /** Resumes after a dropped connection or a 5xx, within one invocation. */
  interruptions: 2,
  /** Wait before the n-th resume: n times this. */
  backoffMs: 200,
} as const;

/** Pauses before asking again about an upload session that Cloud Storage answered with a 5xx or 429. */
export const UPLOAD_STATUS_RETRY_DELAYS_MS: readonly number[] = [100, 300, 1000, 3000];

export const FIRESTORE_CONTENTION_ATTEMPTS = 6;

/** Google allows three retries of a FAILED archive job. */
export const GOOGLE_ARCHIVE_RETRIES_ALLOWED = 3;

/**
 * How long a step holds a job's lease around a Google call that is not idempotent (initiate,
 * retry): longer than one call with its in-place retries takes, so a duplicate delivery backs off.
 */
export const CALL_LEASE_MS = 60_000;

/** Google keeps a finished archive 14 days: a copy that has not finished by then fails DATA_EXPIRED. */
export const DATA_RETENTION_MS = 14 * DAY_MS;
