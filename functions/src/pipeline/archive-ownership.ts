/**
 * Which archive a caller may reach: one of their own exports (another user's answers exactly like
 * a missing one), a job of it that SUCCEEDED (409 otherwise), and an archive the job has (404).
 * Download links and manifests answer alike.
 */
import { conflict, notFound } from '../domain/errors';
import { ID_PATTERN } from '../domain/ids';
import type { Job, StoredArchive } from '../domain/model';
import type { ExportStore } from '../domain/ports/export-store';

export async function ownSucceededArchive(
  store: Pick<ExportStore, 'getExport' | 'getJob'>,
  userId: string,
  exportId: string,
  jobId: string,
  index: number,
  what: string,
): Promise<{ job: Job; archive: StoredArchive }> {
  if (!ID_PATTERN.test(exportId)) throw notFound('Export');
  const record = await store.getExport(exportId);
  if (!record || record.userId !== userId) throw notFound('Export');
  const job = ID_PATTERN.test(jobId) ? await store.getJob(jobId) : undefined;
  if (!job || job.exportId !== exportId || job.userId !== userId) throw notFound('Job');
  if (job.state !== 'SUCCEEDED') throw conflict('JOB_NOT_SUCCEEDED', `Only a SUCCEEDED job's archives have ${what}; this job is ${job.state}`);
  const archive = job.archives[index];
  if (!archive) throw notFound(`Archive ${index} (the job has ${job.archives.length}, numbered from 0)`);
  return { job, archive };
}
