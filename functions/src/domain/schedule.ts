/**
 * Scheduled incremental exports under time-based access: pure decisions, no I/O. A schedule keeps,
 * per resource group, a cursor (the `exportTime` of the group's last successful job: the next
 * window's `startTime`) and when the group is next due. `planRun` decides what one run exports;
 * `settleJob` folds a finished job back into the schedule (cursor, cooldown, lost consent).
 */
import { DAY_MS, HOUR_MS } from './durations';
import { isTerminal } from './job';
import type { ExportWindow, Job, Schedule, ScheduleEndReason, ScheduleGroup, ScheduleRun, ScheduleState } from './model';
import { supportsTimeFilter } from './resource-groups';

// DAY_MS is also Google's rule for time-based access: one export per group every 24 hours.
export { DAY_MS, HOUR_MS } from './durations';
export const MIN_EVERY_HOURS = 24;
/** A group whose previous job is still running is looked at again this much later. */
export const BUSY_RECHECK_MS = HOUR_MS;

export interface NewScheduleInput {
  id: string;
  userId: string;
  resources: string[];
  everyHours?: number;
  startTime?: string;
  endsAt?: number;
}

export function newSchedule(input: NewScheduleInput, now: number): Schedule {
  return {
    id: input.id,
    userId: input.userId,
    state: 'ACTIVE',
    everyHours: input.everyHours ?? MIN_EVERY_HOURS,
    ...(input.startTime ? { startTime: input.startTime } : {}),
    groups: [...input.resources].sort().map((resource) => ({ resource, window: windowOf(resource), dueAt: now })),
    runCount: 0,
    nextRunAt: now,
    ...(input.endsAt !== undefined ? { endsAt: input.endsAt } : {}),
    createdAt: now,
    updatedAt: now,
  };
}

export const windowOf = (resource: string): ExportWindow => (supportsTimeFilter(resource) ? 'incremental' : 'full');

/** What a run task should do, decided on the schedule as it is inside the claiming transaction. */
export type RunPlan =
  /** The run's groups, each with its window; `schedule` is the claimed schedule to write. */
  | { kind: 'run'; schedule: Schedule; run: ScheduleRun }
  /** Nothing is due yet (or every due group is still busy): write `schedule` (a later nextRunAt). */
  | { kind: 'wait'; schedule: Schedule }
  /** The grant is gone or expired: write `schedule` (ended, no nextRunAt). */
  | { kind: 'end'; schedule: Schedule };

export interface GrantFacts {
  exists: boolean;
  active: boolean;
  timeBasedResources: string[];
}

export function endSchedule(s: Schedule, state: Exclude<ScheduleState, 'ACTIVE'>, reason: ScheduleEndReason, message: string, now: number): Schedule {
  const { nextRunAt: _n, ...rest } = s;
  return { ...rest, state, endReason: reason, endMessage: message, updatedAt: now };
}

const nextRunOf = (groups: ScheduleGroup[]): number => Math.min(...groups.map((g) => g.dueAt));

/**
 * The run that starts at `now`. `busy` names the groups whose previous job has not finished (they
 * are skipped: a second job for the same group would only be answered ALREADY_EXISTS).
 */
