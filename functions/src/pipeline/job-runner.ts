/**
 * Carries out one pipeline task (initiate, check, copy or copy-part) for one job. Decisions come
 * from the pure state machine and are committed by JobTransitions; this module does the Google
 * calls around them (the copy steps are in copy-step.ts). Every step can run twice, crash at any
 * line and be delivered late: a stale task finds the job moved on and is dropped.
 */
import { classifyApiError } from '../domain/api-error-classification';
import { ConsentRevokedError } from '../domain/errors';
import { callInFlight, CONSENT_REVOKED, isTerminal, type JobEvent } from '../domain/job';
import type { Job, JobError } from '../domain/model';
import type { PollingPolicy } from '../domain/polling-policy';
import type { ArchiveCopier } from '../domain/ports/archive-copier';
import type { ExportStore } from '../domain/ports/export-store';
import type { PortabilityApi } from '../domain/ports/portability-api';
import type { SecretCipher } from '../domain/ports/secret-cipher';
import type { PipelineTask, TaskQueue } from '../domain/ports/task-queues';
import { CALL_LEASE_MS } from '../domain/retry-policies';
import type { Logger } from '../logging';
import { quotaUserOf, type AccessTokens } from './access-tokens';
import { CopyStep } from './copy-step';
import type { ArchiveIndexing } from './archive-indexing';
import type { AuditTrail } from './audit-trail';
import type { EventRelay } from './event-relay';
import { JobTransitions } from './job-transitions';
import { errorDetail, StepFailed, toStepFailure } from './step-failure';
import type { TaskOutcome } from './task-outcome';

export interface JobRunnerDeps {
  store: ExportStore;
  api: PortabilityApi;
  tokens: AccessTokens;
  queue: TaskQueue;
  /** Made on first use: only the copy steps need it. */
  copier: () => Promise<ArchiveCopier>;
  policy: PollingPolicy;
  maxArchiveRetries: number;
  /** Encrypts the upload session kept on the job. */
  cipher: SecretCipher;
  /** How long one invocation copies before a new task continues (below Cloud Tasks' 30-minute deadline). */
  copySliceSeconds: number;
  copyChunkBytes: number;
  /**
   * Archives of at least `minBytes` (that declare a CRC32C) are copied as `parts` byte ranges, one
   * 'copy-part' task each, then composed. Needs a copier with copyPart and composeParts; unset,
   * every archive is one stream.
   */
  parallelCopy?: { minBytes: number; parts: number };
  /** Lists each copied archive into its manifest before the job succeeds (unset: no manifests). */
  indexing?: Pick<ArchiveIndexing, 'index'>;
  logger: Logger;
  now?: () => number;
  /** Told after a job reached a terminal state (scheduled runs fold the outcome into their schedule). Failures are logged, not raised. */
  onJobFinished?: (job: Job) => Promise<void>;
  /** Publishes the events of jobs and exports that finished (when apps are told by Pub/Sub). */
  relay?: EventRelay;
  /** Seals the audit drafts the changes wrote, after their commit. */
  audit?: Pick<AuditTrail, 'sealAfterCommit'>;
}

/** Clock skew allowed between our job's creation and Google's record of when an export was requested. */
const ADOPTION_SKEW_MS = 60_000;

const STEP_STATE = { initiate: 'INITIATING', check: 'WAITING', copy: 'COPYING', 'copy-part': 'COPYING' } as const;

export class JobRunner {
  private readonly now: () => number;
  private readonly jobs: JobTransitions;
  private readonly copying: CopyStep;

  constructor(private readonly deps: JobRunnerDeps) {
    this.now = deps.now ?? Date.now;
    const { store, queue, policy, logger, onJobFinished, relay, audit } = deps;
    this.jobs = new JobTransitions({ store, queue: async () => queue, policy, logger, now: this.now, onJobFinished, relay, audit });
    this.copying = new CopyStep({ ...deps, jobs: this.jobs, now: this.now });
  }

