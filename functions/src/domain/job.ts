/**
 * The archive job state machine: pure decisions, no I/O, and the only writer of a job.
 * `transition(job, event, now, policy)` returns the next job and the effects the caller must carry
 * out after the change has committed (never inside the transaction). Step events (a Google answer,
 * a copy finished, a cancel) move `seq` on, so a task made for the seq before is stale from then
 * on; bookkeeping events (a lease, copy progress, a parts plan, the sweeper's redelivery) keep it,
 * so the task in flight stays valid.
 */
import { partRanges } from './archive-parts';
import { InvalidTransitionError } from './errors';
import type { CopyPartsPlan, CopyState, Job, JobError, JobState, JobWarning, StoredArchive } from './model';
import { mergeWarnings } from './archive-manifest';
import { DEFAULT_COPY_LEASE_SECONDS, nextCheckDelaySeconds, type PollingPolicy } from './polling-policy';

const TERMINAL: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
export const isTerminal = (s: JobState): boolean => TERMINAL.has(s);

export type JobEvent =
  | { type: 'initiated'; archiveJobId: string }
  | { type: 'still-running' }
  | { type: 'archive-complete'; exportTime?: string }
  | { type: 'archive-retried'; archiveJobId: string }
  | { type: 'archive-cancelled' }
  | { type: 'copied'; archives: StoredArchive[] }
  /** The user cancels. `cancelledAtGoogle`: the archive job the caller already cancelled at Google. */
  | { type: 'cancelled'; cancelledAtGoogle?: string }
  | { type: 'failed'; error: JobError }
  /** A step is about to make a Google call that is not idempotent (initiate, retry). */
  | { type: 'lease-taken'; until: number }
  /** That call failed without starting anything: the next delivery may call again at once. */
  | { type: 'lease-released' }
  /** Copy progress worth resuming from: archives done, the upload session of the one under way. */
  | { type: 'copy-saved'; copy: CopyState }
  /** Bytes copied so far, for people watching. */
  | { type: 'copy-progress'; bytesCopied: number }
  /** What all the job's archives weigh together, asked of their URLs before the copy's first byte. */
  | { type: 'copy-sized'; bytesTotal: number }
  /** Archive `plan.archive` is copied in parts: one 'copy-part' task per part not done yet. */
  | { type: 'parts-planned'; done: StoredArchive[]; plan: CopyPartsPlan }
  /** One part of the plan is in the bucket; the last one hands over to a copy task that composes. */
  | { type: 'part-copied'; archive: number; count: number; part: number }
  /** The copy's time slice is over: a fresh task resumes from the saved session. */
  | { type: 'slice-ended' }
  /** Archive `archive` (in the bucket) has its manifest stored; what it found about completeness joins the job's warnings. */
  | { type: 'archive-indexed'; archive: number; entries: number; warnings: JobWarning[] }
  /** The sweeper found the step overdue and enqueued it again (`redelivery` names the task anew). */
  | { type: 'redelivered'; nextCheckAt: number; redelivery: number };

export type JobEffect =
  | { type: 'enqueue'; step: 'initiate' | 'check' | 'copy'; delaySeconds: number; redelivery?: number }
  | { type: 'enqueue'; step: 'copy-part'; part: number; delaySeconds: 0 };

export interface Transition {
  job: Job;
  effects: JobEffect[];
}

const LIVE: readonly JobState[] = ['INITIATING', 'WAITING', 'COPYING'];
const ALLOWED: Record<JobEvent['type'], readonly JobState[]> = {
  initiated: ['INITIATING'],
  'still-running': ['WAITING'],
  'archive-complete': ['WAITING'],
  'archive-retried': ['WAITING'],
  'archive-cancelled': ['WAITING'],
  copied: ['COPYING'],
  cancelled: ['INITIATING', 'WAITING'],
  failed: LIVE,
  'lease-taken': ['INITIATING', 'WAITING'],
  'lease-released': ['INITIATING', 'WAITING'],
  'copy-saved': ['COPYING'],
  'copy-progress': ['COPYING'],
  'copy-sized': ['COPYING'],
  'parts-planned': ['COPYING'],
  'part-copied': ['COPYING'],
  'slice-ended': ['COPYING'],
  'archive-indexed': ['COPYING'],
  redelivered: LIVE,
};

/** Whether the event applies to a job in this state (a stale or duplicate delivery's does not). */
export function canApply(job: Job, event: JobEvent['type']): boolean {
  return ALLOWED[event].includes(job.state);
}

