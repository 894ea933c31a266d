/**
 * The audit trail's drafts, pure: what each fact records (sorted resource lists, ISO times, names
 * inside the user's prefix, never the user id or a URL) and which facts share an id (written twice,
 * one entry) and which never do (two links, two entries).
 */
import { describe, expect, it } from 'vitest';
import { auditDraftId } from '../../functions/src/domain/audit';
import { archivesCopied, consentGranted, consentRevoked, downloadIssued, exportDeleted, exportFinished, exportStarted, userErased } from '../../functions/src/domain/audit-drafts';
import { newJob } from '../../functions/src/domain/job';
import type { ExportRecord, Grant, Job } from '../../functions/src/domain/model';

const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number): string => new Date(ms).toISOString();
const grant: Grant = {
  userId: 'user-1',
  refreshToken: { keyVersion: 'local-v1', wrappedKey: 'w', ciphertext: 'c' },
  resources: ['youtube.comments', 'chrome.history', 'maps.reviews'],
  oneTimeResources: ['youtube.comments', 'chrome.history'],
  timeBasedResources: ['maps.reviews', 'chrome.bookmarks'],
  state: 'ACTIVE',
  createdAt: T0,
  updatedAt: T0,
};
const record: ExportRecord = { id: 'e1', userId: 'user-1', state: 'RUNNING', resources: ['myactivity.search'], createdAt: T0, updatedAt: T0 };
const job = (over: Partial<Job> = {}): Job => ({ ...newJob({ id: 'j1', exportId: 'e1', userId: 'user-1', resource: 'myactivity.search' }, T0), ...over });
const archive = (n: number, md5Hash?: string) => ({ bucket: 'b', name: `user-1/e1/myactivity.search/archive-${n}.zip`, size: 10 * n, crc32c: `crc${n}`, ...(md5Hash ? { md5Hash } : {}) });