  async run(task: PipelineTask): Promise<TaskOutcome> {
    const job = await this.deps.store.getJob(task.jobId);
    if (!job) return { kind: 'dropped', detail: 'unknown job' };
    if (isTerminal(job.state)) return { kind: 'dropped', detail: `job already ${job.state}` };
    if (job.seq !== task.seq) return { kind: 'dropped', detail: `stale task (seq ${task.seq}, job at ${job.seq})` };
    const expected = STEP_STATE[task.step];
    if (job.state !== expected) return { kind: 'dropped', detail: `job is ${job.state}, not ${expected}` };
    try {
      switch (task.step) {
        case 'initiate':
          return await this.initiate(job);
        case 'check':
          return await this.check(job);
        case 'copy':
          return await this.copying.copy(job, task.redelivery);
        case 'copy-part':
          return await this.copying.copyPart(job, task.part);
      }
    } catch (err) {
      if (err instanceof StepFailed) return this.fail(job, err.jobError);
      if (err instanceof ConsentRevokedError) return this.fail(job, CONSENT_REVOKED);
      const cls = classifyApiError(err);
      if (cls.kind === 'transient') {
        return cls.retryAfterSeconds !== undefined
          ? { kind: 'throttle', detail: 'Data Portability API throttled', retryAfterSeconds: cls.retryAfterSeconds }
          : { kind: 'retry', detail: errorDetail(err) };
      }
      throw err;
    }
  }

  /** Records a terminal failure (e.g. when the task's retry budget is spent). */
  async fail(job: Job, error: JobError): Promise<TaskOutcome> {
    const applied = await this.step(job, { type: 'failed', error });
    return applied ? { kind: 'done', detail: `job failed: ${error.code}` } : { kind: 'dropped', detail: 'job moved on' };
  }

  async failById(jobId: string, error: JobError): Promise<void> {
    const job = await this.deps.store.getJob(jobId);
    if (job && !isTerminal(job.state)) await this.fail(job, error);
  }

  private async initiate(job: Job): Promise<TaskOutcome> {
    // Cancelled while an earlier attempt was calling, and that attempt started nothing: end here.
    if (job.cancelRequested !== undefined && !callInFlight(job, this.now())) {
      await this.step(job, { type: 'cancelled' });
      return { kind: 'done', detail: 'cancelled before any archive job started' };
    }
    const token = await this.deps.tokens.forUser(job.userId);
    const busy = await this.takeLease(job);
    if (busy) return busy;
    let archiveJobId: string;
    try {
      const res = await this.deps.api.initiate(
        token,
        { resources: [job.resource], startTime: job.startTime, endTime: job.endTime },
        quotaUserOf(job.userId),
      );
      archiveJobId = res.archiveJobId;
    } catch (err) {
      const cls = classifyApiError(err);
      if (cls.kind !== 'already-exists') throw await this.failedCall(job, toStepFailure(err, 'initiate'));
      // Our own earlier attempt reached Google before a crash: follow its job, but only if it is ours.
      archiveJobId = cls.jobId;
      await this.checkAdoptable(job, token, archiveJobId).catch(async (e: unknown) => {
        throw await this.failedCall(job, e);
      });
      this.deps.logger.info({ jobId: job.id, archiveJobId }, 'adopted the running archive job');
    }
    await this.step(job, { type: 'initiated', archiveJobId });
    return { kind: 'done', detail: 'initiated' };
  }

  /**
   * ALREADY_EXISTS names the archive job Google is running for this group. It is adopted only
   * as our own lost attempt: no other job of ours follows it, and its window is the one asked for
   * (the same start, or none; `exportTime` is the request's endTime, else when it was requested:
   * not before this job).
   */
  private async checkAdoptable(job: Job, token: string, archiveJobId: string): Promise<void> {
    const busy = (why: string): StepFailed =>
      new StepFailed({ code: 'RESOURCE_GROUP_BUSY', message: `Google is already exporting this data for another request (${why}); export it again when that one has ended` });
    const others = (await this.deps.store.jobsFollowing(archiveJobId)).filter((j) => j.id !== job.id);
    if (others.length > 0) throw busy(`export ${others.map((j) => j.exportId).join(', ')}`);
    const state = await this.deps.api.getState(token, archiveJobId, quotaUserOf(job.userId));
    const same = (a: string | undefined, b: string | undefined): boolean => a === b || (a !== undefined && b !== undefined && Date.parse(a) === Date.parse(b));
    const exportMs = state.exportTime ? Date.parse(state.exportTime) : undefined;
    const window = job.endTime ? same(state.exportTime, job.endTime) : exportMs === undefined || exportMs >= job.createdAt - ADOPTION_SKEW_MS;
    // The start is compared even when this job has none: a Google job asked for a start is another request's.
    if (!window || !same(state.startTime, job.startTime)) throw busy('a different time window');
  }

