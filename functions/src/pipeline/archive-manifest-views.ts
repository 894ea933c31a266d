/**
 * GET /v1/exports/{exportId}/jobs/{jobId}/archives/{n}/manifest: one archive's manifest for its
 * owner, with one page of its entries. The same checks as download links (archive-ownership.ts);
 * an archive copied before manifests existed has none (404).
 */
import { notFound } from '../domain/errors';
import type { ManifestEntry } from '../domain/archive-manifest';
import type { ExportStore } from '../domain/ports/export-store';
import type { ArchiveManifest, ManifestStore } from '../domain/ports/manifest-store';
import { ownSucceededArchive } from './archive-ownership';

export interface ArchiveManifestViewsDeps {
  store: Pick<ExportStore, 'getExport' | 'getJob'>;
  manifests: () => Promise<Pick<ManifestStore, 'get' | 'page'>>;
}

/** The manifest as the API answers it: the summary, the object, and entries of page `page`. */
export type ManifestView = Omit<ArchiveManifest, 'entries' | 'pages' | 'bytesRead' | 'builtAt' | 'object'> & {
  object: { name: string; size: number; crc32c: string };
  builtAt: string;
  entryCount: number;
  page: number;
  pages: number;
  nextPage?: number;
  entries: ManifestEntry[];
};

export class ArchiveManifestViews {
  constructor(private readonly deps: ArchiveManifestViewsDeps) {}

  async read(userId: string, exportId: string, jobId: string, index: number, page: number): Promise<ManifestView> {
    await ownSucceededArchive(this.deps.store, userId, exportId, jobId, index, 'manifests');
    const store = await this.deps.manifests();
    const manifest = await store.get(jobId, index);
    if (!manifest) throw notFound(`Manifest of archive ${index}`);
    const entries = page < manifest.pages ? await store.page(jobId, index, page) : undefined;
    if (!entries) throw notFound(`Page ${page} of the manifest (it has ${manifest.pages}, numbered from 0)`);
    const { entries: entryCount, pages, bytesRead: _bytesRead, builtAt, object, ...summary } = manifest;
    return {
      ...summary,
      object: { name: object.name, size: object.size, crc32c: object.crc32c },
      builtAt: new Date(builtAt).toISOString(),
      entryCount,
      page,
      pages,
      ...(page + 1 < pages ? { nextPage: page + 1 } : {}),
      entries,
    };
  }
}
