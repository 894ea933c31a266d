/**
 * The copy steps of a job: 'copy' streams each signed-URL archive into the bucket (resuming an
 * upload session, handing over to a fresh task when its time slice ends, composing an archive
 * copied in parts), and 'copy-part' copies one byte range of a large archive. Every change of the
 * job goes through the state machine (JobTransitions); this module does the copying around it.
 */
import { jobObjectPrefix, archiveObjectName } from '../domain/object-names';
import { partRanges } from '../domain/archive-parts';
import { isTerminal, missingParts, type JobEvent } from '../domain/job';
import type { CopyPartsPlan, Job, StoredArchive } from '../domain/model';
import { ArchiveNeedsPartsError, ArchivePartsMissingError, ArchiveRejectedError, ArchiveUrlExpiredError, CopyInterruptedError } from '../domain/errors';
import { COPY_RETRIES, DATA_RETENTION_MS } from '../domain/retry-policies';
import type { ArchiveCopier, CopyCheckpoint, PartedSource } from '../domain/ports/archive-copier';
import type { ExportStore } from '../domain/ports/export-store';
import type { PortabilityApi } from '../domain/ports/portability-api';
import type { SecretCipher } from '../domain/ports/secret-cipher';
import type { Logger } from '../logging';
import { quotaUserOf, type AccessTokens } from './access-tokens';
import type { ArchiveIndexing } from './archive-indexing';
import type { JobTransitions } from './job-transitions';
import { StepFailed, toStepFailure } from './step-failure';
import type { TaskOutcome } from './task-outcome';

const PROGRESS_INTERVAL_MS = 1000;

export interface CopyStepDeps {
  store: Pick<ExportStore, 'getJob'>;
  jobs: JobTransitions;
  api: PortabilityApi;
  tokens: AccessTokens;
  /** Made on first use. */
  copier: () => Promise<ArchiveCopier>;
  /** Encrypts the upload session kept on the job. */
  cipher: SecretCipher;
  /** How long one invocation copies before a new task continues (below Cloud Tasks' 30-minute deadline). */
  copySliceSeconds: number;
  copyChunkBytes: number;
  /** Archives of at least `minBytes` (that declare a CRC32C) are copied as `parts` byte ranges; unset, every archive is one stream. */
  parallelCopy?: { minBytes: number; parts: number };
  /** Lists each copied archive into its manifest (unset: no manifests). */
  indexing?: Pick<ArchiveIndexing, 'index'>;
  logger: Logger;
  now: () => number;
}

type PartedCopier = Required<Pick<ArchiveCopier, 'copyPart' | 'composeParts'>>;

/** The archives' signed URLs, fetched again when one has expired (they live about 6 hours). */
interface SignedUrls {
  current: string[];
  refresh(): Promise<void>;
}

const dropped = (detail: string): TaskOutcome => ({ kind: 'dropped', detail });
const MOVED_ON = dropped('job moved on during the copy');

export class CopyStep {
  constructor(private readonly deps: CopyStepDeps) {}

