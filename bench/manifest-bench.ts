/**
 * 12: bytes read to build an archive's manifest, beside the archive's size (what reading it whole
 * would cost), for sparse archives of 1 GiB and over 4 GiB (Zip64). The reader is the production
 * one (adapters/cloud-storage-archive-reader.ts) through @google-cloud/storage against the Cloud
 * Storage stand-in, which counts the bytes it served. What it must read grows with the number of
 * entries (about 100-130 bytes each in the central directory), not with the archive's size: the
 * last row shows a 1 GiB archive of 70,000 small entries.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { CloudStorageArchiveReader } from '../functions/src/adapters/cloud-storage-archive-reader';
import { startGcsServer } from '../local-stack/gcs-server';
import { writeSparseZipArchive } from '../local-stack/sparse-zip-archive';
import type { BenchRow, Log } from './bench-types';

export interface ManifestBenchCase {
  mib: number;
  entries: number;
  /** Judged against the goal (< 0.1 % of the archive); otherwise shown for scale. */
  judged: boolean;
}

export const MANIFEST_CASES: ManifestBenchCase[] = [
  { mib: 1024, entries: 2000, judged: true },
  { mib: 4608, entries: 9000, judged: true },
  { mib: 1024, entries: 70_000, judged: false },
];

const GOAL = 0.001;
const fmtBytes = (n: number): string => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

export async function runManifestBench(opts: { cases: ManifestBenchCase[]; log: Log }): Promise<BenchRow[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-manifest-'));
  const gcs = await startGcsServer();
  const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-bench-manifest' });
  await storage.bucket('bench-manifests').create();
  const rows: BenchRow[] = [];
  try {
    for (const [i, c] of opts.cases.entries()) {
      const file = path.join(dir, `archive-${i}.zip`);
      const zip = await writeSparseZipArchive(file, { approxBytes: c.mib * 2 ** 20, bulkEntries: c.entries, resource: 'myactivity.search' });
      const name = `u/e/myactivity.search/archive-${i}.zip`;
      gcs.adoptFile('bench-manifests', name, file, { size: zip.size, crc32c: 'AAAAAA==' });
      const listing = await new CloudStorageArchiveReader(storage).list({ bucket: 'bench-manifests', name, size: zip.size, crc32c: 'AAAAAA==' });
      if (listing.entries.length !== zip.entries || listing.zip64 !== zip.zip64 || !listing.archiveBrowser || !('json' in listing.archiveBrowser)) {
        throw new Error(`manifest bench: listed ${listing.entries.length} of ${zip.entries} entries (zip64 ${listing.zip64}, index ${JSON.stringify(listing.archiveBrowser && 'error' in listing.archiveBrowser ? listing.archiveBrowser.error : 'ok')})`);
      }
      const served = gcs.servedOf('bench-manifests', name);
      const ratio = served.bytes / zip.size;
      opts.log(`  ${fmtBytes(zip.size)}, ${zip.entries} entries: ${served.bytes} bytes in ${served.requests} reads (directory ${zip.centralDirectoryBytes} bytes)`);
      rows.push({
        bench: '12 manifest reads',
        name: `manifest of a ${fmtBytes(zip.size)} archive, ${zip.entries.toLocaleString('en')} entries${zip.zip64 ? ', Zip64' : ''}`,
        value: `${served.bytes.toLocaleString('en')} bytes in ${served.requests} ranged reads (${(ratio * 100).toFixed(4)} %)`,
        baseline: `${zip.size.toLocaleString('en')} bytes (the whole archive)`,
        ratio,
        ...(c.judged ? { goal: '< 0.1 % of the archive', pass: ratio < GOAL } : { goal: 'shown for scale: grows with entries' }),
      });
      await rm(file, { force: true });
    }
  } finally {
    await gcs.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
