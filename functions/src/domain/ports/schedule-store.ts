/** The seam to where schedules of time-based access are kept (Firestore). */
import type { PipelineEvent } from '../events';
import type { ExportRecord, Job } from '../model';
import type { Schedule } from '../model';

/** A change committed, and the events it wrote to the outbox in its transaction (to relay now). */
export interface ScheduleChange {
  schedule: Schedule;
  events: PipelineEvent[];
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
  /**
   * The same, writing the change's events (a run started, a cooldown among `settledJobs`, the
   * schedule ended) to the outbox in its transaction when apps are told.
   */
  changeSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined, settledJobs: readonly Job[]): Promise<ScheduleChange | undefined>;
  /** ACTIVE schedules with nextRunAt <= dueBefore, earliest first (the composite index state + nextRunAt). */
  listDueSchedules(dueBefore: number, limit: number): Promise<Schedule[]>;
  /** The exports a schedule started, newest first (the composite index scheduleId + createdAt). */
  listRuns(scheduleId: string, limit: number): Promise<ExportRecord[]>;
}
