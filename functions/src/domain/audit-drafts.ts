/**
 * The facts the audit trail records, one builder per kind (domain/audit.ts). Each draft's id is
 * derived from what happened, so a fact written twice (a retried transaction, a redelivered
 * step) is one entry. No token, code, URL or user id goes in: archives are named inside the
 * user's prefix.
 */
import { randomBytes } from 'node:crypto';
import { auditDraftId as idOf, nameInsideUser, type AuditDetails, type AuditDraft } from './audit';
import type { ExportRecord, ExportState, Grant, Job } from './model';

const iso = (ms: number): string => new Date(ms).toISOString();

export function consentGranted(grant: Grant, at: number): AuditDraft {
  const details: AuditDetails = {
    resources: [...grant.resources].sort(),
    oneTimeResources: [...grant.oneTimeResources].sort(),
    timeBasedResources: [...grant.timeBasedResources].sort(),
    ...(grant.expiresAt !== undefined ? { expiresAt: iso(grant.expiresAt) } : {}),
  };
  return { id: idOf('consent.granted', grant.userId, at), kind: 'consent.granted', at, details };
}

/** `by`: the person withdrew it (authorization.reset), or Google ended it (expired or revoked there). */
export function consentRevoked(grant: Pick<Grant, 'userId' | 'resources'>, at: number, by: 'user' | 'google'): AuditDraft {
  return { id: idOf('consent.revoked', grant.userId, at, by), kind: 'consent.revoked', at, details: { resources: [...grant.resources].sort(), by } };
}

export function exportStarted(record: ExportRecord): AuditDraft {
  const details: AuditDetails = { exportId: record.id, resources: record.resources, ...(record.scheduleId ? { scheduleId: record.scheduleId, run: record.run ?? 0 } : {}) };
  return { id: idOf('export.started', record.id), kind: 'export.started', at: record.createdAt, details };
}

export function exportFinished(record: ExportRecord, state: ExportState, at: number): AuditDraft {
  return { id: idOf('export.finished', record.id, state), kind: 'export.finished', at, details: { exportId: record.id, state } };
}

/** A job that SUCCEEDED: what it put in the bucket. */
export function archivesCopied(job: Job): AuditDraft {
  const archives = job.archives.map((a) => ({ name: nameInsideUser(a.name), size: a.size, crc32c: a.crc32c, ...(a.md5Hash ? { md5: a.md5Hash } : {}) }));
  return { id: idOf('archives.copied', job.id), kind: 'archives.copied', at: job.finishedAt ?? job.updatedAt, details: { exportId: job.exportId, jobId: job.id, resource: job.resource, archives } };
}

/**
 * Every link is its own fact (two links in one second are two entries): the id is random. Only
 * the owner is ever issued one (the trail is theirs); `origin` says through which frontend (the
 * request's Origin; none from a non-browser caller).
 */
export function downloadIssued(job: Job, index: number, issuedAt: number, expiresAt: number, origin?: string): AuditDraft {
  const archive = job.archives[index];
  return {
    id: idOf('download.issued', randomBytes(16).toString('hex')),
    kind: 'download.issued',
    at: issuedAt,
    details: { exportId: job.exportId, jobId: job.id, archive: index, name: archive ? nameInsideUser(archive.name) : '', origin: origin ?? null, expiresAt: iso(expiresAt) },
  };
}

export function exportDeleted(exportId: string, objects: number, at: number): AuditDraft {
  return { id: idOf('export.deleted', exportId), kind: 'export.deleted', at, details: { exportId, objects } };
}

/** The erasure of everything of a user: what was removed, by count. */
/** `requestedAt` names the erasure: a delivery that records it again writes the same draft. */
export function userErased(userId: string, removed: Record<string, number>, at: number, requestedAt = at): AuditDraft {
  return { id: idOf('user.erased', userId, requestedAt), kind: 'user.erased', at, details: { removed } };
}
