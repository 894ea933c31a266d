/**
 * Carries out one pipeline task (initiate, check, copy or copy-part) for one job. Decisions come from the
 * pure state machine; this module does the I/O around them: the Google call first, then a
 * compare-and-set of the job, then the effects (next tasks). Every step can run twice, crash at
 * any line and be delivered late: a stale task finds the job moved on and is dropped.
 */
import { classifyApiError, type PortabilityMethod } from '../domain/api-error-classification';
import { partRanges } from '../domain/archive-parts';
import { archiveObjectName, jobObjectPrefix } from '../domain/object-names';
import { callInFlight, canApply, CONSENT_REVOKED, isTerminal, transition, type CopyPartsPlan, type CopyState, type Job, type JobError, type JobEvent } from '../domain/job';
import { DEFAULT_COPY_LEASE_SECONDS, type PollingPolicy } from '../domain/polling-policy';
import {
  ArchiveNeedsPartsError,
  ArchivePartsMissingError,
  ArchiveRejectedError,
  ArchiveUrlExpiredError,
  ConsentRevokedError,
  CopyInterruptedError,
  type CopyCheckpoint,
  type PartedSource,
  type SecretCipher,
  type ArchiveCopier,
  type ExportStore,
  type PipelineTask,
  type PortabilityApi,
  type StoredArchive,
  type TaskQueue,
} from '../domain/ports';
import type { Logger } from '../logging';
import { quotaUserOf, type AccessTokens } from './access-tokens';

/** What the task handler answers Cloud Tasks: done (2xx), throttle (503 + Retry-After), retry (500). */
export type TaskOutcome =
  | { kind: 'done'; detail: string }
  | { kind: 'dropped'; detail: string }
  | { kind: 'throttle'; detail: string; retryAfterSeconds: number }
  | { kind: 'retry'; detail: string };

export const DATA_RETENTION_MS = 14 * 86_400_000;
const MAX_URL_REFRESHES = 3;
const MAX_INTERRUPTIONS = 2;
/** Longer than one Google call with its in-place retries takes. */
const LEASE_MS = 60_000;
const PROGRESS_INTERVAL_MS = 1000;

export interface JobRunnerDeps {
  store: ExportStore;
  api: PortabilityApi;
  tokens: AccessTokens;
  queue: TaskQueue;
  copier: ArchiveCopier;
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
  logger: Logger;
  now?: () => number;
  /** Told after a job reached a terminal state (scheduled runs fold the outcome into their schedule). Failures are logged, not raised. */
  onJobFinished?: (job: Job) => Promise<void>;
}


/** Clock skew allowed between our job's creation and Google's record of when an export was requested. */
const ADOPTION_SKEW_MS = 60_000;

class StepFailed extends Error {
  constructor(readonly jobError: JobError) {
    super(jobError.message);
  }
}

/** Parts (0-based) of a plan not copied yet. */
function missingParts(plan: CopyPartsPlan): number[] {
  return Array.from({ length: plan.count }, (_, i) => i).filter((i) => !plan.done.includes(i));
}

export class JobRunner {
  private readonly now: () => number;

