/** The seam to where archives' manifests are kept (Firestore collection `manifests`). */
import type { ManifestEntry, ManifestSummary } from '../archive-manifest';
import type { JobWarning, StoredArchive } from '../model';

/** One archive's manifest without its entries (those are read page by page). */
export interface ArchiveManifest extends ManifestSummary {
  jobId: string;
  exportId: string;
  /** 0-based, the order of the job's archives. */
  archive: number;
  object: Pick<StoredArchive, 'bucket' | 'name' | 'size' | 'crc32c'>;
  warnings: JobWarning[];
  /** What listing the archive cost (ranged reads of the stored object). */
  bytesRead: number;
  /** epoch ms */
  builtAt: number;
}

export interface ManifestStore {
  /** Writes the manifest of this user's archive (its pages, then the summary); the same manifest again overwrites it. */
  save(userId: string, manifest: ArchiveManifest, pages: ManifestEntry[][]): Promise<void>;
  get(jobId: string, archive: number): Promise<ArchiveManifest | undefined>;
  /** Page `page` (0-based) of the entries; undefined past the last. */
  page(jobId: string, archive: number, page: number): Promise<ManifestEntry[] | undefined>;
  /** Removes the manifests of every archive of the export; how many. */
  deleteOfExport(exportId: string): Promise<number>;
}