export function planRun(s: Schedule, grant: GrantFacts, busy: ReadonlySet<string>, now: number, newId: () => string): RunPlan {
  if (!grant.exists) return { kind: 'end', schedule: endSchedule(s, 'NEEDS_CONSENT', 'NO_AUTHORIZATION', 'The Google authorization was reset: the user must consent again and create a new schedule', now) };
  if (!grant.active) return { kind: 'end', schedule: endSchedule(s, 'NEEDS_CONSENT', 'CONSENT_REVOKED', 'The Google authorization was revoked or has expired: the user must consent again', now) };
  if (s.endsAt !== undefined && now >= s.endsAt) {
    return { kind: 'end', schedule: endSchedule(s, 'NEEDS_CONSENT', 'GRANT_EXPIRED', `The time-based access ended at ${new Date(s.endsAt).toISOString()}: the user must consent again`, now) };
  }
  const timeBased = new Set(grant.timeBasedResources);
  const groups = s.groups.filter((g) => timeBased.has(g.resource));
  if (groups.length === 0) {
    return { kind: 'end', schedule: endSchedule(s, 'ENDED', 'NOT_TIME_BASED', 'None of the schedule\u2019s groups is covered by time-based access any more', now) };
  }
  const due = groups.filter((g) => g.dueAt <= now && !busy.has(g.resource));
  if (due.length === 0) {
    const waiting = s.groups.map((g) => (timeBased.has(g.resource) && g.dueAt <= now ? { ...g, dueAt: now + BUSY_RECHECK_MS } : g));
    return { kind: 'wait', schedule: { ...s, groups: waiting, nextRunAt: nextRunOf(waiting.filter((g) => timeBased.has(g.resource))), updatedAt: now } };
  }
  const run: ScheduleRun = {
    run: s.runCount + 1,
    exportId: newId(),
    startedAt: now,
    jobs: due.map((g) => {
      const startTime = g.window === 'full' ? undefined : (g.cursor ?? s.startTime);
      return { resource: g.resource, jobId: newId(), window: g.window, ...(startTime ? { startTime } : {}) };
    }),
  };
  const jobOf = new Map(run.jobs.map((j) => [j.resource, j.jobId]));
  const next = s.groups.map((g): ScheduleGroup => {
    if (!timeBased.has(g.resource)) return g;
    const jobId = jobOf.get(g.resource);
    if (jobId) return { ...g, dueAt: now + s.everyHours * HOUR_MS, lastJobId: jobId, lastJobSettled: false };
    // Due but busy: look again later rather than at every tick.
    if (g.dueAt <= now) return { ...g, dueAt: now + BUSY_RECHECK_MS };
    return g;
  });
  return {
    kind: 'run',
    schedule: { ...s, groups: next, runCount: run.run, lastRun: run, nextRunAt: nextRunOf(next.filter((g) => timeBased.has(g.resource))), updatedAt: now },
    run,
  };
}

const later = (a: string | undefined, b: string): string => (a !== undefined && Date.parse(a) >= Date.parse(b) ? a : b);

/**
 * Folds a finished job of this schedule in. Returns the next schedule, or undefined when nothing
 * changes (not terminal, another schedule's job, already folded). Idempotent.
 *   SUCCEEDED          -> the group's cursor moves to the job's exportTime (never backwards)
 *   TIME_BASED_COOLDOWN -> the group is due at Google's `timestamp_after_24hrs`, else 24 h after the run
 *   CONSENT_REVOKED    -> the schedule stops, needing new consent
 *   anything else      -> nothing: the next run asks for the same window again (nothing is lost)
 */
export function settleJob(s: Schedule, job: Job, now: number): Schedule | undefined {
  if (!isTerminal(job.state)) return undefined;
  const i = s.groups.findIndex((g) => g.resource === job.resource);
  const group = s.groups[i];
  if (!group) return undefined;
  const isLatest = group.lastJobId === job.id;
  let g: ScheduleGroup = group;
  if (job.state === 'SUCCEEDED' && job.exportTime && group.window === 'incremental') {
    const cursor = later(group.cursor, job.exportTime);
    if (cursor !== group.cursor) g = { ...g, cursor };
  }
  if (isLatest && !group.lastJobSettled) {
    g = { ...g, lastJobSettled: true };
    if (job.state === 'FAILED' && job.error?.code === 'TIME_BASED_COOLDOWN') {
      g = { ...g, dueAt: cooldownUntil(job.error.retryAt, job.createdAt) };
    }
  }
  if (g === group && !(isLatest && job.state === 'FAILED' && job.error?.code === 'CONSENT_REVOKED' && s.state === 'ACTIVE')) return undefined;
  const groups = s.groups.map((x, k) => (k === i ? g : x));
  let next: Schedule = { ...s, groups, updatedAt: now };
  if (s.state === 'ACTIVE') next = { ...next, nextRunAt: nextRunOf(groups) };
  if (isLatest && job.state === 'FAILED' && job.error?.code === 'CONSENT_REVOKED' && s.state === 'ACTIVE') {
    next = endSchedule(next, 'NEEDS_CONSENT', 'CONSENT_REVOKED', 'The Google authorization was revoked or has expired: the user must consent again', now);
  }
  return next;
}

/** When a group may run again after a cooldown answer: Google's timestamp, else 24 h after the last run. */
export function cooldownUntil(retryAt: string | undefined, lastRunAt: number): number {
  const at = retryAt === undefined ? Number.NaN : Date.parse(retryAt);
  return Number.isNaN(at) ? lastRunAt + DAY_MS : at;
}

/** Groups whose latest job has not been folded in yet (their job must be read). */
export const unsettledJobIds = (s: Schedule): string[] => s.groups.filter((g) => g.lastJobId && !g.lastJobSettled).map((g) => g.lastJobId as string);
