/**
 * The deletion of an export with everything it left behind, for one verified caller; another
 * user's export answers exactly like a missing one.
 */
import { conflict, notFound, RequestError } from '../domain/errors';
import { isTerminal } from '../domain/job';
import type { ArchiveBucket } from '../domain/ports/archive-copier';
import type { ExportStore, HousekeepingStore } from '../domain/ports/export-store';
import type { ManifestStore } from '../domain/ports/manifest-store';
import type { Logger } from '../logging';
import { ID_PATTERN } from '../domain/ids';
import { exportDeleted } from '../domain/audit-drafts';
import type { AuditTrail } from './audit-trail';

export interface ExportDeletionDeps {
  store: ExportStore & HousekeepingStore;
  /** Made on first use: the API's cold start need not load the Cloud Storage client. */
  archives: () => Promise<ArchiveBucket>;
  /** Cancels the export's jobs that have not reached their archive (ExportService.cancelExport). */
  cancel: (userId: string, exportId: string) => Promise<unknown>;
  /** The archives' manifests, removed with the archives (unset: none are kept). */
  manifests?: () => Promise<Pick<ManifestStore, 'deleteOfExport'>>;
  logger: Logger;
  /** Seals the deletion's audit entry after its commit. */
  audit?: Pick<AuditTrail, 'sealAfterCommit'>;
  now?: () => number;
}

/**
 * DELETE /v1/exports/{id}: cancels what is still running at Google first, refuses (409) while a
 * copy is writing into the bucket, then removes the archives under `{user}/{exportId}/`, their
 * manifests, the jobs, the idempotency records and the export. Each step is idempotent: a failure midway leaves
 * the export listed, and sending DELETE again finishes the work.
 */
export class ExportDeletion {
  constructor(private readonly deps: ExportDeletionDeps) {}

  async delete(userId: string, exportId: string): Promise<void> {
    if (!ID_PATTERN.test(exportId)) throw notFound('Export');
    const record = await this.deps.store.getExport(exportId);
    if (!record || record.userId !== userId) throw notFound('Export');
    if (record.state === 'RUNNING') {
      // The export may end between the read above and the cancel's own: then there is nothing to cancel.
      await this.deps.cancel(userId, exportId).catch((err: unknown) => {
        if (!(err instanceof RequestError && err.code === 'EXPORT_FINISHED')) throw err;
      });
    }
    const jobs = await this.deps.store.listJobs(exportId);
    if (jobs.some((j) => !isTerminal(j.state))) {
      throw conflict('EXPORT_BUSY', 'A copy into the bucket is in progress; delete the export again when it has finished');
    }
    // Both ids were validated (the user id by the API, the export id above): the prefix cannot escape.
    const deleted = await (await this.deps.archives()).deletePrefix(`${userId}/${exportId}/`);
    const manifests = this.deps.manifests ? await (await this.deps.manifests()).deleteOfExport(exportId) : 0;
    // The record of the deletion is written with the deletion of the records.
    await this.deps.store.deleteExportRecords(exportId, { userId, drafts: [exportDeleted(exportId, deleted, (this.deps.now ?? Date.now)())] });
    await this.deps.audit?.sealAfterCommit(userId);
    this.deps.logger.info({ userId, exportId, objects: deleted, manifests }, 'export deleted');
  }
}