describe('audit drafts', () => {
  it('a consent granted: every list sorted, the expiry as RFC 3339 when Google gave one, no user id', () => {
    const d = consentGranted({ ...grant, expiresAt: T0 + 1000 }, T0 + 5);
    expect(d).toMatchObject({ kind: 'consent.granted', at: T0 + 5 });
    expect(d.details).toEqual({
      resources: ['chrome.history', 'maps.reviews', 'youtube.comments'],
      oneTimeResources: ['chrome.history', 'youtube.comments'],
      timeBasedResources: ['chrome.bookmarks', 'maps.reviews'],
      expiresAt: iso(T0 + 1000),
    });
    expect(consentGranted(grant, T0 + 5).details).not.toHaveProperty('expiresAt');
    // The grant itself is left as it was.
    expect(grant.resources).toEqual(['youtube.comments', 'chrome.history', 'maps.reviews']);
    expect(JSON.stringify(d)).not.toContain('user-1');
    // The same grant at the same moment is one fact; another moment or user another.
    expect(consentGranted(grant, T0 + 5).id).toBe(d.id);
    expect(consentGranted(grant, T0 + 6).id).not.toBe(d.id);
    expect(consentGranted({ ...grant, userId: 'user-2' }, T0 + 5).id).not.toBe(d.id);
  });

  it('a consent revoked: by whom, its resources sorted; the person and Google revoking at one moment are two facts', () => {
    const byUser = consentRevoked(grant, T0, 'user');
    expect(byUser).toMatchObject({ kind: 'consent.revoked', at: T0, details: { resources: ['chrome.history', 'maps.reviews', 'youtube.comments'], by: 'user' } });
    const byGoogle = consentRevoked(grant, T0, 'google');
    expect(byGoogle.details.by).toBe('google');
    expect(byGoogle.id).not.toBe(byUser.id);
    expect(consentRevoked(grant, T0, 'user').id).toBe(byUser.id);
    expect(byUser.id).not.toBe(consentGranted(grant, T0).id);
  });

  it('an export started and finished: the schedule and its run only on a scheduled export', () => {
    expect(exportStarted(record)).toMatchObject({ kind: 'export.started', at: T0, details: { exportId: 'e1', resources: ['myactivity.search'] } });
    expect(exportStarted(record).details).not.toHaveProperty('scheduleId');
    expect(exportStarted(record).details).not.toHaveProperty('run');
    expect(exportStarted({ ...record, scheduleId: 's1', run: 4 }).details).toEqual({ exportId: 'e1', resources: ['myactivity.search'], scheduleId: 's1', run: 4 });
    expect(exportStarted({ ...record, scheduleId: 's1' }).details.run).toBe(0);
    expect(exportStarted({ ...record, createdAt: T0 + 9 }).id).toBe(exportStarted(record).id);
    expect(exportStarted({ ...record, id: 'e2' }).id).not.toBe(exportStarted(record).id);

    const done = exportFinished(record, 'PARTIAL', T0 + 50);
    expect(done).toMatchObject({ kind: 'export.finished', at: T0 + 50, details: { exportId: 'e1', state: 'PARTIAL' } });
    expect(exportFinished(record, 'PARTIAL', T0 + 60).id).toBe(done.id);
    expect(exportFinished(record, 'SUCCEEDED', T0 + 50).id).not.toBe(done.id);
  });

  it('archives copied: names inside the user prefix, sizes, checksums, MD5 when known, at the job\u2019s end', () => {
    const d = archivesCopied(job({ state: 'SUCCEEDED', archives: [archive(1, 'md5=='), archive(2)], finishedAt: T0 + 70, updatedAt: T0 + 80 }));
    expect(d).toMatchObject({ kind: 'archives.copied', at: T0 + 70 });
    expect(d.details).toEqual({
      exportId: 'e1',
      jobId: 'j1',
      resource: 'myactivity.search',
      archives: [
        { name: 'e1/myactivity.search/archive-1.zip', size: 10, crc32c: 'crc1', md5: 'md5==' },
        { name: 'e1/myactivity.search/archive-2.zip', size: 20, crc32c: 'crc2' },
      ],
    });
    expect(archivesCopied(job({ state: 'SUCCEEDED', updatedAt: T0 + 80 })).at).toBe(T0 + 80);
    expect(archivesCopied(job({ updatedAt: T0 + 99 })).id).toBe(d.id);
    expect(archivesCopied(job({ id: 'j2' })).id).not.toBe(d.id);
  });

  it('a download issued: a new fact each time, the archive named inside the user prefix, the origin or null', () => {
    const j = job({ state: 'SUCCEEDED', archives: [archive(1), archive(2)] });
    const d = downloadIssued(j, 1, T0 + 1, T0 + 301_000, 'https://app.example');
    expect(d).toMatchObject({ kind: 'download.issued', at: T0 + 1 });
    expect(d.details).toEqual({ exportId: 'e1', jobId: 'j1', archive: 1, name: 'e1/myactivity.search/archive-2.zip', origin: 'https://app.example', expiresAt: iso(T0 + 301_000) });
    expect(downloadIssued(j, 0, T0 + 1, T0 + 301_000).details).toMatchObject({ archive: 0, name: 'e1/myactivity.search/archive-1.zip', origin: null });
    expect(downloadIssued(j, 5, T0 + 1, T0 + 301_000).details.name).toBe('');
    expect(downloadIssued(j, 1, T0 + 1, T0 + 301_000, 'https://app.example').id).not.toBe(d.id);
    expect(d.id).toMatch(/^[0-9a-f]{40}$/);
  });

  it('an export deleted and a user erased: counts only; one erasure is one fact however often recorded', () => {
    expect(exportDeleted('e1', 3, T0)).toMatchObject({ kind: 'export.deleted', at: T0, details: { exportId: 'e1', objects: 3 } });
    expect(exportDeleted('e1', 4, T0 + 1).id).toBe(exportDeleted('e1', 3, T0).id);
    expect(exportDeleted('e2', 3, T0).id).not.toBe(exportDeleted('e1', 3, T0).id);

    const erased = userErased('user-1', { jobs: 2, objects: 5 }, T0 + 10, T0);
    expect(erased).toMatchObject({ kind: 'user.erased', at: T0 + 10, details: { removed: { jobs: 2, objects: 5 } } });
    expect(JSON.stringify(erased)).not.toContain('user-1');
    // A redelivery recording it again later names the same erasure.
    expect(userErased('user-1', { jobs: 2, objects: 5 }, T0 + 20, T0).id).toBe(erased.id);
    expect(userErased('user-1', {}, T0 + 20, T0 + 1).id).not.toBe(erased.id);
    expect(userErased('user-2', {}, T0 + 10, T0).id).not.toBe(erased.id);
    // Without a request time, the erasure is named by when it is recorded.
    expect(userErased('user-1', {}, T0).id).toBe(userErased('user-1', { jobs: 1 }, T0 + 10, T0).id);
  });

  it('derive each id from the kind and the facts alone, so a fact retried after a deploy is still one entry', () => {
    const j = job({ state: 'SUCCEEDED' });
    expect(consentGranted(grant, T0).id).toBe(auditDraftId('consent.granted', 'user-1', T0));
    expect(consentRevoked(grant, T0, 'google').id).toBe(auditDraftId('consent.revoked', 'user-1', T0, 'google'));
    expect(exportStarted(record).id).toBe(auditDraftId('export.started', 'e1'));
    expect(exportFinished(record, 'SUCCEEDED', T0).id).toBe(auditDraftId('export.finished', 'e1', 'SUCCEEDED'));
    expect(archivesCopied(j).id).toBe(auditDraftId('archives.copied', 'j1'));
    expect(exportDeleted('e1', 0, T0).id).toBe(auditDraftId('export.deleted', 'e1'));
    expect(userErased('user-1', {}, T0 + 5, T0).id).toBe(auditDraftId('user.erased', 'user-1', T0));
  });
});
