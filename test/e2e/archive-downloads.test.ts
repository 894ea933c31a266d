/**
 * Download links for the person the data belongs to, through the local stack: the owner gets a
 * V4 signed URL whose bytes are the archive's; the Cloud Storage stand-in checks the signature and
 * the expiry for real, so an altered, re-pointed or expired link is refused. Another user's export,
 * a job that has not succeeded and an index out of range issue nothing. The link never reaches a log.
 */
import { CRC32C } from '@google-cloud/storage';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;
const logLines: string[] = [];
const logDestination = new Writable({
  write(chunk: Buffer | string, _enc, done) {
    logLines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
    done();
  },
});

beforeAll(async () => {
  stack = await startLocalStack({ firestoreEmulatorHost: inject('firestoreEmulatorHost'), projectId: 'demo-archive-downloads', logLevel: 'trace', logDestination, env: { DOWNLOAD_URL_TTL_SECONDS: '300' } });
});

afterAll(async () => {
  await stack?.stop();
});

type Link = { url: string; expiresAt: string };

const downloadRoute = (exportId: string, jobId: string, n: number | string) => `/v1/exports/${exportId}/jobs/${jobId}/archives/${n}:download`;

/** An export of two URLs' archives for a fresh user, finished. */
async function finishedExport(user: string): Promise<{ token: string; done: ExportBody }> {
  const { token } = await authorizedUser(stack, user, ['myactivity.search']);
  stack.portability.faults.urlsPerJob('myactivity.search', 2);
  const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
  expect(started.status).toBe(202);
  const done = await waitForExport(stack, token, started.body.exportId);
  expect(done.state).toBe('SUCCEEDED');
  return { token, done };
}

async function crc32cOf(res: Response): Promise<string> {
  const crc = new CRC32C();
  crc.update(Buffer.from(await res.arrayBuffer()));
  return crc.toString();
}