  async copy(job: Job, redelivery?: number): Promise<TaskOutcome> {
    this.checkRetention(job);
    const urls = await this.signedUrls(job);
    const copier = await this.deps.copier();
    const parted = this.partedCopier(copier);
    // One invocation copies for at most a slice of time, then hands over to a fresh task.
    const deadline = new AbortController();
    const sliceTimer = setTimeout(() => deadline.abort(), this.deps.copySliceSeconds * 1000);
    // Aborted when a progress write finds the job no longer copying (revoked, cancelled, moved on).
    const ended = new AbortController();
    const signal = AbortSignal.any([deadline.signal, ended.signal]);
    const count = urls.current.length;
    const archives: StoredArchive[] = [...(job.copy?.done ?? [])];
    let progressWrite: Promise<void> = Promise.resolve();
    try {
      let checkpoint: CopyCheckpoint | undefined =
        job.copy?.session && job.copy.session.archive === archives.length
          ? (JSON.parse(await this.deps.cipher.decrypt(job.copy.session.checkpoint, job.id)) as CopyCheckpoint)
          : undefined;
      // The archive under way is being copied in parts: its tasks finish it, or this step composes it.
      let plan = parted && job.copy?.parts?.archive === archives.length ? job.copy.parts : undefined;
      let doneBytes = archives.reduce((n, a) => n + a.size, 0);
      if (job.bytesTotal === undefined) await this.measureTotal(job, copier, urls.current);
      let lastProgressAt = 0;
      for (let i = archives.length; i < count; i++) {
        let stored: StoredArchive;
        if (plan && parted) {
          if (missingParts(plan).length > 0) return await this.planParts(job, archives, plan, redelivery);
          const composed = await this.composeParts(job, parted, plan, count, archives, redelivery);
          if ('kind' in composed) return composed;
          stored = composed;
          plan = undefined;
        } else {
          const onProgress = (bytes: number): void => {
            const t = this.deps.now();
            if (t - lastProgressAt < PROGRESS_INTERVAL_MS) return;
            lastProgressAt = t;
            progressWrite = progressWrite
              .then(async () => {
                if (!(await this.commit(job, { type: 'copy-progress', bytesCopied: doneBytes + bytes }))) ended.abort();
              })
              .catch(() => undefined);
          };
          const stop = (err: unknown): boolean => err instanceof ArchiveNeedsPartsError || (err instanceof CopyInterruptedError && signal.aborted);
          stored = await this.withCopyRetries(job, i, undefined, urls, stop, (url) =>
            copier.copy(url, archiveObjectName(job, i, count), onProgress, {
              checkpoint,
              onCheckpoint: async (cp) => {
                checkpoint = cp;
                await this.commit(job, { type: 'copy-saved', copy: { done: archives, session: { archive: i, checkpoint: await this.deps.cipher.encrypt(JSON.stringify(cp), job.id) } } });
              },
              signal,
              chunkSize: this.deps.copyChunkBytes,
              partsFrom: parted ? this.deps.parallelCopy?.minBytes : undefined,
            }),
          );
          checkpoint = undefined;
        }
        archives.push(stored);
        doneBytes += stored.size;
        if (i + 1 < count) await this.commit(job, { type: 'copy-saved', copy: { done: archives } });
      }
      await progressWrite;
      await this.indexArchives(job, archives);
      if (!(await this.commit(job, { type: 'copied', archives }))) return await this.abandonCopy(job);
      return { kind: 'done', detail: `copied ${archives.length} archive(s)` };
    } catch (err) {
      if (err instanceof ArchiveNeedsPartsError && this.deps.parallelCopy) {
        await progressWrite;
        return await this.planParts(job, archives, this.newPlan(job, archives.length, err.source, this.deps.parallelCopy.parts), redelivery);
      }
      if (err instanceof CopyInterruptedError && ended.signal.aborted) return await this.abandonCopy(job);
      if (err instanceof CopyInterruptedError && deadline.signal.aborted) {
        await progressWrite;
        return await this.continueCopy(job);
      }
      throw err;
    } finally {
      clearTimeout(sliceTimer);
    }
  }

  /**
   * One byte range of the archive under way. After the copy, its index joins the plan's `done` in a
   * compare-and-set; the delivery that completes the set moves the job to the next seq and enqueues
   * a 'copy' task, which composes (so composing and what follows live in one place, the copy step).
   */
  async copyPart(job: Job, part: number | undefined): Promise<TaskOutcome> {
    const plan = job.copy?.parts;
    const parted = this.partedCopier(await this.deps.copier());
    if (!plan || !parted || part === undefined || !Number.isInteger(part) || part < 0 || part >= plan.count) {
      return dropped('no such part in the job’s copy plan');
    }
    if (plan.done.includes(part)) return dropped(`part ${part + 1} of ${plan.count} already copied`);
    this.checkRetention(job);
    const urls = await this.signedUrls(job);
    await this.withCopyRetries(job, plan.archive, part, urls, () => false, (url) =>
      parted.copyPart(url, archiveObjectName(job, plan.archive, urls.current.length), part, plan.count, plan.size),
    );
    const recorded = await this.deps.jobs.apply(job.id, { type: 'part-copied', archive: plan.archive, count: plan.count, part }, { seq: job.seq });
    if (!recorded.applied) {
      if (recorded.current && isTerminal(recorded.current.state)) return this.abandonCopy(job);
      return dropped(`part ${part + 1} copied, but the job moved on (or another delivery recorded it)`);
    }
    if (recorded.job.seq === job.seq) return { kind: 'done', detail: `part ${part + 1} of ${plan.count} copied` };
    this.deps.logger.info({ jobId: job.id, archive: plan.archive + 1, parts: plan.count }, 'every part copied; composing in a copy task');
    return { kind: 'done', detail: `part ${part + 1} of ${plan.count} copied, the last one: compose enqueued` };
  }