  constructor(private readonly deps: JobRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  async run(task: PipelineTask): Promise<TaskOutcome> {
    const job = await this.deps.store.getJob(task.jobId);
    if (!job) return { kind: 'dropped', detail: 'unknown job' };
    if (isTerminal(job.state)) return { kind: 'dropped', detail: `job already ${job.state}` };
    if (job.seq !== task.seq) return { kind: 'dropped', detail: `stale task (seq ${task.seq}, job at ${job.seq})` };
    const expected = { initiate: 'INITIATING', check: 'WAITING', copy: 'COPYING', 'copy-part': 'COPYING' }[task.step];
    if (job.state !== expected) return { kind: 'dropped', detail: `job is ${job.state}, not ${expected}` };
    try {
      switch (task.step) {
        case 'initiate':
          return await this.initiate(job);
        case 'check':
          return await this.check(job);
        case 'copy':
          return await this.copy(job, task.redelivery);
        case 'copy-part':
          return await this.copyPart(job, task.part);
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
    const applied = await this.apply(job, { type: 'failed', error });
    return applied ? { kind: 'done', detail: `job failed: ${error.code}` } : { kind: 'dropped', detail: 'job moved on' };
  }

  async failById(jobId: string, error: JobError): Promise<void> {
    const job = await this.deps.store.getJob(jobId);
    if (job && !isTerminal(job.state)) await this.fail(job, error);
  }

  private async token(job: Job): Promise<string> {
    return this.deps.tokens.forUser(job.userId);
  }

  private async initiate(job: Job): Promise<TaskOutcome> {
    // Cancelled while an earlier attempt was calling, and that attempt started nothing: end here.
    if (job.cancelRequested !== undefined && !callInFlight(job, this.now())) {
      await this.apply(job, { type: 'cancelled' });
      return { kind: 'done', detail: 'cancelled before any archive job started' };
    }
    const token = await this.token(job);
    const busy = await this.takeLease(job);
    if (busy) return busy;
    let archiveJobId: string;
    try {
      const res = await this.deps.api.initiate(
        token,
        { resources: [job.resource], ...(job.startTime ? { startTime: job.startTime } : {}), ...(job.endTime ? { endTime: job.endTime } : {}) },
        quotaUserOf(job.userId),
      );
      archiveJobId = res.archiveJobId;
    } catch (err) {
      const cls = classifyApiError(err);
      if (cls.kind !== 'already-exists') {
        const failure = this.toStepFailure(err, 'initiate');
        if (!(failure instanceof StepFailed)) await this.releaseLease(job);
        throw failure;
      }
      // Our own earlier attempt reached Google before a crash: follow its job, but only if it is ours.
      archiveJobId = cls.jobId;
      await this.checkAdoptable(job, token, archiveJobId).catch(async (err: unknown) => {
        if (!(err instanceof StepFailed)) await this.releaseLease(job);
        throw err;
      });
      this.deps.logger.info({ jobId: job.id, archiveJobId }, 'adopted the running archive job');
    }
    await this.apply(job, { type: 'initiated', archiveJobId });
    return { kind: 'done', detail: 'initiated' };
  }

  /**
   * ALREADY_EXISTS names the archive job Google is running for this group. It is adopted only
   * as our own lost attempt: no other job of ours follows it, and its window is the one asked for
   * (`exportTime` is the request's endTime, else when it was requested: not before this job).
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
    if (!window || (job.startTime !== undefined && !same(state.startTime, job.startTime))) throw busy('a different time window');
  }

  private async check(job: Job): Promise<TaskOutcome> {
    const token = await this.token(job);
    const archiveJobId = job.archiveJobId as string;
    const quotaUser = quotaUserOf(job.userId);
    if (job.cancelRequested !== undefined) return this.cancelAtGoogle(job, token, archiveJobId);
    let state;
    try {
      state = await this.deps.api.getState(token, archiveJobId, quotaUser);
    } catch (err) {
      throw this.toStepFailure(err, 'getState');
    }
    switch (state.state) {
      case 'COMPLETE':
        await this.apply(job, { type: 'archive-complete', ...(state.exportTime ? { exportTime: state.exportTime } : {}) });
        return { kind: 'done', detail: 'archive ready' };
      case 'CANCELLED':
        await this.apply(job, { type: 'archive-cancelled' });
        return { kind: 'done', detail: 'cancelled at Google' };
      case 'FAILED': {
        if (job.retries >= this.deps.maxArchiveRetries) {
          throw new StepFailed({
            code: 'ARCHIVE_FAILED',
            message: `Google could not prepare the archive (failed ${job.retries + 1} times, retries exhausted)`,
          });
        }
        // archiveJobs.retry starts a new Google job each time it is called: hold the job's lease
        // while calling, so a duplicate delivery of this check backs off instead of calling again.
        const busy = await this.takeLease(job);
        if (busy) return busy;
        let retried: string;
        try {
          retried = (await this.deps.api.retry(token, archiveJobId, quotaUser)).archiveJobId;
        } catch (err) {
          const failure = this.toStepFailure(err, 'retry');
          if (!(failure instanceof StepFailed)) await this.releaseLease(job);
          throw failure;
        }
        this.deps.logger.warn({ jobId: job.id, archiveJobId, newArchiveJobId: retried, retry: job.retries + 1 }, 'archive job failed at Google; retried');
        await this.apply(job, { type: 'archive-retried', archiveJobId: retried });
        return { kind: 'done', detail: 'retried' };
      }
      default:
        // IN_PROGRESS (or a state this code does not know yet): not an error, just not ready.
        await this.apply(job, { type: 'still-running' });
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
    await this.apply(job, { type: 'cancelled', cancelledAtGoogle: archiveJobId });
    return { kind: 'done', detail: 'cancelled at Google' };
  }

  private async copy(job: Job, redelivery?: number): Promise<TaskOutcome> {
    this.checkRetention(job);
    const token = await this.token(job);
    const freshUrls = (): Promise<string[]> => this.freshUrls(job, token);
    const parted = this.partedCopier();
    // One invocation copies for at most a slice of time, then hands over to a fresh task.
    const deadline = new AbortController();
    const sliceTimer = setTimeout(() => deadline.abort(), this.deps.copySliceSeconds * 1000);
    // Aborted when a progress write finds the job no longer copying (revoked, cancelled, moved on).
    const ended = new AbortController();
    const signal = AbortSignal.any([deadline.signal, ended.signal]);
    try {
      let urls = await freshUrls();
      const count = urls.length;
      const archives: StoredArchive[] = [...(job.copy?.done ?? [])];
      let checkpoint: CopyCheckpoint | undefined =
        job.copy?.session && job.copy.session.archive === archives.length
          ? (JSON.parse(await this.deps.cipher.decrypt(job.copy.session.checkpoint, job.id)) as CopyCheckpoint)
          : undefined;
      // The archive under way is being copied in parts: its tasks finish it, or this step composes it.
      let plan = parted && job.copy?.parts?.archive === archives.length ? job.copy.parts : undefined;
      let doneBytes = archives.reduce((n, a) => n + a.size, 0);
      let lastProgressAt = 0;
      let progressWrite: Promise<void> = Promise.resolve();
      for (let i = archives.length; i < count; i++) {
        if (plan && parted) {
          const missing = missingParts(plan);
          if (missing.length > 0) return await this.enqueueParts(job, plan, missing, redelivery);
          const composed = await this.composeParts(job, parted, plan, count, archives, redelivery);
          if ('kind' in composed) return composed;
          archives.push(composed);
          doneBytes += composed.size;
          plan = undefined;
          if (i + 1 < count) await this.saveCopyState(job, { done: archives });
          continue;
        }
        let refreshes = 0;
        let interruptions = 0;
        for (;;) {
          try {
            const url = urls[i];
            if (url === undefined) throw new StepFailed({ code: 'COPY_FAILED', message: 'Google returned fewer archive URLs than before' });
            const stored = await this.deps.copier.copy(
              url,
              archiveObjectName(job, i, count),
              (bytes) => {
                const t = this.now();
                if (t - lastProgressAt < PROGRESS_INTERVAL_MS) return;
                lastProgressAt = t;
                progressWrite = progressWrite
                  .then(async () => {
                    if (!(await this.deps.store.recordProgress(job.id, job.seq, doneBytes + bytes))) ended.abort();
                  })
                  .catch(() => undefined);
              },
              {
                ...(checkpoint ? { checkpoint } : {}),
                onCheckpoint: async (cp) => {
                  checkpoint = cp;
                  await this.saveCopyState(job, { done: archives, session: { archive: i, checkpoint: await this.deps.cipher.encrypt(JSON.stringify(cp), job.id) } });
                },
                signal,
                chunkSize: this.deps.copyChunkBytes,
                ...(parted && this.deps.parallelCopy ? { partsFrom: this.deps.parallelCopy.minBytes } : {}),
              },
            );
            archives.push(stored);
            doneBytes += stored.size;
            checkpoint = undefined;
            if (i + 1 < count) await this.saveCopyState(job, { done: archives });
            break;
          } catch (err) {
            if (err instanceof ArchiveNeedsPartsError && this.deps.parallelCopy) {
              await progressWrite;
              return await this.planParts(job, i, archives, err.source, this.deps.parallelCopy.parts, redelivery);
            }
            if (err instanceof CopyInterruptedError && ended.signal.aborted) return await this.abandonCopy(job);
            if (err instanceof CopyInterruptedError && deadline.signal.aborted) {
              await progressWrite;
              return await this.continueCopy(job);
            }
            if (err instanceof ArchiveUrlExpiredError && refreshes < MAX_URL_REFRESHES) {
              refreshes++;
              this.deps.logger.info({ jobId: job.id, archive: i + 1 }, 'signed URL expired; fetching fresh URLs');
              urls = await freshUrls();
              continue;
            }
            if (err instanceof ArchiveRejectedError || err instanceof ArchiveUrlExpiredError) {
              throw new StepFailed({ code: 'COPY_FAILED', message: err.message });
            }
            if (err instanceof StepFailed) throw err;
            // A dropped connection or a 5xx: try again here (resuming the upload session) before handing back to Cloud Tasks.
            if (interruptions < MAX_INTERRUPTIONS) {
              interruptions++;
              this.deps.logger.warn({ jobId: job.id, archive: i + 1, err }, 'archive copy interrupted; resuming');
              await new Promise((r) => setTimeout(r, 200 * interruptions));
              continue;
            }
            throw err;
          }
        }
      }
      await progressWrite;
      if (!(await this.apply(job, { type: 'copied', archives }))) return await this.abandonCopy(job);
      return { kind: 'done', detail: `copied ${archives.length} archive(s)` };
    } finally {
      clearTimeout(sliceTimer);
    }
  }

  /**
   * The job ended while this step copied. Unless it SUCCEEDED (another delivery finished it), the
   * API shows none of its archives, so none may stay: remove what its copies wrote.
   */
  private async abandonCopy(job: Job): Promise<TaskOutcome> {
    const current = await this.deps.store.getJob(job.id);
    if (current?.state === 'SUCCEEDED') return { kind: 'dropped', detail: 'another delivery finished the copy' };
    const removed = await this.deps.copier.deletePrefix(jobObjectPrefix(job));
    this.deps.logger.info({ jobId: job.id, state: current?.state, removed }, 'job ended during its copy; its objects were removed');
    return { kind: 'dropped', detail: `job ended (${current?.state ?? 'gone'}) during the copy` };
  }

  private checkRetention(job: Job): void {
    if (job.readyAt !== undefined && this.now() > job.readyAt + DATA_RETENTION_MS) {
      throw new StepFailed({ code: 'DATA_EXPIRED', message: 'The archive was not copied within the 14 days Google keeps it' });
    }
  }

  /** The signed URLs again (they expire within hours): getState of the job's completed archive job. */
  private async freshUrls(job: Job, token: string): Promise<string[]> {
    try {
      const s = await this.deps.api.getState(token, job.archiveJobId as string, quotaUserOf(job.userId));
      if (s.state !== 'COMPLETE' || s.urls.length === 0) {
        throw new StepFailed({ code: 'COPY_FAILED', message: `The archive is no longer available (state ${s.state})` });
      }
      return s.urls;
    } catch (err) {
      throw err instanceof StepFailed ? err : this.toStepFailure(err, 'getState');
    }
  }

  /** The copier's ranged pieces, when copying in parts is configured and the copier has them. */
  private partedCopier(): Required<Pick<ArchiveCopier, 'copyPart' | 'composeParts'>> | undefined {
    const { copier, parallelCopy } = this.deps;
    if (!parallelCopy || typeof copier.copyPart !== 'function' || typeof copier.composeParts !== 'function') return undefined;
    return { copyPart: copier.copyPart.bind(copier), composeParts: copier.composeParts.bind(copier) };
  }

  private copyLeaseMs(): number {
    return (this.deps.policy.copyLeaseSeconds ?? DEFAULT_COPY_LEASE_SECONDS) * 1000;
  }

  /** Archive `archive` is large: record how it is cut (no seq bump: the task stays valid), then one task per part. */
  private async planParts(job: Job, archive: number, archives: StoredArchive[], source: PartedSource, parts: number, redelivery?: number): Promise<TaskOutcome> {
    const plan: CopyPartsPlan = {
      archive,
      count: partRanges(source.size, parts).length,
      size: source.size,
      crc32c: source.crc32c,
      ...(source.md5 ? { md5: source.md5 } : {}),
      done: [],
    };
    const saved = await this.deps.store.updateJob(job.id, (current) =>
      current.seq === job.seq && current.state === 'COPYING' ? { ...current, copy: { done: archives, parts: plan }, updatedAt: this.now() } : undefined,
    );
    if (!saved) return { kind: 'dropped', detail: 'job moved on during the copy' };
    this.deps.logger.info({ jobId: job.id, archive: archive + 1, bytes: source.size, parts: plan.count }, 'copying a large archive in parts');
    return this.enqueueParts(job, plan, missingParts(plan), redelivery);
  }

  /**
   * One 'copy-part' task per part not yet done, at the job's seq (a redelivery by the sweeper gets
   * fresh task names, so a lost part task is sent again). The copy lease is extended: the parts
   * now hold the job.
   */
  private async enqueueParts(job: Job, plan: CopyPartsPlan, parts: number[], redelivery?: number): Promise<TaskOutcome> {
    const held = await this.deps.store.updateJob(job.id, (current) =>
      current.seq === job.seq && current.state === 'COPYING' ? { ...current, nextCheckAt: this.now() + this.copyLeaseMs() } : undefined,
    );
    if (!held) return { kind: 'dropped', detail: 'job moved on during the copy' };
    for (const part of parts) {
      await this.deps.queue.enqueue({ step: 'copy-part', jobId: job.id, seq: job.seq, part, delaySeconds: 0, ...(redelivery !== undefined ? { redelivery } : {}) });
    }
    return { kind: 'done', detail: `archive ${plan.archive + 1}: ${parts.length} of ${plan.count} part task(s) enqueued` };
  }

  /** All parts are in: compose them. Parts found missing are copied again; a composite that differs fails the job. */
  private async composeParts(
    job: Job,
    parted: Required<Pick<ArchiveCopier, 'composeParts'>>,
    plan: CopyPartsPlan,
    count: number,
    archives: StoredArchive[],
    redelivery?: number,
  ): Promise<StoredArchive | TaskOutcome> {
    try {
      return await parted.composeParts(archiveObjectName(job, plan.archive, count), plan.count, {
        size: plan.size,
        crc32c: plan.crc32c,
        ...(plan.md5 ? { md5: plan.md5 } : {}),
      });
    } catch (err) {
      if (err instanceof ArchiveRejectedError) throw new StepFailed({ code: 'COPY_FAILED', message: err.message });
      if (!(err instanceof ArchivePartsMissingError)) throw err;
      this.deps.logger.warn({ jobId: job.id, archive: plan.archive + 1, missing: err.missing.map((p) => p + 1) }, 'archive parts missing at compose; copying them again');
      const again: CopyPartsPlan = { ...plan, done: plan.done.filter((p) => !err.missing.includes(p)) };
      const saved = await this.deps.store.updateJob(job.id, (current) =>
        current.seq === job.seq && current.state === 'COPYING' ? { ...current, copy: { done: archives, parts: again }, updatedAt: this.now() } : undefined,
      );
      if (!saved) return { kind: 'dropped', detail: 'job moved on during the copy' };
      return this.enqueueParts(job, again, missingParts(again), redelivery);
    }
  }

  /**
   * One byte range of the archive under way. After the copy, its index joins the plan's `done` in a
   * compare-and-set; the delivery that completes the set moves the job to the next seq and enqueues
   * a 'copy' task, which composes (so composing and what follows live in one place, the copy step).
   */
  private async copyPart(job: Job, part: number | undefined): Promise<TaskOutcome> {
    const plan = job.copy?.parts;
    const parted = this.partedCopier();
    if (!plan || !parted || part === undefined || !Number.isInteger(part) || part < 0 || part >= plan.count) {
      return { kind: 'dropped', detail: 'no such part in the job’s copy plan' };
    }
    if (plan.done.includes(part)) return { kind: 'dropped', detail: `part ${part + 1} of ${plan.count} already copied` };
    this.checkRetention(job);
    const token = await this.token(job);
    let urls = await this.freshUrls(job, token);
    let refreshes = 0;
    let interruptions = 0;
    for (;;) {
      try {
        const url = urls[plan.archive];
        if (url === undefined) throw new StepFailed({ code: 'COPY_FAILED', message: 'Google returned fewer archive URLs than before' });
        await parted.copyPart(url, archiveObjectName(job, plan.archive, urls.length), part, plan.count, plan.size);
        break;
      } catch (err) {
        if (err instanceof ArchiveUrlExpiredError && refreshes < MAX_URL_REFRESHES) {
          refreshes++;
          this.deps.logger.info({ jobId: job.id, archive: plan.archive + 1, part: part + 1 }, 'signed URL expired; fetching fresh URLs');
          urls = await this.freshUrls(job, token);
          continue;
        }
        if (err instanceof ArchiveRejectedError || err instanceof ArchiveUrlExpiredError) throw new StepFailed({ code: 'COPY_FAILED', message: err.message });
        if (err instanceof StepFailed) throw err;
        if (interruptions < MAX_INTERRUPTIONS) {
          interruptions++;
          this.deps.logger.warn({ jobId: job.id, archive: plan.archive + 1, part: part + 1, err }, 'archive part copy interrupted; trying again');
          await new Promise((r) => setTimeout(r, 200 * interruptions));
          continue;
        }
        throw err;
      }
    }

    const lengths = partRanges(plan.size, plan.count).map(([s, e]) => e - s + 1);
    let completed = false;
    const updated = await this.deps.store.updateJob(job.id, (current) => {
      const p = current.copy?.parts;
      if (current.seq !== job.seq || current.state !== 'COPYING' || !p || p.archive !== plan.archive || p.count !== plan.count || p.done.includes(part)) {
        return undefined;
      }
      const done = [...p.done, part].sort((a, b) => a - b);
      completed = done.length === p.count;
      const now = this.now();
      const before = (current.copy?.done ?? []).reduce((n, a) => n + a.size, 0);
      return {
        ...current,
        copy: { done: current.copy?.done ?? [], parts: { ...p, done } },
        bytesCopied: before + done.reduce((n, i) => n + (lengths[i] ?? 0), 0),
        updatedAt: now,
        nextCheckAt: now + this.copyLeaseMs(),
        ...(completed ? { seq: current.seq + 1 } : {}),
      };
    });
    if (!updated) {
      const current = await this.deps.store.getJob(job.id);
      if (current && isTerminal(current.state)) return this.abandonCopy(job);
      return { kind: 'dropped', detail: `part ${part + 1} copied, but the job moved on (or another delivery recorded it)` };
    }
    if (!completed) return { kind: 'done', detail: `part ${part + 1} of ${plan.count} copied` };
    await this.deps.queue.enqueue({ step: 'copy', jobId: job.id, seq: updated.after.seq, delaySeconds: 0 });
    this.deps.logger.info({ jobId: job.id, archive: plan.archive + 1, parts: plan.count }, 'every part copied; composing in a copy task');
    return { kind: 'done', detail: `part ${part + 1} of ${plan.count} copied, the last one: compose enqueued` };
  }

  /**
   * Takes the job's lease for a non-idempotent Google call; answers a throttle outcome (503 with
   * Retry-After) when another delivery of the same step holds it. A holder that crashes loses the
   * lease when it expires; its task's redelivery then takes it.
   */
  private async takeLease(job: Job): Promise<TaskOutcome | undefined> {
    const now = this.now();
    let heldUntil = 0;
    const taken = await this.deps.store.updateJob(job.id, (current) => {
      if (current.seq !== job.seq || current.state !== job.state) return undefined;
      if (current.lease && callInFlight(current, now)) {
        heldUntil = current.lease.until;
        return undefined;
      }
      return { ...current, lease: { until: now + LEASE_MS } };
    });
    if (taken) return undefined;
    if (heldUntil > 0) return { kind: 'throttle', detail: 'another delivery of this step is calling Google', retryAfterSeconds: Math.ceil((heldUntil - now) / 1000) };
    return { kind: 'dropped', detail: 'job moved on' };
  }

  private async releaseLease(job: Job): Promise<void> {
    await this.deps.store.updateJob(job.id, (current) => {
      if (current.seq !== job.seq || !current.lease) return undefined;
      const { lease: _l, ...rest } = current;
      return rest;
    });
  }

  /** Records copy progress on the job without changing its state or seq (the task stays valid). */
  private async saveCopyState(job: Job, copy: CopyState): Promise<void> {
    await this.deps.store.updateJob(job.id, (current) =>
      current.seq === job.seq && current.state === 'COPYING' ? { ...current, copy, updatedAt: this.now() } : undefined,
    );
  }

  /** The slice is over: a new copy task (next seq) resumes from the saved session. */
  private async continueCopy(job: Job): Promise<TaskOutcome> {
    const leaseMs = this.copyLeaseMs();
    const updated = await this.deps.store.updateJob(job.id, (current) =>
      current.seq === job.seq && current.state === 'COPYING'
        ? { ...current, seq: current.seq + 1, updatedAt: this.now(), nextCheckAt: this.now() + leaseMs }
        : undefined,
    );
    if (!updated) return { kind: 'dropped', detail: 'job moved on during the copy' };
    await this.deps.queue.enqueue({ step: 'copy', jobId: job.id, seq: updated.after.seq, delaySeconds: 0 });
    this.deps.logger.info({ jobId: job.id, bytesCopied: updated.after.bytesCopied }, 'copy slice ended; continuing in a new task');
    return { kind: 'done', detail: 'copy continues in the next task' };
  }

  /** Maps an API error to a terminal job error, or rethrows it when it is transient. */
  private toStepFailure(err: unknown, method?: PortabilityMethod): unknown {
    const cls = classifyApiError(err, method);
    switch (cls.kind) {
      case 'transient':
        return err;
      case 'one-time-exhausted':
        return new StepFailed({ code: 'ONE_TIME_CONSENT_USED', message: 'This one-time authorization was already used for this data: the user must consent again' });
      case 'time-based-cooldown':
        return new StepFailed({
          code: 'TIME_BASED_COOLDOWN',
          message: `Google allows one export of this data per 24 hours${cls.retryAt ? `; the next is possible after ${cls.retryAt}` : ''}`,
          ...(cls.retryAt ? { retryAt: cls.retryAt } : {}),
        });
      case 'not-authorized':
        return new StepFailed({ code: 'RESOURCE_NOT_AUTHORIZED', message: 'The user did not grant access to this data' });
      case 'unauthenticated':
        return new ConsentRevokedError();
      case 'already-exists':
      case 'invalid':
        if (method === 'retry') {
          // Google will not retry this job again (its retries are used up, or it is no longer FAILED).
          return new StepFailed({ code: 'ARCHIVE_FAILED', message: `Google could not prepare the archive and refused another retry: ${errorDetail(err)}` });
        }
        return new StepFailed({ code: 'INVALID_REQUEST', message: `Google refused the request: ${errorDetail(err)}` });
    }
  }

  /** CAS on the job, then the effects. Returns false when the job had moved on (nothing done). */
  private async apply(job: Job, event: JobEvent): Promise<boolean> {
    let effects: ReturnType<typeof transition>['effects'] = [];
    const updated = await this.deps.store.updateJob(job.id, (current) => {
      if (current.seq !== job.seq || !canApply(current, event.type)) return undefined;
      const t = transition(current, event, this.now(), this.deps.policy);
      effects = t.effects;
      return t.job;
    });
    if (!updated) return false;
    for (const effect of effects) {
      await this.deps.queue.enqueue({ step: effect.step, jobId: job.id, seq: updated.after.seq, delaySeconds: effect.delaySeconds });
    }
    this.deps.logger.info({ jobId: job.id, exportId: job.exportId, resource: job.resource, event: event.type, state: updated.after.state }, 'job state changed');
    if (isTerminal(updated.after.state) && this.deps.onJobFinished) {
      // The job's own outcome is committed; a failed notification is repaired when the next run reads the job.
      await this.deps.onJobFinished(updated.after).catch((err: unknown) =>
        this.deps.logger.warn({ jobId: job.id, err }, 'could not report the finished job to its schedule'),
      );
    }
    return true;
  }
}

function errorDetail(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
