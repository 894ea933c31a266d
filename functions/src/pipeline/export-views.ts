/** What the API answers for an export and its jobs: the stored records, shaped for callers (ISO times, no internals). */
import { attemptsOf } from '../domain/job';
import type { ExportRecord, ExportState, Job, StoredArchive } from '../domain/model';
import { DAY_MS } from '../domain/durations';

export interface ExportView {
  exportId: string;
  state: ExportState;
  resources: string[];
  startTime?: string;
  endTime?: string;
  createdAt: string;
  updatedAt: string;
  jobs: JobView[];
  /** Set on the exports a schedule started. */
  scheduleId?: string;
  run?: number;
  /** Across the jobs: archives with a manifest, their entries, and the jobs' warnings (set once any job has a manifest or a warning). */
  manifests?: { archives: number; entries: number; warnings: number };
}

export interface JobView {
  jobId: string;
  resource: string;
  state: Job['state'];
  attempts: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  exportTime?: string;
  bytesCopied?: number;
  /** While copying, when known: the size of all the job's archives. */
  bytesTotal?: number;
  archives?: ArchiveView[];
  error?: Job['error'];
  /** What the archives' manifests found: Google marked a service incomplete, an archive is not a zip or is damaged. */
  warnings?: Job['warnings'];
  /** Each archive with a manifest (`GET …/archives/{n}/manifest`) and its entry count. */
  manifests?: Job['manifests'];
  /** Scheduled runs: `incremental` (since the previous run's exportTime) or `full` (the group has no time filter). */
  window?: Job['window'];
}

/** A stored archive, and when the bucket's retention deletes it (RFC 3339). */
export type ArchiveView = StoredArchive & { expiresAt: string };

/** ARCHIVE_RETENTION_DAYS' default (config.ts), for views made without a configuration. */
export const DEFAULT_ARCHIVE_RETENTION_DAYS = 30;

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * What the API answers for a job (JSON drops the fields left undefined). An archive expires
 * `archiveDays` after its job finished: the bucket's lifecycle rule deletes objects at that age
 * (counted from the object's creation, at most the copy's duration before the job finished).
 */
export function toJobView(job: Job, archiveDays = DEFAULT_ARCHIVE_RETENTION_DAYS): JobView {
  const expiresAt = iso((job.finishedAt ?? job.updatedAt) + archiveDays * DAY_MS);
  return {
    jobId: job.id,
    resource: job.resource,
    state: job.state,
    attempts: attemptsOf(job),
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    ...(job.finishedAt !== undefined ? { finishedAt: iso(job.finishedAt) } : {}),
    exportTime: job.exportTime,
    ...(job.state === 'COPYING' ? { bytesCopied: job.bytesCopied, bytesTotal: job.bytesTotal } : {}),
    ...(job.state === 'SUCCEEDED' ? { archives: job.archives.map((a) => ({ ...a, expiresAt })), manifests: job.manifests } : {}),
    error: job.error,
    ...(job.warnings?.length ? { warnings: job.warnings } : {}),
    window: job.window,
  };
}

export function toExportView(record: ExportRecord, jobs: Job[], archiveDays = DEFAULT_ARCHIVE_RETENTION_DAYS): ExportView {
  return {
    exportId: record.id,
    state: record.state,
    resources: record.resources,
    startTime: record.startTime,
    endTime: record.endTime,
    createdAt: iso(record.createdAt),
    updatedAt: iso(Math.max(record.updatedAt, ...jobs.map((j) => j.updatedAt))),
    jobs: jobs.map((j) => toJobView(j, archiveDays)),
    ...(record.scheduleId ? { scheduleId: record.scheduleId, run: record.run } : {}),
    ...manifestTotals(jobs),
  };
}

function manifestTotals(jobs: Job[]): Pick<ExportView, 'manifests'> {
  const counts = jobs.flatMap((j) => (j.state === 'SUCCEEDED' ? (j.manifests ?? []) : []));
  const warnings = jobs.reduce((n, j) => n + (j.warnings?.length ?? 0), 0);
  if (counts.length === 0 && warnings === 0) return {};
  return { manifests: { archives: counts.length, entries: counts.reduce((n, m) => n + m.entries, 0), warnings } };
}