  private async check(job: Job): Promise<TaskOutcome> {
    const token = await this.deps.tokens.forUser(job.userId);
    const archiveJobId = job.archiveJobId as string;
    const quotaUser = quotaUserOf(job.userId);
    if (job.cancelRequested !== undefined) return this.cancelAtGoogle(job, token, archiveJobId);
    let state;
    try {
      state = await this.deps.api.getState(token, archiveJobId, quotaUser);
    } catch (err) {
      throw toStepFailure(err, 'getState');
    }
    switch (state.state) {
      case 'COMPLETE':
        await this.step(job, { type: 'archive-complete', exportTime: state.exportTime });
        return { kind: 'done', detail: 'archive ready' };
      case 'CANCELLED':
        await this.step(job, { type: 'archive-cancelled' });
        return { kind: 'done', detail: 'cancelled at Google' };
      case 'FAILED': {
        if (job.retries >= this.deps.maxArchiveRetries) {
          throw new StepFailed({ code: 'ARCHIVE_FAILED', message: `Google could not prepare the archive (failed ${job.retries + 1} times, retries exhausted)` });
        }
        // archiveJobs.retry starts a new Google job each time it is called: hold the job's lease
        // while calling, so a duplicate delivery of this check backs off instead of calling again.
        const busy = await this.takeLease(job);
        if (busy) return busy;
        let retried: string;
        try {
          retried = (await this.deps.api.retry(token, archiveJobId, quotaUser)).archiveJobId;
        } catch (err) {
          throw await this.failedCall(job, toStepFailure(err, 'retry'));
        }
        this.deps.logger.warn({ jobId: job.id, archiveJobId, newArchiveJobId: retried, retry: job.retries + 1 }, 'archive job failed at Google; retried');
        await this.step(job, { type: 'archive-retried', archiveJobId: retried });
        return { kind: 'done', detail: 'retried' };
      }
      default:
        // IN_PROGRESS (or a state this code does not know yet): not an error, just not ready.
        await this.step(job, { type: 'still-running' });
        return { kind: 'done', detail: 'still running' };
    }
  }

  /** The user cancelled while this job's Google job was being started: cancel it there, then end CANCELLED. */
  private async cancelAtGoogle(job: Job, token: string, archiveJobId: string): Promise<TaskOutcome> {
    try {
      await this.deps.api.cancel(token, archiveJobId, quotaUserOf(job.userId));
    } catch (err) {
      const cls = classifyApiError(err, 'cancel');
      if (cls.kind === 'transient') throw err;
      // Not cancellable at Google (one-time jobs, it already ended, or the grant is gone): nothing more to stop.
      this.deps.logger.info({ jobId: job.id, archiveJobId, reason: cls.kind }, 'archive job not cancellable at Google');
    }
    await this.step(job, { type: 'cancelled', cancelledAtGoogle: archiveJobId });
    return { kind: 'done', detail: 'cancelled at Google' };
  }

  /**
   * Takes the job's lease for a non-idempotent Google call; answers a throttle outcome (503 with
   * Retry-After) when another delivery of the same step holds it. A holder that crashes loses the
   * lease when it expires; its task's redelivery then takes it.
   */
  private async takeLease(job: Job): Promise<TaskOutcome | undefined> {
    const now = this.now();
    const taken = await this.jobs.apply(job.id, { type: 'lease-taken', until: now + CALL_LEASE_MS }, { seq: job.seq });
    if (taken.applied) return undefined;
    const held = taken.current?.seq === job.seq && taken.current.state === job.state ? taken.current.lease?.until : undefined;
    if (held !== undefined && held > now) return { kind: 'throttle', detail: 'another delivery of this step is calling Google', retryAfterSeconds: Math.ceil((held - now) / 1000) };
    return { kind: 'dropped', detail: 'job moved on' };
  }

  /** A leased call failed: a terminal failure keeps the lease (the job ends anyway); anything else releases it for the next delivery. */
  private async failedCall(job: Job, failure: unknown): Promise<unknown> {
    if (!(failure instanceof StepFailed)) await this.jobs.apply(job.id, { type: 'lease-released' }, { seq: job.seq });
    return failure;
  }

  /** A step's event, at the task's seq; false when the job had moved on (nothing done). */
  private async step(job: Job, event: JobEvent): Promise<boolean> {
    return (await this.jobs.apply(job.id, event, { seq: job.seq })).applied;
  }
}
