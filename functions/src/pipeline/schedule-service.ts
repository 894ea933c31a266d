/**
 * Scheduled incremental exports under time-based access. The public use cases (create, list, get
 * with runs, delete) for one verified caller; the scheduler's tick, which finds due schedules
 * through an index and fans out one Cloud Task per schedule; the run task, which claims the run
 * in a transaction (compare-and-set on the run counter) and then creates the run's export through
 * the ordinary pipeline; and the hook the job runner calls when a scheduled job ends.
 */
import { createHash } from 'node:crypto';
import { ERASURE_IN_PROGRESS } from '../domain/erasure';
import { conflict, invalid, notFound, RequestError } from '../domain/errors';
import { isTerminal, newJob } from '../domain/job';
import type { ExportRecord, Job, Schedule, ScheduleRun } from '../domain/model';
import type { ExportStore } from '../domain/ports/export-store';
import type { ScheduleRunQueue, ScheduleRunTask, TaskQueue } from '../domain/ports/task-queues';
import type { ScheduleStore } from '../domain/ports/schedule-store';
import {
  MIN_EVERY_HOURS,
  newSchedule,
  planRun,
  settleJob,
  unsettledJobIds,
  type RunPlan,
} from '../domain/schedule';
import type { Logger } from '../logging';
import type { EventRelay } from './event-relay';
import { ID_PATTERN, newId } from '../domain/ids';
import { toExportView, type ExportView } from './export-views';

/** How long a dispatched run may take to be claimed before the scheduler enqueues it again. */
export const DISPATCH_LEASE_MS = 30 * 60_000;
/** Due schedules read per tick; the rest are read by the next tick (the index keeps them in order). */
export const TICK_BATCH = 500;
const MAX_SCHEDULES_PER_USER = 20;
const RUNS_SHOWN = 50;

export interface ScheduleView {
  scheduleId: string;
  state: Schedule['state'];
  resources: string[];
  everyHours: number;
  startTime?: string;
  /** Per group: the window kind, where the next window starts, when it is next due. */
  groups: Array<{ resource: string; window: 'incremental' | 'full'; cursor?: string; dueAt: string }>;
  runCount: number;
  nextRunAt?: string;
  endsAt?: string;
  /** Why the schedule stopped (state NEEDS_CONSENT or ENDED). */
  reason?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
  /** GET /v1/schedules/{id} only: the exports it started, newest first. */
  runs?: ExportView[];
}

export interface CreateScheduleInput {
  resources?: string[];
  everyHours?: number;
  startTime?: string;
}

export interface ScheduleServiceDeps {
  schedules: ScheduleStore;
  store: ExportStore;
  // Made on first use: reading schedules needs neither.
  queue: () => Promise<TaskQueue>;
  runQueue: () => Promise<ScheduleRunQueue>;
  logger: Logger;
  now?: () => number;
  /** Tells apps of run starts, cooldowns and ends (the events the change wrote to the outbox). */
  relay?: EventRelay;
  /** ARCHIVE_RETENTION_DAYS: when each archive of a run shown expires. */
  archiveRetentionDays?: number;
}

export type RunOutcome = { kind: 'done' | 'dropped'; detail: string };

const iso = (ms: number): string => new Date(ms).toISOString();

export function toScheduleView(s: Schedule, runs?: ExportView[]): ScheduleView {
  return {
    scheduleId: s.id,
    state: s.state,
    resources: s.groups.map((g) => g.resource),
    everyHours: s.everyHours,
    startTime: s.startTime,
    groups: s.groups.map((g) => ({ resource: g.resource, window: g.window, cursor: g.cursor, dueAt: iso(g.dueAt) })),
    runCount: s.runCount,
    ...(s.nextRunAt !== undefined ? { nextRunAt: iso(s.nextRunAt) } : {}),
    ...(s.endsAt !== undefined ? { endsAt: iso(s.endsAt) } : {}),
    ...(s.endReason ? { reason: { code: s.endReason, message: s.endMessage ?? '' } } : {}),
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
    runs,
  };
}

export class ScheduleService {
  private readonly now: () => number;

