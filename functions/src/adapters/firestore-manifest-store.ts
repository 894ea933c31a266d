/**
 * Manifests in Firestore: `manifests/{jobId}_{n}` holds one archive's summary (counts, folder
 * totals, Google's services, warnings) and `manifests/{jobId}_{n}/pages/{k}` its entries, split so
 * each document stays under Firestore's 1 MiB (domain/archive-manifest.ts). Every document carries
 * `userKey` (userDocId of the owner, never the user id itself) and `exportId`, so erasure and
 * export deletion find them by query.
 */
import type { Firestore } from '@google-cloud/firestore';
import type { ManifestEntry } from '../domain/archive-manifest';
import type { ArchiveManifest, ManifestStore } from '../domain/ports/manifest-store';
import { contended, runQuery, type QuerySpec } from './firestore-client';
import { paths, userDocId } from './firestore-paths';

/** Pages per write batch: a commit request stays well under Firestore's 10 MiB. */
const PAGES_PER_BATCH = 8;

export const manifestStoreQueries = {
  manifestsOfExport: (exportId: string): QuerySpec => ({ collection: 'manifests', where: [['exportId', '==', exportId]], select: [] }),
};

interface PageDoc {
  userKey: string;
  exportId: string;
  page: number;
  entries: ManifestEntry[];
}

export class FirestoreManifestStore implements ManifestStore {
  constructor(private readonly db: Firestore) {}

  async save(userId: string, manifest: ArchiveManifest, pages: ManifestEntry[][]): Promise<void> {
    const userKey = userDocId(userId);
    const doc = this.db.doc(paths.manifest(manifest.jobId, manifest.archive));
    // Pages first, the summary last (in the last batch): a reader finds a summary only when all its
    // pages are there. The same archive is always listed into the same pages (a job's archive never
    // changes once copied), so a second write overwrites every page and leaves none behind.
    for (let from = 0; from < pages.length; from += PAGES_PER_BATCH) {
      await contended(() => {
        const batch = this.db.batch();
        pages.slice(from, from + PAGES_PER_BATCH).forEach((entries, i) => {
          const page: PageDoc = { userKey, exportId: manifest.exportId, page: from + i, entries };
          batch.set(doc.collection('pages').doc(String(from + i)), page);
        });
        if (from + PAGES_PER_BATCH >= pages.length) batch.set(doc, { ...manifest, pages: pages.length, userKey });
        return batch.commit();
      });
    }
  }

  async get(jobId: string, archive: number): Promise<ArchiveManifest | undefined> {
    const snap = await this.db.doc(paths.manifest(jobId, archive)).get();
    if (!snap.exists) return undefined;
    const { userKey: _userKey, ...manifest } = snap.data() as ArchiveManifest & { userKey: string };
    return manifest;
  }

  async page(jobId: string, archive: number, page: number): Promise<ManifestEntry[] | undefined> {
    const snap = await this.db.doc(`${paths.manifest(jobId, archive)}/pages/${page}`).get();
    return snap.exists ? (snap.data() as PageDoc).entries : undefined;
  }

  async deleteOfExport(exportId: string): Promise<number> {
    const docs = await runQuery(this.db, manifestStoreQueries.manifestsOfExport(exportId));
    // recursiveDelete takes the pages with their summary.
    for (const d of docs) await this.db.recursiveDelete(this.db.doc(d.path));
    return docs.length;
  }
}
