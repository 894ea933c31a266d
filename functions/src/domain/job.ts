/**
 * The archive job state machine: pure decisions, no I/O. One job = one resource group of one
 * export. `transition(job, event, now, policy)` returns the next job and the effects the caller
 * must carry out after the state change has committed (never inside the transaction).
 */
import type { EncryptedSecret, StoredArchive } from './ports';
import { DEFAULT_COPY_LEASE_SECONDS, nextCheckDelaySeconds, type PollingPolicy } from './polling-policy';

export const JOB_STATES = ['INITIATING', 'WAITING', 'COPYING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type JobState = (typeof JOB_STATES)[number];

const TERMINAL: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
export const isTerminal = (s: JobState): boolean => TERMINAL.has(s);

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

export interface Job {
  id: string;
  exportId: string;
  userId: string;
  resource: string;
  state: JobState;
  /** Bumped on every change; a task carries the seq it was made for, and a stale one is dropped. */
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
  error?: JobError;
  /** A scheduled run's job: its schedule, and whether it asked for what is new (`incremental`) or all (`full`: no time filter). */
  scheduleId?: string;
  window?: 'incremental' | 'full';
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

export type JobEvent =
  | { type: 'initiated'; archiveJobId: string }
  | { type: 'still-running' }
  | { type: 'archive-complete'; exportTime?: string }
  | { type: 'archive-retried'; archiveJobId: string }
  | { type: 'archive-cancelled' }
  | { type: 'copied'; archives: StoredArchive[] }
  /** The user cancels. `cancelledAtGoogle`: the archive job the caller already cancelled at Google. */
  | { type: 'cancelled'; cancelledAtGoogle?: string }
  | { type: 'failed'; error: JobError };

export type JobEffect = { type: 'enqueue'; step: 'initiate' | 'check' | 'copy'; delaySeconds: number };

export interface Transition {
  job: Job;
  effects: JobEffect[];
}

/** The event does not apply to the job's current state (a stale or duplicate delivery). */
export class InvalidTransitionError extends Error {
  constructor(state: JobState, event: JobEvent['type']) {
    super(`Event ${event} does not apply to a job in state ${state}`);
    this.name = 'InvalidTransitionError';
  }
}

const ALLOWED: Record<JobEvent['type'], readonly JobState[]> = {
  initiated: ['INITIATING'],
  'still-running': ['WAITING'],
  'archive-complete': ['WAITING'],
  'archive-retried': ['WAITING'],
  'archive-cancelled': ['WAITING'],
  copied: ['COPYING'],
  cancelled: ['INITIATING', 'WAITING'],
  failed: ['INITIATING', 'WAITING', 'COPYING'],
};

export function canApply(job: Job, event: JobEvent['type']): boolean {
  return ALLOWED[event].includes(job.state);
}

export function newJob(input: { id: string; exportId: string; userId: string; resource: string; startTime?: string; endTime?: string }, now: number): Job {
  return {
    ...input,
    state: 'INITIATING',
    seq: 0,
    archiveJobIds: [],
    retries: 0,
    checks: 0,
    createdAt: now,
    updatedAt: now,
    nextCheckAt: now,
    archives: [],
    bytesCopied: 0,
  };
}

export function transition(job: Job, event: JobEvent, now: number, policy: PollingPolicy): Transition {
  if (!canApply(job, event.type)) throw new InvalidTransitionError(job.state, event.type);
  const { lease: _lease, ...rest } = job;
  const base: Job = { ...rest, seq: job.seq + 1, updatedAt: now };
  const check = (j: Job): Transition => {
    const delay = nextCheckDelaySeconds(policy, { checks: j.checks, waitedSeconds: (now - (j.waitingSince ?? now)) / 1000 });
    return { job: { ...j, nextCheckAt: now + delay * 1000 }, effects: [{ type: 'enqueue', step: 'check', delaySeconds: delay }] };
  };
  // A cancel that arrived during the call: check at once, and the check cancels the new job at Google.
  const checkOrCancel = (j: Job): Transition =>
    j.cancelRequested === undefined ? check(j) : { job: { ...j, nextCheckAt: now }, effects: [{ type: 'enqueue', step: 'check', delaySeconds: 0 }] };
  switch (event.type) {
    case 'initiated':
      return checkOrCancel({
        ...base,
        state: 'WAITING',
        archiveJobId: event.archiveJobId,
        archiveJobIds: [...job.archiveJobIds, event.archiveJobId],
        waitingSince: now,
        checks: 0,
      });
    case 'still-running':
      return check({ ...base, checks: job.checks + 1 });
    case 'archive-retried':
      return checkOrCancel({
        ...base,
        archiveJobId: event.archiveJobId,
        archiveJobIds: [...job.archiveJobIds, event.archiveJobId],
        retries: job.retries + 1,
        checks: 0,
        waitingSince: now,
      });
    case 'archive-complete': {
      return {
        job: { ...base, state: 'COPYING', nextCheckAt: now + (policy.copyLeaseSeconds ?? DEFAULT_COPY_LEASE_SECONDS) * 1000, checks: job.checks + 1, readyAt: now, bytesCopied: 0, ...(event.exportTime ? { exportTime: event.exportTime } : {}) },
        effects: [{ type: 'enqueue', step: 'copy', delaySeconds: 0 }],
      };
    }
    case 'cancelled':
      return cancelJob(job, event, now);
    case 'archive-cancelled':
      return { job: ended(job, 'CANCELLED', now), effects: [] };
    case 'copied':
      return {
        job: ended(job, 'SUCCEEDED', now, { archives: event.archives, bytesCopied: event.archives.reduce((n, a) => n + a.size, 0) }),
        effects: [],
      };
    case 'failed':
      return { job: failJob(job, event.error, now), effects: [] };
  }
}

export const CONSENT_REVOKED: JobError = {
  code: 'CONSENT_REVOKED',
  message: 'The Google authorization was revoked or has expired: the user must consent again',
};

/** The job ends FAILED with `error` (from any state that has not ended). */
export function failJob(job: Job, error: JobError, now: number): Job {
  if (!canApply(job, 'failed')) throw new InvalidTransitionError(job.state, 'failed');
  return ended(job, 'FAILED', now, { error });
}

/** A Google call that starts an archive job (initiate, retry) is in flight: the job's lease is live. */
export const callInFlight = (job: Job, now: number): boolean => job.lease !== undefined && job.lease.until > now;

/** The job ends in `state`: no lease, pending cancel, due time or copy state stays on it. */
function ended(job: Job, state: JobState, now: number, fields: Partial<Job> = {}): Job {
  const { lease: _l, cancelRequested: _c, nextCheckAt: _n, copy: _copy, ...rest } = job;
  return { ...rest, ...fields, state, seq: job.seq + 1, updatedAt: now, finishedAt: now };
}

/**
 * A user's cancel. Ends the job CANCELLED when nothing can still start a Google job for it: no
 * call in flight (no live lease) and, when WAITING, the archive job followed now is the one the
 * caller cancelled at Google. Otherwise it is recorded (`cancelRequested`, same seq, so the step
 * in flight still records its job id) and the step that sees it cancels at Google.
 */
export function cancelJob(job: Job, event: { cancelledAtGoogle?: string }, now: number): Transition {
  if (!canApply(job, 'cancelled')) throw new InvalidTransitionError(job.state, 'cancelled');
  const inFlight = callInFlight(job, now);
  const googleJobLeft = job.state === 'WAITING' && job.archiveJobId !== event.cancelledAtGoogle;
  if (!inFlight && !googleJobLeft) return { job: ended(job, 'CANCELLED', now), effects: [] };
  const flagged: Job = { ...job, cancelRequested: job.cancelRequested ?? now, updatedAt: now };
  // No call in flight: a check now finds the flag and cancels the job Google is running.
  if (!inFlight) return { job: { ...flagged, seq: job.seq + 1, nextCheckAt: now }, effects: [{ type: 'enqueue', step: 'check', delaySeconds: 0 }] };
  return { job: flagged, effects: [] };
}

/** Attempts shown to users: how many Google archive jobs this job has started (1 + retries). */
export const attemptsOf = (job: Job): number => job.archiveJobIds.length;