  constructor(private readonly deps: ScheduleServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  // ---------- public use cases ----------

  async createSchedule(userId: string, input: CreateScheduleInput): Promise<ScheduleView> {
    const grant = await this.deps.store.getGrant(userId);
    if (!grant) throw conflict('NO_AUTHORIZATION', 'No Google authorization is stored for this user: POST /v1/authorizations first');
    if (grant.state !== 'ACTIVE') throw conflict('NEEDS_CONSENT', 'The Google authorization expired or was revoked: the user must consent again');
    const resources = input.resources ? [...new Set(input.resources)].sort() : [...grant.timeBasedResources].sort();
    const missing = resources.filter((r) => !grant.resources.includes(r));
    if (missing.length > 0) throw invalid('resources', `Not granted by the user: ${missing.join(', ')}`);
    const oneTime = resources.filter((r) => !grant.timeBasedResources.includes(r));
    if (oneTime.length > 0 || resources.length === 0) {
      throw conflict(
        'ONE_TIME_ACCESS',
        resources.length === 0
          ? 'The user granted one-time access only: recurring exports need time-based access (30 or 180 days) at consent'
          : `Granted with one-time access, so they cannot be exported on a schedule: ${oneTime.join(', ')}. Ask the user for time-based access`,
      );
    }
    const now = this.now();
    if (input.startTime && Date.parse(input.startTime) >= now) throw invalid('startTime', 'startTime must be in the past');
    if (input.everyHours !== undefined && input.everyHours < MIN_EVERY_HOURS) throw invalid('everyHours', `everyHours must be at least ${MIN_EVERY_HOURS}`);
    if (grant.expiresAt !== undefined && grant.expiresAt <= now) throw conflict('NEEDS_CONSENT', 'The time-based access has ended: the user must consent again');
    const schedule = newSchedule(
      {
        id: newId(),
        userId,
        resources,
        ...(input.everyHours !== undefined ? { everyHours: input.everyHours } : {}),
        ...(input.startTime ? { startTime: input.startTime } : {}),
        ...(grant.expiresAt !== undefined ? { endsAt: grant.expiresAt } : {}),
      },
      now,
    );
    // One active schedule per group and the per-user cap hold in the transaction that creates it.
    await this.deps.schedules.createSchedule(schedule, MAX_SCHEDULES_PER_USER);
    // The first run starts now (Google wants an initiate soon after consent); the tick would find it anyway.
    await (await this.deps.runQueue()).enqueueScheduleRun({ scheduleId: schedule.id, run: 1 });
    this.deps.logger.info({ userId, scheduleId: schedule.id, resources, everyHours: schedule.everyHours }, 'schedule created');
    return toScheduleView(schedule);
  }

  async listSchedules(userId: string): Promise<{ schedules: ScheduleView[] }> {
    const all = await this.deps.schedules.listSchedules(userId, 100);
    return { schedules: all.map((s) => toScheduleView(s)) };
  }

  async getSchedule(userId: string, scheduleId: string): Promise<ScheduleView> {
    const s = await this.own(userId, scheduleId);
    const runs = await this.deps.schedules.listRuns(scheduleId, RUNS_SHOWN);
    const views = await Promise.all(runs.map(async (r) => toExportView(r, await this.deps.store.listJobs(r.id), this.deps.archiveRetentionDays)));
    return toScheduleView(s, views);
  }

  /** Stops future runs. A run already started finishes: its data was requested at Google. */
  async deleteSchedule(userId: string, scheduleId: string): Promise<{ deleted: true }> {
    await this.own(userId, scheduleId);
    await this.deps.schedules.deleteSchedule(scheduleId);
    this.deps.logger.info({ userId, scheduleId }, 'schedule deleted');
    return { deleted: true };
  }

  // ---------- scheduler ----------

  /**
   * One Cloud Scheduler tick: due schedules through the index, each leased (its nextRunAt moved
   * past the lease, so the next tick reads the schedules behind it) and then handed to the queue as
   * one task. A task that is lost makes the schedule due again when the lease ends.
   */
  async tick(): Promise<{ due: number; enqueued: number }> {
    const now = this.now();
    const due = await this.deps.schedules.listDueSchedules(now, TICK_BATCH);
    const window = Math.floor(now / DISPATCH_LEASE_MS);
    let enqueued = 0;
    for (const s of due) {
      const leased = await this.deps.schedules.updateSchedule(s.id, (cur) =>
        cur.state === 'ACTIVE' && cur.runCount === s.runCount && cur.nextRunAt !== undefined && cur.nextRunAt <= now
          ? { ...cur, nextRunAt: now + DISPATCH_LEASE_MS }
          : undefined,
      );
      if (!leased) continue;
      await (await this.deps.runQueue()).enqueueScheduleRun({ scheduleId: s.id, run: s.runCount + 1, redelivery: window });
      enqueued++;
    }
    return { due: due.length, enqueued };
  }

  /**
   * Starts run `task.run` of a schedule, once: the claim is a transaction that moves runCount from
   * run - 1 to run and records the run's export and job ids; the export is created after it commits,
   * under an idempotency key, so a task delivered again after a crash creates exactly that export.
   */
  async startRun(task: ScheduleRunTask): Promise<RunOutcome> {
    if (!ID_PATTERN.test(task.scheduleId)) return { kind: 'dropped', detail: 'not a schedule id' };
    const s = await this.deps.schedules.getSchedule(task.scheduleId);
    if (!s) return { kind: 'dropped', detail: 'unknown schedule' };
    if (s.runCount >= task.run) {
      if (s.lastRun?.run === task.run) return this.createRunExport(s, s.lastRun);
      return { kind: 'dropped', detail: `stale run ${task.run} (schedule at ${s.runCount})` };
    }
    if (s.runCount !== task.run - 1) return { kind: 'dropped', detail: `run ${task.run} is not next (schedule at ${s.runCount})` };
    if (s.state !== 'ACTIVE') return { kind: 'dropped', detail: `schedule is ${s.state}` };

    // Facts read before the transaction: the grant, and the groups' previous jobs (to fold in
    // outcomes a lost notification missed, and to skip groups still busy).
    const now = this.now();
    const grant = await this.deps.store.getGrant(s.userId);
    const previous = (await Promise.all(unsettledJobIds(s).map((id) => this.deps.store.getJob(id)))).filter((j): j is Job => j !== undefined);
    // Groups another export of the user is exporting right now wait for the next run, as the
    // schedule's own unfinished ones do (one export per group: domain/admission.ts).
    const live = await this.deps.store.liveJobsOfUser(s.userId);
    const busy = new Set([...previous, ...live].filter((j) => !isTerminal(j.state)).map((j) => j.resource));
    let plan: RunPlan | undefined;
    const change = await this.deps.schedules.changeSchedule(s.id, (cur) => {
      plan = undefined;
      if (cur.runCount !== task.run - 1 || cur.state !== 'ACTIVE') return undefined;
      let settled = cur;
      for (const job of previous) settled = settleJob(settled, job, now) ?? settled;
      if (settled.state !== 'ACTIVE') return settled;
      plan = planRun(
        settled,
        { exists: grant !== undefined, active: grant?.state === 'ACTIVE', timeBasedResources: grant?.timeBasedResources ?? [] },
        busy,
        now,
        newId,
      );
      return plan.schedule;
    }, previous);
    if (!change) return { kind: 'dropped', detail: 'the run was claimed meanwhile' };
    await this.deps.relay?.relay(change.events);
    const claimed = change.schedule;
    const decided = plan as RunPlan | undefined;
    if (!decided || decided.kind === 'end') {
      this.deps.logger.warn({ scheduleId: s.id, userId: s.userId, reason: claimed.endReason }, 'schedule ended');
      return { kind: 'done', detail: `schedule ended: ${claimed.endReason ?? claimed.state}` };
    }
    if (decided.kind === 'wait') return { kind: 'done', detail: 'nothing due yet' };
    return this.createRunExport(claimed, decided.run);
  }

  /** The runner's hook: a scheduled job ended; fold its outcome into the schedule. */
  async jobFinished(job: Job): Promise<void> {
    if (!job.scheduleId) return;
    const now = this.now();
    const change = await this.deps.schedules.changeSchedule(job.scheduleId, (s) => settleJob(s, job, now), [job]);
    if (change) await this.deps.relay?.relay(change.events);
    const next = change?.schedule;
    if (next && next.state !== 'ACTIVE') this.deps.logger.warn({ scheduleId: next.id, userId: next.userId, reason: next.endReason }, 'schedule ended');
  }

  private async createRunExport(s: Schedule, run: ScheduleRun): Promise<RunOutcome> {
    const resources = run.jobs.map((j) => j.resource);
    const record: ExportRecord = {
      id: run.exportId,
      userId: s.userId,
      state: 'RUNNING',
      resources,
      createdAt: run.startedAt,
      updatedAt: run.startedAt,
      requestHash: createHash('sha256').update(JSON.stringify(run.jobs)).digest('hex'),
      scheduleId: s.id,
      run: run.run,
    };
    const jobs: Job[] = run.jobs.map((j) => ({
      ...newJob({ id: j.jobId, exportId: run.exportId, userId: s.userId, resource: j.resource, ...(j.startTime ? { startTime: j.startTime } : {}) }, run.startedAt),
      scheduleId: s.id,
      window: j.window,
    }));
    // A run holds its groups like any export but is not counted against the user's limits.
    let result;
    try {
      result = await this.deps.store.createExport(record, jobs, { userId: s.userId, key: `schedule:${s.id}:run:${run.run}` }, {});
    } catch (err) {
      // The user's erasure is deleting this schedule: its run has nothing to start.
      if (err instanceof RequestError && err.code === ERASURE_IN_PROGRESS) return { kind: 'dropped', detail: 'the user is being erased' };
      throw err;
    }
    for (const job of result.jobs) {
      if (job.state === 'INITIATING') await (await this.deps.queue()).enqueue({ step: 'initiate', jobId: job.id, seq: job.seq, delaySeconds: 0 });
    }
    if (result.created) this.deps.logger.info({ scheduleId: s.id, userId: s.userId, run: run.run, exportId: run.exportId, resources }, 'scheduled run started');
    return { kind: 'done', detail: `run ${run.run} started` };
  }

  private async own(userId: string, scheduleId: string): Promise<Schedule> {
    if (!ID_PATTERN.test(scheduleId)) throw notFound('Schedule');
    const s = await this.deps.schedules.getSchedule(scheduleId);
    if (!s || s.userId !== userId) throw notFound('Schedule');
    return s;
  }
}
