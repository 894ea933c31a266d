/**
 * Abuse limits on starting exports, and the deletion of an export with everything it left behind.
 * Both act for one verified caller; another user's export answers exactly like a missing one.
 */
import { conflict, notFound, RequestError } from '../domain/errors';
import type { HousekeepingStore } from '../domain/housekeeping-store';
import { isTerminal } from '../domain/job';
import type { ArchiveCopier, ExportStore } from '../domain/ports';
import type { Logger } from '../logging';
import { ID_PATTERN } from './export-service';

const DAY_MS = 86_400_000;

export interface ExportLimitsOptions {
  store: HousekeepingStore;
  exportsPerDay: number;
  concurrentExports: number;
  now?: () => number;
}

/**
 * Per user: at most `exportsPerDay` exports started in any 24 hours and `concurrentExports`
 * running at once; beyond either, 429 with Retry-After. A replay of an Idempotency-Key that
 * already created an export is not a new export and is never limited. The check and the creation
 * are not one transaction: two requests racing may both pass by one, which a soft abuse limit
 * tolerates (a transactional counter would serialize every start of a user).
 */
export class ExportLimits {
  private readonly now: () => number;

  constructor(private readonly opts: ExportLimitsOptions) {
    this.now = opts.now ?? Date.now;
  }

  async check(userId: string, idempotencyKey?: string): Promise<void> {
    if (idempotencyKey !== undefined && (await this.opts.store.findIdempotentExport(userId, idempotencyKey))) return;
    const now = this.now();
    const [recent, running] = await Promise.all([
      this.opts.store.exportCreationTimesSince(userId, now - DAY_MS, this.opts.exportsPerDay),
      this.opts.store.countRunningExports(userId),
    ]);
    if (recent.length >= this.opts.exportsPerDay) {
      // The newest `exportsPerDay` fill the window: a slot frees when the oldest of them leaves it.
      const oldest = Math.min(...recent);
      const retryAfter = Math.max(1, Math.ceil((oldest + DAY_MS - now) / 1000));
      throw new RequestError(429, 'DAILY_EXPORT_LIMIT', `At most ${this.opts.exportsPerDay} exports may be started in 24 hours`, undefined, retryAfter);
    }
    if (running >= this.opts.concurrentExports) {
      // When a running export ends cannot be known; polling once a minute is a fair suggestion.
      throw new RequestError(429, 'CONCURRENT_EXPORT_LIMIT', `At most ${this.opts.concurrentExports} exports may run at once`, undefined, 60);
    }
  }
}

export interface ExportDeletionDeps {
  store: ExportStore & HousekeepingStore;
  /** Made on first use: the API's cold start need not load the Cloud Storage client. */
  copier: () => Promise<ArchiveCopier>;
  /** Cancels the export's jobs that have not reached their archive (ExportService.cancelExport). */
  cancel: (userId: string, exportId: string) => Promise<unknown>;
  logger: Logger;
}

/**
 * DELETE /v1/exports/{id}: cancels what is still running at Google first, refuses (409) while a
 * copy is writing into the bucket, then removes the archives under `{user}/{exportId}/`, the
 * jobs, the idempotency records and the export. Each step is idempotent: a failure midway leaves
 * the export listed, and sending DELETE again finishes the work.
 */
export class ExportDeletion {
  constructor(private readonly deps: ExportDeletionDeps) {}

  async delete(userId: string, exportId: string): Promise<void> {
    if (!ID_PATTERN.test(exportId)) throw notFound('Export');
    const record = await this.deps.store.getExport(exportId);
    if (!record || record.userId !== userId) throw notFound('Export');
    if (record.state === 'RUNNING') await this.deps.cancel(userId, exportId);
    const jobs = await this.deps.store.listJobs(exportId);
    if (jobs.some((j) => !isTerminal(j.state))) {
      throw conflict('EXPORT_BUSY', 'A copy into the bucket is in progress; delete the export again when it has finished');
    }
    // Both ids were validated (the user id by the API, the export id above): the prefix cannot escape.
    const deleted = await (await this.deps.copier()).deletePrefix(`${userId}/${exportId}/`);
    await this.deps.store.deleteExportRecords(exportId);
    this.deps.logger.info({ userId, exportId, objects: deleted }, 'export deleted');
  }
}
