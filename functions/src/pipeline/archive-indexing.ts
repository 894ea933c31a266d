/**
 * The manifest of one copied archive: its zip central directory read by range from the bucket,
 * Google's `Portability/archive_browser.json` when it holds one, stored in `manifests`, and the
 * warnings its job should carry. A damaged or non-zip archive is a warning, never a failed copy:
 * the bytes were copied and verified against Google's checksums, and are the user's as they are.
 * Anything else (storage unavailable) is thrown, and the copy task is delivered again.
 */
import { crc32Hex, folderTotals, pagesOf, parseArchiveBrowser, serviceWarnings, type ManifestEntry, type ManifestSummary } from '../domain/archive-manifest';
import { ArchiveFormatError } from '../domain/errors';
import type { Job, JobWarning, StoredArchive } from '../domain/model';
import type { ArchiveReader } from '../domain/ports/archive-reader';
import type { ArchiveManifest, ManifestStore } from '../domain/ports/manifest-store';
import type { Logger } from '../logging';

export interface ArchiveIndexingDeps {
  /** Made on first use. */
  reader: () => Promise<ArchiveReader>;
  manifests: () => Promise<ManifestStore>;
  logger: Logger;
  now: () => number;
}

export interface Indexed {
  entries: number;
  warnings: JobWarning[];
}

export class ArchiveIndexing {
  constructor(private readonly deps: ArchiveIndexingDeps) {}

  async index(job: Job, archive: number, stored: StoredArchive): Promise<Indexed> {
    const where = { jobId: job.id, archive: archive + 1 };
    const summary: ManifestSummary = { entries: 0, files: 0, size: 0, compressedSize: 0, zip64: false, folders: [], pages: 1 };
    let entries: ManifestEntry[] = [];
    let warnings: JobWarning[] = [];
    let bytesRead = 0;
    try {
      const listing = await (await this.deps.reader()).list(stored);
      bytesRead = listing.bytesRead;
      entries = listing.entries.map((e) => ({ path: e.path, size: e.size, compressedSize: e.compressedSize, crc32: crc32Hex(e.crc32) }));
      const files = entries.filter((e) => !e.path.endsWith('/'));
      const { folders, truncated } = folderTotals(entries);
      Object.assign(summary, {
        entries: entries.length,
        files: files.length,
        size: files.reduce((n, e) => n + e.size, 0),
        compressedSize: files.reduce((n, e) => n + e.compressedSize, 0),
        zip64: listing.zip64,
        folders,
        ...(truncated ? { foldersTruncated: true } : {}),
      });
      if (listing.archiveBrowser) {
        const browser = 'json' in listing.archiveBrowser ? readIndex(listing.archiveBrowser.json) : undefined;
        if (browser) {
          summary.services = browser.services;
          if (browser.totalSize !== undefined) summary.servicesTotalSize = browser.totalSize;
          warnings = serviceWarnings(archive, browser.services);
        } else {
          const why = 'error' in listing.archiveBrowser ? listing.archiveBrowser.error : 'it is not the index Google writes';
          warnings = [{ code: 'ARCHIVE_BROWSER_UNREADABLE', archive, message: `Archive ${archive + 1}: Google's index (Portability/archive_browser.json) could not be read: ${why}` }];
        }
      }
    } catch (err) {
      if (!(err instanceof ArchiveFormatError)) throw err;
      const message = err.kind === 'NOT_ZIP' ? `Archive ${archive + 1} is not a zip (${err.message})` : `Archive ${archive + 1} is damaged: ${err.message}`;
      warnings = [{ code: err.kind === 'NOT_ZIP' ? 'ARCHIVE_NOT_ZIP' : 'ARCHIVE_DAMAGED', archive, message }];
      this.deps.logger.warn({ ...where, reason: err.message }, 'archive could not be listed; its manifest records why');
    }
    const pages = pagesOf(entries);
    const manifest: ArchiveManifest = {
      ...summary,
      pages: pages.length,
      jobId: job.id,
      exportId: job.exportId,
      archive,
      object: { bucket: stored.bucket, name: stored.name, size: stored.size, crc32c: stored.crc32c },
      warnings,
      bytesRead,
      builtAt: this.deps.now(),
    };
    await (await this.deps.manifests()).save(job.userId, manifest, pages);
    this.deps.logger.info({ ...where, entries: summary.entries, pages: pages.length, bytesRead, warnings: warnings.length }, 'archive manifest stored');
    return { entries: summary.entries, warnings };
  }
}

function readIndex(json: Buffer): ReturnType<typeof parseArchiveBrowser> {
  try {
    return parseArchiveBrowser(JSON.parse(json.toString('utf8')));
  } catch {
    return undefined;
  }
}
