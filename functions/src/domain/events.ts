/**
 * What apps are told, as CloudEvents (specversion 1.0): a job reached a terminal state, an export
 * reached its final state, a schedule started a run, cooled down, or ended. Pure builders: each event's id is stable (derived from what happened),
 * so an event published twice (at least once is the promise) is dropped by a subscriber that
 * remembers ids. Events carry no token, URL or user id: the user is named by a hash the app can
 * compute from its own user ids.
 */
import { createHash } from 'node:crypto';
import type { ExportRecord, ExportState, Grant, Job, JobState, Schedule, ScheduleState } from './model';

export const EVENT_TYPES = [
  'portability.job.finished',
  'portability.export.finished',
  'portability.schedule.run-started',
  'portability.schedule.cooled-down',
  'portability.schedule.ended',
  'portability.authorization.expiring',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** `sha256("user\n" + userId)`, hex: the same pseudonym as the user's records in Firestore. */
export const userIdHash = (userId: string): string => createHash('sha256').update(`user\n${userId}`).digest('hex');

export interface PipelineEvent {
  /** Stable: `job/{jobId}/{state}`, `export/{exportId}/{state}`, `schedule/{scheduleId}/run/{n}`, `…/cooldown/{jobId}`, `…/{state}`, `authorization/{userIdHash}/expiring/{expiresAt ms}`. */
  id: string;
  type: EventType;
  /** CloudEvents `source`: the export (or schedule) the event is about (`authorizations/{userIdHash}` for a grant's). */
  source: string;
  /** CloudEvents `subject`: the job, for job and cooldown events; the run's export, for a run started. */
  subject?: string;
  /** RFC 3339: when it happened. */
  time: string;
  /** Pub/Sub attributes to filter on (subscription filters match attributes only). */
  attributes: { type: EventType; userIdHash: string; exportId?: string; scheduleId?: string; state?: JobState | ExportState | ScheduleState };
  data: JobFinishedData | ExportFinishedData | ScheduleEventData | AuthorizationExpiringData;
}

export interface JobFinishedData {
  exportId: string;
  jobId: string;
  resource: string;
  state: JobState;
  error?: { code: string; message: string };
  /** SUCCEEDED: what is in the bucket. */
  archives?: Array<{ name: string; size: number; crc32c: string }>;
  scheduleId?: string;
}

export interface ExportFinishedData {
  exportId: string;
  state: ExportState;
  resources: string[];
  scheduleId?: string;
  run?: number;
}

/** Time-based access ends soon: where the person renews it. */
export interface AuthorizationExpiringData {
  /** RFC 3339: when Google ends the access. */
  expiresAt: string;
  timeBasedResources: string[];
  /** Google's page where the person renews time-based access (absent when the OAuth client id names no project number). */
  renewalUrl?: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function authorizationExpiringEvent(grant: Grant & { expiresAt: number }, at: number, renewalUrl: string | undefined): PipelineEvent {
  const hash = userIdHash(grant.userId);
  return {
    id: `authorization/${hash}/expiring/${grant.expiresAt}`,
    type: 'portability.authorization.expiring',
    source: `authorizations/${hash}`,
    time: iso(at),
    attributes: { type: 'portability.authorization.expiring', userIdHash: hash },
    data: { expiresAt: iso(grant.expiresAt), timeBasedResources: [...grant.timeBasedResources].sort(), ...(renewalUrl ? { renewalUrl } : {}) },
  };
}

export function jobFinishedEvent(job: Job): PipelineEvent {
  return {
    id: `job/${job.id}/${job.state}`,
    type: 'portability.job.finished',
    source: `exports/${job.exportId}`,
    subject: `jobs/${job.id}`,
    time: iso(job.finishedAt ?? job.updatedAt),
    attributes: { type: 'portability.job.finished', userIdHash: userIdHash(job.userId), exportId: job.exportId, state: job.state },
    data: {
      exportId: job.exportId,
      jobId: job.id,
      resource: job.resource,
      state: job.state,
      ...(job.error ? { error: { code: job.error.code, message: job.error.message } } : {}),
      ...(job.state === 'SUCCEEDED' ? { archives: job.archives.map((a) => ({ name: a.name, size: a.size, crc32c: a.crc32c })) } : {}),
      ...(job.scheduleId ? { scheduleId: job.scheduleId } : {}),
    },
  };
}

export function exportFinishedEvent(record: ExportRecord, state: ExportState, at: number): PipelineEvent {
  return {
    id: `export/${record.id}/${state}`,
    type: 'portability.export.finished',
    source: `exports/${record.id}`,
    time: iso(at),
    attributes: { type: 'portability.export.finished', userIdHash: userIdHash(record.userId), exportId: record.id, state },
    data: { exportId: record.id, state, resources: record.resources, ...(record.scheduleId ? { scheduleId: record.scheduleId, run: record.run } : {}) },
  };
}

export interface ScheduleEventData {
  scheduleId: string;
  state: ScheduleState;
  /** run-started: the run and its export. */
  run?: number;
  exportId?: string;
  resources?: string[];
  /** cooled-down: the group Google refused for 24 hours, the job it refused, and when the group is due again. */
  resource?: string;
  jobId?: string;
  dueAt?: string;
  /** ended: why. */
  reason?: { code: string; message: string };
}

function scheduleEvent(s: Schedule, type: EventType, id: string, at: number, extra: Omit<ScheduleEventData, 'scheduleId' | 'state'>, subject?: string): PipelineEvent {
  return {
    id: `schedule/${s.id}/${id}`,
    type,
    source: `schedules/${s.id}`,
    ...(subject ? { subject } : {}),
    time: iso(at),
    attributes: { type, userIdHash: userIdHash(s.userId), ...(extra.exportId ? { exportId: extra.exportId } : {}), scheduleId: s.id, state: s.state },
    data: { scheduleId: s.id, state: s.state, ...extra },
  };
}

/**
 * The events of one change of a schedule, from the schedule before and after it (in the change's
 * transaction) and the finished jobs the change folded in: a run started (the run counter moved),
 * a group cooled down (its latest job was settled as Google's 24-hour cooldown), the schedule ended
 * (NEEDS_CONSENT or ENDED). Ids are stable: one run, one cooldown per job, one end per schedule.
 */
export function scheduleChangeEvents(before: Schedule, after: Schedule, settledJobs: readonly Job[], now: number): PipelineEvent[] {
  const events: PipelineEvent[] = [];
  const run = after.lastRun;
  if (after.runCount > before.runCount && run && run.run === after.runCount) {
    const resources = run.jobs.map((j) => j.resource);
    events.push(scheduleEvent(after, 'portability.schedule.run-started', `run/${run.run}`, run.startedAt, { run: run.run, exportId: run.exportId, resources }, `exports/${run.exportId}`));
  }
  for (const g of after.groups) {
    const was = before.groups.find((b) => b.resource === g.resource);
    if (!was || was.lastJobSettled !== false || g.lastJobSettled !== true) continue;
    const job = settledJobs.find((j) => j.id === g.lastJobId);
    if (job?.state !== 'FAILED' || job.error?.code !== 'TIME_BASED_COOLDOWN') continue;
    events.push(scheduleEvent(after, 'portability.schedule.cooled-down', `cooldown/${job.id}`, now, { resource: g.resource, jobId: job.id, exportId: job.exportId, dueAt: iso(g.dueAt) }, `jobs/${job.id}`));
  }
  if (before.state === 'ACTIVE' && after.state !== 'ACTIVE') {
    const reason = after.endReason ? { reason: { code: after.endReason, message: after.endMessage ?? '' } } : {};
    events.push(scheduleEvent(after, 'portability.schedule.ended', after.state, now, reason));
  }
  return events;
}
