/**
 * Manifests through the public API on the whole local stack: an export whose archives Google
 * marked incomplete (the simulator's archive_browser.json says so) SUCCEEDS with a warning on its
 * job and counts in its view; the owner reads each archive's manifest; it was built from a small
 * part of the archive; another user, an unfinished job, an index or page out of range get JSON
 * 404/409 and learn nothing.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({ firestoreEmulatorHost: inject('firestoreEmulatorHost'), projectId: 'demo-archive-manifests' });
});

afterAll(async () => {
  await stack?.stop();
});

type ErrorBody = { error: { code: string; message: string; field?: string } };
type Manifest = {
  jobId: string;
  archive: number;
  entryCount: number;
  files: number;
  size: number;
  zip64: boolean;
  page: number;
  pages: number;
  entries: Array<{ path: string; size: number; compressedSize: number; crc32: string }>;
  folders: Array<{ folder: string; files: number; size: number }>;
  services?: Array<{ name: string; incomplete: boolean; files?: number }>;
  warnings: Array<{ code: string; message: string }>;
  object: { name: string; size: number };
};
type JobWithManifests = ExportBody['jobs'][number] & { warnings?: Array<{ code: string; message: string; archive: number }>; manifests?: Array<{ archive: number; entries: number }> };

const manifestRoute = (exportId: string, jobId: string, n: number | string, query = '') => `/v1/exports/${exportId}/jobs/${jobId}/archives/${n}/manifest${query}`;

describe('GET /v1/exports/{exportId}/jobs/{jobId}/archives/{n}/manifest', () => {
  let token: string;
  let done: ExportBody & { manifests?: { archives: number; entries: number; warnings: number } };
  let job: JobWithManifests;

  beforeAll(async () => {
    ({ token } = await authorizedUser(stack, 'mia', ['chrome.history']));
    stack.portability.faults.urlsPerJob('chrome.history', 2);
    stack.portability.faults.markIncomplete('chrome.history');
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(started.status).toBe(202);
    done = await waitForExport(stack, token, started.body.exportId);
    job = done.jobs[0] as JobWithManifests;
  });

  it('an export Google marked incomplete still SUCCEEDS, but its job says so and its view counts it', () => {
    expect(done.state).toBe('SUCCEEDED');
    expect(job.warnings).toEqual([{ code: 'SERVICE_INCOMPLETE', archive: 0, service: 'Chrome history', message: 'Google marked Chrome history incomplete' }]);
    expect(job.manifests?.map((m) => m.archive)).toEqual([0, 1]);
    const entries = (job.manifests ?? []).reduce((n, m) => n + m.entries, 0);
    expect(done.manifests).toEqual({ archives: 2, entries, warnings: 1 });
  });

  it('gives the owner each archive\'s entries, folders and Google\'s services, read from a small part of the archive', async () => {
    for (const [n, archive] of (job.archives ?? []).entries()) {
      const res = await api<Manifest>(stack, token, 'GET', manifestRoute(done.exportId, job.jobId, n));
      expect(res.status).toBe(200);
      const m = res.body;
      expect(m).toMatchObject({ jobId: job.jobId, archive: n, page: 0, pages: 1, zip64: false, object: { name: archive.name, size: archive.size } });
      expect(m.entryCount).toBe(job.manifests?.[n]?.entries);
      expect(m.entries).toHaveLength(m.entryCount);
      expect(m.entries.map((e) => e.path)).toContain('Portability/archive_browser.json');
      for (const e of m.entries) expect(e.crc32).toMatch(/^[0-9a-f]{8}$/);
      expect(m.services).toEqual([expect.objectContaining({ name: 'Chrome history', incomplete: true })]);
      expect(m.warnings.map((w) => w.code)).toEqual(['SERVICE_INCOMPLETE']);
      expect(m.folders.find((f) => f.folder === 'Portability/')?.files).toBe(m.entries.filter((e) => e.path.startsWith('Portability/')).length);
      if (n === 1) expect(m.entries.some((e) => /\/MyActivity-\d+\.json$/.test(e.path))).toBe(true);
      // Nothing else downloads these objects here: what the stand-in served is what the manifest read.
      const served = stack.gcs.servedOf(archive.bucket, archive.name);
      expect(served.requests).toBeGreaterThan(0);
      expect(served.bytes).toBeLessThan(70_000 * 2);
    }
  });

  it('answers another user 404 exactly as for a missing export', async () => {
    const mallory = await stack.idToken('mallory');
    const theirs = await api<ErrorBody>(stack, mallory, 'GET', manifestRoute(done.exportId, job.jobId, 0));
    const missing = await api<ErrorBody>(stack, mallory, 'GET', manifestRoute('0123456789abcdef0123', job.jobId, 0));
    expect(theirs.status).toBe(404);
    expect(theirs.body).toEqual(missing.body);
    expect(JSON.stringify(theirs.body)).not.toContain('Portability');
  });

  it('answers 404 for an archive or page out of range, 400 for a bad index or page or an unknown query field', async () => {
    const out = await api<ErrorBody>(stack, token, 'GET', manifestRoute(done.exportId, job.jobId, 2));
    expect(out.status).toBe(404);
    expect(out.body.error.message).toMatch(/Archive 2/);
    const page = await api<ErrorBody>(stack, token, 'GET', manifestRoute(done.exportId, job.jobId, 0, '?page=1'));
    expect(page.status).toBe(404);
    expect(page.body.error.message).toMatch(/Page 1/);
    for (const bad of ['-1', '01', 'x', '9999999']) {
      const res = await api<ErrorBody>(stack, token, 'GET', manifestRoute(done.exportId, job.jobId, bad));
      expect(res.status, bad).toBe(400);
      expect(res.body.error.field).toBe('n');
    }
    for (const q of ['?page=-1', '?page=a', '?pageSize=5']) {
      const res = await api<ErrorBody>(stack, token, 'GET', manifestRoute(done.exportId, job.jobId, 0, q));
      expect(res.status, q).toBe(400);
    }
    expect((await api(stack, token, 'POST', manifestRoute(done.exportId, job.jobId, 0))).status).toBe(405);
    expect((await api(stack, undefined, 'GET', manifestRoute(done.exportId, job.jobId, 0))).status).toBe(401);
  });

  it('answers 409 for a job that has not succeeded', async () => {
    const { token: t } = await authorizedUser(stack, 'noor', ['maps.reviews']);
    stack.portability.faults.jobDuration('maps.reviews', 600_000);
    const started = await api<ExportBody>(stack, t, 'POST', '/v1/exports', {});
    const waiting = await waitForExport(stack, t, started.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    const res = await api<ErrorBody>(stack, t, 'GET', manifestRoute(waiting.exportId, waiting.jobs[0]?.jobId ?? '', 0));
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('JOB_NOT_SUCCEEDED');
    await api(stack, t, 'POST', `/v1/exports/${waiting.exportId}:cancel`);
  });
});