  /**
   * The copy retries of one invocation, for a whole archive or one part: fresh URLs when the
   * signed URL expired, a few resumes after a dropped connection or a 5xx (the upload session
   * keeps what was committed); then the error goes up to Cloud Tasks' retry. `stop` lets the
   * caller take errors that are not failures (a deadline, an archive to copy in parts).
   */
  private async withCopyRetries<T>(job: Job, archive: number, part: number | undefined, urls: SignedUrls, stop: (err: unknown) => boolean, attempt: (url: string) => Promise<T>): Promise<T> {
    const where = { jobId: job.id, archive: archive + 1, part: part === undefined ? undefined : part + 1 };
    let refreshes = 0;
    let interruptions = 0;
    for (;;) {
      try {
        const url = urls.current[archive];
        if (url === undefined) throw new StepFailed({ code: 'COPY_FAILED', message: 'Google returned fewer archive URLs than before' });
        return await attempt(url);
      } catch (err) {
        if (err instanceof StepFailed || stop(err)) throw err;
        if (err instanceof ArchiveUrlExpiredError && refreshes < COPY_RETRIES.urlRefreshes) {
          refreshes++;
          this.deps.logger.info(where, 'signed URL expired; fetching fresh URLs');
          await urls.refresh();
          continue;
        }
        if (err instanceof ArchiveRejectedError || err instanceof ArchiveUrlExpiredError) throw new StepFailed({ code: 'COPY_FAILED', message: err.message });
        if (interruptions < COPY_RETRIES.interruptions) {
          interruptions++;
          this.deps.logger.warn({ ...where, err }, 'archive copy interrupted; resuming');
          await new Promise((r) => setTimeout(r, COPY_RETRIES.backoffMs * interruptions));
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * Every archive in the bucket gets its manifest before the job SUCCEEDS, so the job's warnings
   * are there when it does. Archives already indexed (a redelivered task) are skipped; one whose
   * event a concurrent delivery already recorded is written again identically and not counted twice.
   */
  private async indexArchives(job: Job, archives: StoredArchive[]): Promise<void> {
    const indexing = this.deps.indexing;
    if (!indexing) return;
    for (const [i, archive] of archives.entries()) {
      if ((job.manifests ?? []).some((m) => m.archive === i)) continue;
      const { entries, warnings } = await indexing.index(job, i, archive);
      await this.commit(job, { type: 'archive-indexed', archive: i, entries, warnings });
    }
  }

  /** A bookkeeping or final event of this copy, at the task's seq; false when the job moved on. */
  /**
   * Asks every URL what its archive weighs (a one-byte ranged GET each), so that people see a share
   * of the whole. Only for the display: a URL that does not answer is the copy's business, not this.
   */
  private async measureTotal(job: Job, copier: ArchiveCopier, urls: string[]): Promise<void> {
    const measure = copier.measure?.bind(copier);
    if (!measure) return;
    try {
      const sizes = await Promise.all(urls.map(async (url) => (await measure(url)).size));
      if (sizes.every((s): s is number => s !== undefined)) await this.commit(job, { type: 'copy-sized', bytesTotal: sizes.reduce((n, s) => n + s, 0) });
    } catch (err) {
      this.deps.logger.warn({ jobId: job.id, reason: err instanceof Error ? err.message : String(err) }, 'archive sizes unknown; progress shows bytes only');
    }
  }

  private async commit(job: Job, event: JobEvent): Promise<boolean> {
    return (await this.deps.jobs.apply(job.id, event, { seq: job.seq })).applied;
  }

  private newPlan(job: Job, archive: number, source: PartedSource, parts: number): CopyPartsPlan {
    const plan: CopyPartsPlan = { archive, count: partRanges(source.size, parts).length, size: source.size, crc32c: source.crc32c, done: [], ...(source.md5 ? { md5: source.md5 } : {}) };
    this.deps.logger.info({ jobId: job.id, archive: archive + 1, bytes: source.size, parts: plan.count }, 'copying a large archive in parts');
    return plan;
  }

  /** Records the plan (no seq bump: the task stays valid) and enqueues one task per part not done yet, extending the copy's lease. */
  private async planParts(job: Job, archives: StoredArchive[], plan: CopyPartsPlan, redelivery?: number): Promise<TaskOutcome> {
    const planned = await this.deps.jobs.apply(job.id, { type: 'parts-planned', done: archives, plan }, { seq: job.seq, redelivery });
    if (!planned.applied) return MOVED_ON;
    return { kind: 'done', detail: `archive ${plan.archive + 1}: ${missingParts(plan).length} of ${plan.count} part task(s) enqueued` };
  }

  /** All parts are in: compose them. Parts found missing are copied again; a composite that differs fails the job. */
  private async composeParts(job: Job, parted: PartedCopier, plan: CopyPartsPlan, count: number, archives: StoredArchive[], redelivery?: number): Promise<StoredArchive | TaskOutcome> {
    try {
      return await parted.composeParts(archiveObjectName(job, plan.archive, count), plan.count, { size: plan.size, crc32c: plan.crc32c, md5: plan.md5 });
    } catch (err) {
      if (err instanceof ArchiveRejectedError) throw new StepFailed({ code: 'COPY_FAILED', message: err.message });
      if (!(err instanceof ArchivePartsMissingError)) throw err;
      this.deps.logger.warn({ jobId: job.id, archive: plan.archive + 1, missing: err.missing.map((p) => p + 1) }, 'archive parts missing at compose; copying them again');
      return this.planParts(job, archives, { ...plan, done: plan.done.filter((p) => !err.missing.includes(p)) }, redelivery);
    }
  }

  /** The slice is over: a new copy task (next seq) resumes from the saved session. */
  private async continueCopy(job: Job): Promise<TaskOutcome> {
    const handed = await this.deps.jobs.apply(job.id, { type: 'slice-ended' }, { seq: job.seq });
    if (!handed.applied) return MOVED_ON;
    this.deps.logger.info({ jobId: job.id, bytesCopied: handed.job.bytesCopied }, 'copy slice ended; continuing in a new task');
    return { kind: 'done', detail: 'copy continues in the next task' };
  }

  /**
   * A write of this step found the job moved on. Unless it ended otherwise than SUCCEEDED, the
   * objects stay: a job still COPYING is carried on by a newer task (a duplicate delivery handed
   * over at its slice deadline) that needs the archives already copied. A job that ended otherwise
   * shows none of its archives, so none may stay: remove what its copies wrote.
   */
  private async abandonCopy(job: Job): Promise<TaskOutcome> {
    const current = await this.deps.store.getJob(job.id);
    if (current?.state === 'SUCCEEDED') return dropped('another delivery finished the copy');
    if (current && !isTerminal(current.state)) return MOVED_ON;
    const removed = await (await this.deps.copier()).deletePrefix(jobObjectPrefix(job));
    this.deps.logger.info({ jobId: job.id, state: current?.state, removed }, 'job ended during its copy; its objects were removed');
    return dropped(`job ended (${current?.state ?? 'gone'}) during the copy`);
  }

  private checkRetention(job: Job): void {
    if (job.readyAt !== undefined && this.deps.now() > job.readyAt + DATA_RETENTION_MS) {
      throw new StepFailed({ code: 'DATA_EXPIRED', message: 'The archive was not copied within the 14 days Google keeps it' });
    }
  }

  /** The signed URLs (they expire within hours): getState of the job's completed archive job, again on refresh. */
  private async signedUrls(job: Job): Promise<SignedUrls> {
    const token = await this.deps.tokens.forUser(job.userId);
    const fetchUrls = async (): Promise<string[]> => {
      try {
        const s = await this.deps.api.getState(token, job.archiveJobId as string, quotaUserOf(job.userId));
        if (s.state !== 'COMPLETE' || s.urls.length === 0) throw new StepFailed({ code: 'COPY_FAILED', message: `The archive is no longer available (state ${s.state})` });
        return s.urls;
      } catch (err) {
        throw err instanceof StepFailed ? err : toStepFailure(err, 'getState');
      }
    };
    const urls: SignedUrls = { current: await fetchUrls(), refresh: async () => void (urls.current = await fetchUrls()) };
    return urls;
  }

  /** The copier's ranged pieces, when copying in parts is configured and the copier has them. */
  private partedCopier(copier: ArchiveCopier): PartedCopier | undefined {
    if (!this.deps.parallelCopy || typeof copier.copyPart !== 'function' || typeof copier.composeParts !== 'function') return undefined;
    return { copyPart: copier.copyPart.bind(copier), composeParts: copier.composeParts.bind(copier) };
  }
}
