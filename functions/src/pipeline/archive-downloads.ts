/**
 * Download links for the person the data belongs to: a short-lived signed URL of one archive of
 * one of their SUCCEEDED jobs. Nothing is issued for another user's export (it answers like a
 * missing one), a job that has not succeeded, or an archive it does not have.
 */
import type { DownloadSigner } from '../domain/ports/download-signer';
import type { ExportStore } from '../domain/ports/export-store';
import type { Logger } from '../logging';
import { downloadIssued } from '../domain/audit-drafts';
import { ownSucceededArchive } from './archive-ownership';
import type { AuditTrail } from './audit-trail';

export interface ArchiveDownloadsDeps {
  store: Pick<ExportStore, 'getExport' | 'getJob'>;
  /** Made on first use: only a download loads the signing client. */
  signer: () => Promise<DownloadSigner>;
  /** How long a link stays valid (DOWNLOAD_URL_TTL_SECONDS). */
  ttlSeconds: number;
  logger: Logger;
  now?: () => number;
  /** Records each link issued (before the link is answered: no link without its record). */
  audit?: Pick<AuditTrail, 'record'>;
}

export interface DownloadLink {
  url: string;
  expiresAt: string;
}

export class ArchiveDownloads {
  private readonly now: () => number;

  constructor(private readonly deps: ArchiveDownloadsDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** A link to archive `index` (0-based, the order of the job's `archives`) of this user's job. */
  async issue(userId: string, exportId: string, jobId: string, index: number, caller: { origin?: string } = {}): Promise<DownloadLink> {
    const { job, archive } = await ownSucceededArchive(this.deps.store, userId, exportId, jobId, index, 'download links');
    // Whole seconds, as the signature carries them.
    const issuedAt = Math.floor(this.now() / 1000) * 1000;
    const expiresAt = issuedAt + this.deps.ttlSeconds * 1000;
    const url = await (await this.deps.signer()).signedReadUrl({ bucket: archive.bucket, name: archive.name }, issuedAt, expiresAt);
    // At the moment of issue (not the signature's whole second): the trail orders by it.
    await this.deps.audit?.record(userId, [downloadIssued(job, index, this.now(), expiresAt, caller.origin)]);
    // The URL itself is a credential: only the facts of its issue are logged.
    this.deps.logger.info({ userId, exportId, jobId, archive: index, expiresAt: new Date(expiresAt).toISOString() }, 'download link issued');
    return { url, expiresAt: new Date(expiresAt).toISOString() };
  }
}