describe('POST /v1/exports/{exportId}/jobs/{jobId}/archives/{n}:download', () => {
  let token: string;
  let done: ExportBody;
  let links: Link[];

  beforeAll(async () => {
    ({ token, done } = await finishedExport('dana'));
    const job = done.jobs[0];
    links = [];
    for (let n = 0; n < (job?.archives?.length ?? 0); n++) {
      const res = await api<Link>(stack, token, 'POST', downloadRoute(done.exportId, job?.jobId ?? '', n));
      expect(res.status).toBe(200);
      links.push(res.body);
    }
  });

  it('gives the owner a short-lived link to each archive whose bytes are the archive', async () => {
    const archives = done.jobs[0]?.archives ?? [];
    expect(archives.length).toBe(2);
    for (const [n, link] of links.entries()) {
      const expiresIn = Date.parse(link.expiresAt) - Date.now();
      expect(expiresIn).toBeGreaterThan(200_000);
      expect(expiresIn).toBeLessThanOrEqual(300_000);
      const url = new URL(link.url);
      expect(url.searchParams.get('X-Goog-Algorithm')).toBe('GOOG4-RSA-SHA256');
      expect(url.searchParams.get('X-Goog-Expires')).toBe('300');
      const res = await fetch(link.url);
      expect(res.status).toBe(200);
      expect(await crc32cOf(res)).toBe(archives[n]?.crc32c);
    }
  });

  it('refuses a link with an altered signature, pointed at another object, or with a longer life', async () => {
    const good = new URL(links[0]?.url ?? '');
    const sig = good.searchParams.get('X-Goog-Signature') ?? '';
    const altered = new URL(good);
    altered.searchParams.set('X-Goog-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
    const other = new URL(links[1]?.url ?? '');
    const repointed = new URL(good);
    repointed.pathname = other.pathname;
    const longer = new URL(good);
    longer.searchParams.set('X-Goog-Expires', '3600');
    const unsigned = new URL(good);
    unsigned.search = '';
    for (const url of [altered, repointed, longer, unsigned]) {
      const res = await fetch(url);
      expect(res.status, url.pathname).toBe(403);
      expect(await res.text()).toMatch(/<Code>(SignatureDoesNotMatch|AccessDenied)<\/Code>/);
    }
    expect((await fetch(good)).status).toBe(200);
  });

  it('refuses an expired link (the stand-in\'s clock moved past its expiry)', async () => {
    const link = links[0]?.url ?? '';
    stack.gcs.advanceClock(301_000);
    try {
      const res = await fetch(link);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('<Code>ExpiredToken</Code>');
    } finally {
      stack.gcs.advanceClock(-301_000);
    }
    expect((await fetch(link)).status).toBe(200);
  });

  it('answers another user 404 exactly as for a missing export, and issues nothing', async () => {
    const mallory = await stack.idToken('mallory');
    const jobId = done.jobs[0]?.jobId ?? '';
    const theirs = await api(stack, mallory, 'POST', downloadRoute(done.exportId, jobId, 0));
    const missing = await api(stack, mallory, 'POST', downloadRoute('0123456789abcdef0123', jobId, 0));
    expect(theirs.status).toBe(404);
    expect(theirs.body).toEqual(missing.body);
    expect(JSON.stringify(theirs.body)).not.toContain('X-Goog');
  });

  it('answers 404 for an index out of range or a job of another export, 400 for a bad index or body', async () => {
    const jobId = done.jobs[0]?.jobId ?? '';
    const out = await api<{ error: { code: string; message: string } }>(stack, token, 'POST', downloadRoute(done.exportId, jobId, 2));
    expect(out.status).toBe(404);
    expect(out.body.error.message).toMatch(/Archive 2/);
    const { done: other } = await finishedExport('dana-other');
    expect((await api(stack, token, 'POST', downloadRoute(done.exportId, other.jobs[0]?.jobId ?? '', 0))).status).toBe(404);
    for (const bad of ['-1', '01', 'x', '1.5', '9999999']) {
      const res = await api<{ error: { field?: string } }>(stack, token, 'POST', downloadRoute(done.exportId, jobId, bad));
      expect(res.status, bad).toBe(400);
      expect(res.body.error.field).toBe('n');
    }
    const body = await api<{ error: { code: string } }>(stack, token, 'POST', downloadRoute(done.exportId, jobId, 0), { ttl: 99 });
    expect(body.status).toBe(400);
    expect((await api(stack, token, 'GET', downloadRoute(done.exportId, jobId, 0))).status).toBe(405);
    expect((await api(stack, undefined, 'POST', downloadRoute(done.exportId, jobId, 0))).status).toBe(401);
  });

  it('answers 409 for a job that has not succeeded', async () => {
    const { token: t } = await authorizedUser(stack, 'erin', ['maps.reviews']);
    stack.portability.faults.jobDuration('maps.reviews', 600_000);
    const started = await api<ExportBody>(stack, t, 'POST', '/v1/exports', {});
    const waiting = await waitForExport(stack, t, started.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    const res = await api<{ error: { code: string } }>(stack, t, 'POST', downloadRoute(waiting.exportId, waiting.jobs[0]?.jobId ?? '', 0));
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('JOB_NOT_SUCCEEDED');
    await api(stack, t, 'POST', `/v1/exports/${waiting.exportId}:cancel`);
  });

  it('logs that each link was issued, never the link', () => {
    const issued = logLines.filter((l) => l.includes('download link issued')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(issued.length).toBeGreaterThanOrEqual(2);
    expect(issued[0]).toMatchObject({ exportId: done.exportId, jobId: done.jobs[0]?.jobId, archive: 0, expiresAt: links[0]?.expiresAt });
    for (const link of links) {
      const signature = new URL(link.url).searchParams.get('X-Goog-Signature') ?? '';
      expect(signature.length).toBeGreaterThan(100);
      // Any 16 characters of the signature, anywhere in any line.
      for (let i = 0; i + 16 <= signature.length; i += 8) {
        const piece = signature.slice(i, i + 16);
        expect(logLines.filter((l) => l.includes(piece))).toEqual([]);
      }
      expect(logLines.filter((l) => l.includes(link.url))).toEqual([]);
    }
  });
});
