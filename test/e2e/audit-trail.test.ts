/**
 * The audit trail through the whole local stack: a person's consent, export, archives, download
 * link, deletion and withdrawal appear in `GET /v1/audit`, newest first, chained (`:verify`), with
 * no token, URL or user id; bad paging answers 400 naming the problem; another user, even asking
 * at the same time, sees only their own. Time-based access shows `expiresSoon` within the warning
 * period, and the retention sweep runs on the stack.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({ firestoreEmulatorHost: inject('firestoreEmulatorHost'), projectId: 'demo-audit-e2e', logLevel: 'silent' });
});

afterAll(async () => {
  await stack?.stop();
});

interface Entry {
  seq: number;
  kind: string;
  at: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}
type Page = { entries: Entry[]; nextPageToken?: string };

/** The caller's whole trail once it holds `count` entries (sealing follows each commit closely). */
async function trailOf(token: string, count: number): Promise<Entry[]> {
  for (const deadline = Date.now() + 30_000; ; ) {
    const res = await api<Page>(stack, token, 'GET', '/v1/audit?pageSize=100');
    expect(res.status).toBe(200);
    if (res.body.entries.length >= count) return res.body.entries;
    if (Date.now() > deadline) throw new Error(`trail has ${res.body.entries.length} entries, not ${count}`);
    await stack.sweep();
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('GET /v1/audit', () => {
  let ava: string;
  let bob: string;
  let done: ExportBody;

  beforeAll(async () => {
    ({ token: ava } = await authorizedUser(stack, 'ava', ['myactivity.search']));
    ({ token: bob } = await authorizedUser(stack, 'bob', ['chrome.history']));
    const started = await api<ExportBody>(stack, ava, 'POST', '/v1/exports', {});
    done = await waitForExport(stack, ava, started.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const job = done.jobs[0];
    expect((await api(stack, ava, 'POST', `/v1/exports/${done.exportId}/jobs/${job?.jobId}/archives/0:download`)).status).toBe(200);
    expect((await api(stack, ava, 'DELETE', `/v1/exports/${done.exportId}`)).status).toBe(204);
    expect((await api(stack, ava, 'POST', '/v1/authorizations:reset', {})).status).toBe(200);
  });

  it("records what was done, newest first, with the archives' facts and no token, URL or user id; the chain verifies", async () => {
    const entries = await trailOf(ava, 7);
    expect(entries.map((e) => e.kind)).toEqual(['consent.revoked', 'export.deleted', 'download.issued', 'export.finished', 'archives.copied', 'export.started', 'consent.granted']);
    expect(entries.map((e) => e.seq)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    const archive = done.jobs[0]?.archives?.[0];
    expect(entries[4]?.details).toMatchObject({ exportId: done.exportId, archives: [{ name: archive?.name.replace(/^ava\//, ''), size: archive?.size, crc32c: archive?.crc32c }] });
    // Not through a browser: no Origin to name.
    expect(entries[2]?.details).toMatchObject({ exportId: done.exportId, jobId: done.jobs[0]?.jobId, archive: 0, origin: null });
    expect(entries[6]?.details).toMatchObject({ resources: ['myactivity.search'] });
    expect(entries[0]?.details).toEqual({ resources: ['myactivity.search'], by: 'user' });
    const text = JSON.stringify(entries);
    for (const secret of ['http', 'X-Goog', 'ava', 'token', 'refresh']) expect(text, secret).not.toContain(secret);
    for (const [i, e] of entries.entries()) if (i + 1 < entries.length) expect(e.prevHash).toBe(entries[i + 1]?.hash);
    expect((await api(stack, ava, 'GET', '/v1/audit:verify')).body).toEqual({ ok: true, entries: 7 });
  });

  it('pages with opaque tokens and refuses bad paging with 400 naming the field', async () => {
    await trailOf(ava, 7);
    const first = await api<Page>(stack, ava, 'GET', '/v1/audit?pageSize=3');
    expect(first.body.entries.map((e) => e.seq)).toEqual([7, 6, 5]);
    const second = await api<Page>(stack, ava, 'GET', `/v1/audit?pageSize=3&pageToken=${first.body.nextPageToken}`);
    expect(second.body.entries.map((e) => e.seq)).toEqual([4, 3, 2]);
    for (const [query, field] of [
      ['pageToken=abc', 'pageToken'],
      ['pageToken=%21%21', 'query.pageToken'],
      ['pageSize=0', 'query.pageSize'],
      ['pageSize=101', 'query.pageSize'],
      ['pageSize=x', 'query.pageSize'],
      ['other=1', 'query.other'],
    ]) {
      const res = await api<{ error: { code: string; field: string; message: string } }>(stack, ava, 'GET', `/v1/audit?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('INVALID_ARGUMENT');
      expect(res.body.error.field, query).toBe(field);
    }
    expect((await api(stack, undefined, 'GET', '/v1/audit')).status).toBe(401);
    expect((await api(stack, ava, 'POST', '/v1/audit')).status).toBe(405);
  });

  it("never answers another user's entries, also when both ask at once", async () => {
    await trailOf(ava, 7);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => api<Page>(stack, i % 2 ? bob : ava, 'GET', '/v1/audit?pageSize=100').then((r) => ({ who: i % 2 ? 'bob' : 'ava', r }))));
    for (const { who, r } of answers) {
      expect(r.status).toBe(200);
      expect(r.body.entries.map((e) => e.kind)).toEqual(who === 'bob' ? ['consent.granted'] : ['consent.revoked', 'export.deleted', 'download.issued', 'export.finished', 'archives.copied', 'export.started', 'consent.granted']);
    }
    // Ava's page token continues Bob's own trail only.
    const avaPage = await api<Page>(stack, ava, 'GET', '/v1/audit?pageSize=1');
    const bobAfter = await api<Page>(stack, bob, 'GET', `/v1/audit?pageToken=${avaPage.body.nextPageToken}`);
    expect(bobAfter.body.entries.map((e) => e.kind)).toEqual(['consent.granted']);
  });

  it('the retention sweep runs on the stack: nothing is young enough to go', async () => {
    expect(await stack.retentionSweep()).toEqual({ objects: 0, documents: 0 });
  });
});