/** `canApply`, and what the event itself requires of the job at `now`. */
export function applies(job: Job, event: JobEvent, now: number): boolean {
  if (!canApply(job, event.type)) return false;
  switch (event.type) {
    case 'lease-taken':
      return !callInFlight(job, now);
    case 'lease-released':
      return job.lease !== undefined;
    case 'part-copied': {
      const plan = job.copy?.parts;
      return plan !== undefined && plan.archive === event.archive && plan.count === event.count && !plan.done.includes(event.part);
    }
    case 'redelivered':
      return job.nextCheckAt !== undefined;
    case 'archive-indexed':
      return !(job.manifests ?? []).some((m) => m.archive === event.archive);
    default:
      return true;
  }
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
  if (!applies(job, event, now)) throw new InvalidTransitionError(job.state, event.type);
  const { lease: _lease, ...rest } = job;
  const base: Job = { ...rest, seq: job.seq + 1, updatedAt: now };
  const copyLeaseEnds = now + (policy.copyLeaseSeconds ?? DEFAULT_COPY_LEASE_SECONDS) * 1000;
  const check = (j: Job): Transition => {
    const delay = nextCheckDelaySeconds(policy, { checks: j.checks, waitedSeconds: (now - (j.waitingSince ?? now)) / 1000 });
    return { job: { ...j, nextCheckAt: now + delay * 1000 }, effects: [{ type: 'enqueue', step: 'check', delaySeconds: delay }] };
  };
  // A cancel that arrived during the call: check at once, and the check cancels the new job at Google.
  const checkOrCancel = (j: Job): Transition =>
    j.cancelRequested === undefined ? check(j) : { job: { ...j, nextCheckAt: now }, effects: [{ type: 'enqueue', step: 'check', delaySeconds: 0 }] };
  const same = (j: Job): Transition => ({ job: j, effects: [] });
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
    case 'archive-complete':
      return {
        job: { ...withoutManifests(base), state: 'COPYING', nextCheckAt: copyLeaseEnds, checks: job.checks + 1, readyAt: now, bytesCopied: 0, ...(event.exportTime ? { exportTime: event.exportTime } : {}) },
        effects: [{ type: 'enqueue', step: 'copy', delaySeconds: 0 }],
      };
    case 'cancelled':
      return cancelJob(job, event, now);
    case 'archive-cancelled':
      return same(ended(job, 'CANCELLED', now));
    case 'copied':
      return same(ended(job, 'SUCCEEDED', now, { archives: event.archives, bytesCopied: event.archives.reduce((n, a) => n + a.size, 0) }));
    case 'failed':
      return same(ended(job, 'FAILED', now, { error: event.error }));
    case 'lease-taken':
      return same({ ...job, lease: { until: event.until } });
    case 'lease-released':
      return same(rest);
    case 'copy-saved':
      return same({ ...job, copy: event.copy, updatedAt: now });
    case 'copy-progress':
      return same({ ...job, bytesCopied: event.bytesCopied });
    case 'copy-sized':
      return same({ ...job, bytesTotal: event.bytesTotal });
    case 'parts-planned':
      return {
        job: { ...job, copy: { done: event.done, parts: event.plan }, updatedAt: now, nextCheckAt: copyLeaseEnds },
        effects: missingParts(event.plan).map((part) => ({ type: 'enqueue', step: 'copy-part', part, delaySeconds: 0 })),
      };
    case 'part-copied':
      return partCopied(job, event.part, now, copyLeaseEnds);
    case 'archive-indexed': {
      const manifests = [...(job.manifests ?? []), { archive: event.archive, entries: event.entries }].sort((a, b) => a.archive - b.archive);
      return same({ ...job, manifests, warnings: mergeWarnings(job.warnings ?? [], event.warnings), updatedAt: now });
    }
    case 'slice-ended':
      return { job: { ...job, seq: job.seq + 1, updatedAt: now, nextCheckAt: copyLeaseEnds }, effects: [{ type: 'enqueue', step: 'copy', delaySeconds: 0 }] };
    case 'redelivered':
      return {
        job: { ...job, nextCheckAt: event.nextCheckAt },
        effects: [{ type: 'enqueue', step: STEP_OF[job.state], delaySeconds: 0, redelivery: event.redelivery }],
      };
  }
}

/** A copy starts afresh: no manifest or warning of an earlier copy stays. */
function withoutManifests(job: Job): Job {
  const { manifests: _m, warnings: _w, ...rest } = job;
  return rest;
}

/** The task that carries a live job's next step. */
export const STEP_OF = { INITIATING: 'initiate', WAITING: 'check', COPYING: 'copy' } as Record<JobState, 'initiate' | 'check' | 'copy'>;

/** Parts (0-based) of a plan not copied yet. */
export function missingParts(plan: CopyPartsPlan): number[] {
  return Array.from({ length: plan.count }, (_, i) => i).filter((i) => !plan.done.includes(i));
}

/** The part joins the plan's `done`; the one that completes the set moves seq on and enqueues the compose. */
function partCopied(job: Job, part: number, now: number, copyLeaseEnds: number): Transition {
  const plan = job.copy?.parts as CopyPartsPlan;
  const archives = job.copy?.done ?? [];
  const done = [...plan.done, part].sort((a, b) => a - b);
  const lengths = partRanges(plan.size, plan.count).map(([s, e]) => e - s + 1);
  const bytesCopied = archives.reduce((n, a) => n + a.size, 0) + done.reduce((n, i) => n + (lengths[i] ?? 0), 0);
  const next: Job = { ...job, copy: { done: archives, parts: { ...plan, done } }, bytesCopied, updatedAt: now, nextCheckAt: copyLeaseEnds };
  if (done.length < plan.count) return { job: next, effects: [] };
  return { job: { ...next, seq: job.seq + 1 }, effects: [{ type: 'enqueue', step: 'copy', delaySeconds: 0 }] };
}

export const CONSENT_REVOKED: JobError = {
  code: 'CONSENT_REVOKED',
  message: 'The Google authorization was revoked or has expired: the user must consent again',
};

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
function cancelJob(job: Job, event: { cancelledAtGoogle?: string }, now: number): Transition {
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
