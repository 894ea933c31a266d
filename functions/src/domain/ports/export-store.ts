/** The seam to where exports, their jobs and users' grants are kept (Firestore). */
import type { ExportAdmission } from '../admission';
import type { AuditDraft } from '../audit';
import type { PipelineEvent } from '../events';
import type { ExportRecord, Grant, GrantState, Job } from '../model';

export interface JobUpdate {
  before: Job;
  after: Job;
  /** Events the change wrote to the outbox in its transaction (a job or its export finished), to publish now. */
  events: PipelineEvent[];
  /** The change wrote audit drafts for the job's user (seal them now). */
  audited?: true;
}

export interface ExportStore {
  getGrant(userId: string): Promise<Grant | undefined>;
  /** Stores the grant, with the audit drafts of the change in the same write. */
  putGrant(grant: Grant, audit?: readonly AuditDraft[]): Promise<void>;
  /** Compare-and-set on the grant's state; returns false when it was not `expected`. `audit` makes the drafts of the change from the grant as found. */
  setGrantState(userId: string, expected: GrantState, next: GrantState, audit?: (grant: Grant) => AuditDraft[]): Promise<boolean>;
  deleteGrant(userId: string, audit?: readonly AuditDraft[]): Promise<void>;

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
  /**
   * A page of the user's exports with every job of each, in two reads whatever the page size (the
   * page's query and one batched get of its jobs), instead of one jobs query per export.
   */
  listExportsWithJobs(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: { record: ExportRecord; jobs: Job[] }[]; nextPageToken?: string }>;
  listJobs(exportId: string): Promise<Job[]>;
  getJob(jobId: string): Promise<Job | undefined>;
  /** The jobs whose archiveJobIds hold this Google archive job (at most a few). */
  jobsFollowing(archiveJobId: string): Promise<Job[]>;
  /**
   * A compare-and-set on one job, in a transaction: `decide` sees the current job and returns the
   * next one, or undefined to change nothing (a stale or duplicate step). When the job reaches a
   * terminal state, its end is tallied on its export in the same transaction, and the export's
   * final state is written right after it when this was its last job (or by settleExports).
   */
  updateJob(jobId: string, decide: (job: Job) => Job | undefined): Promise<JobUpdate | undefined>;
  /**
   * Exports one of whose jobs ended at or before `before` on an instance that died before writing
   * the export's final state: writes it (with its event); answers how many it looked at and the
   * events to publish.
   */
  settleExports(before: number, limit: number): Promise<{ exports: number; events: PipelineEvent[] }>;
  /** The user's jobs that have not ended (from the admission ledger: every live job holds its group). */
  liveJobsOfUser(userId: string): Promise<Job[]>;
  /** Non-terminal jobs whose next step was due at or before `dueBefore`, oldest first (an indexed query). */
  listOverdueJobs(dueBefore: number, limit: number): Promise<Job[]>;
}

/** The warnings that time-based access ends soon (GRANT_EXPIRY_WARNING_DAYS ahead). */
export interface GrantExpiryStore {
  /** Grants whose `warnAt` is at or before `before`, oldest first (an indexed query: only unwarned grants carry it). */
  grantsToWarn(before: number, limit: number): Promise<Grant[]>;
  /**
   * In one transaction: takes the grant's `warnAt` away (so the warning is given once, whatever
   * runs at the same time) and, when the grant is still ACTIVE and not ended, writes `event(grant)`
   * to the outbox. Returns the event written, if one was.
   */
  warnGrantExpiry(userId: string, now: number, event: (grant: Grant & { expiresAt: number }) => PipelineEvent): Promise<PipelineEvent | undefined>;
}

/** What the deletion of an export needs from persistence, beyond ExportStore. */
export interface HousekeepingStore {
  /** Deletes an export's jobs, its idempotency records and the export itself. Idempotent. */
  deleteExportRecords(exportId: string, audit?: { userId: string; drafts: readonly AuditDraft[] }): Promise<void>;
}
