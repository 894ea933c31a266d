/**
 * The Data Portability API simulator driven through the real client adapter (and raw fetch for
 * the signed URLs), on a controlled clock: every method, every error row of the reference, URLs
 * that expire, Range downloads, checksums, retry/cancel rules, reset, quotaUser, faults; and the
 * zip archives it serves (checked with `unzip -t` when present, and by reading the central directory).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { crc32, inflateRawSync } from 'node:zlib';
import { CRC32C } from '@google-cloud/storage';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PortabilityApiClient, parseApiError, parseRetryAfter } from '../../functions/src/adapters/portability-api-client';
import { classifyApiError } from '../../functions/src/domain/api-error-classification';
import { PortabilityApiError } from '../../functions/src/domain/errors';
import { GoogleAccounts, type SimAccessType } from '../../local-stack/google-accounts';
import { startPortabilityApiSimulator, type PortabilityApiSimulator } from '../../local-stack/portability-api-simulator';
import { writeZipArchive } from '../../local-stack/zip-archive';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const QU = 'quota-user-hash-1';

let t = T0;
const clock = () => t;
let accounts: GoogleAccounts;
let sim: PortabilityApiSimulator;
let api: PortabilityApiClient;
let tmp: string;
/** Runs Info-ZIP's unzip: a second, independent reader of the simulator's zips. Required (.ci/run installs it). */
function unzip(args: string[], opts: { maxBuffer?: number } = {}): Buffer {
  try {
    return execFileSync('unzip', args, { stdio: 'pipe', ...opts });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('unzip is not installed (apt-get install unzip): these tests need it');
    throw e;
  }
}

beforeAll(async () => {
  accounts = new GoogleAccounts(clock);
  sim = await startPortabilityApiSimulator({ accounts, jobDurationMs: 10 * 60_000, archiveBytes: 200_000 });
  api = new PortabilityApiClient({ apiRoot: sim.apiRoot, timeoutMs: 10_000 });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'portability-api-test-'));
});

afterAll(async () => {
  await sim?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  sim.faults.clear();
});

let userSeq = 0;
function consent(resources: string[], accessType: SimAccessType = 'ONE_TIME', googleUserId = `user-${++userSeq}`) {
  const grant = accounts.createGrant({ googleUserId, resources, accessType, days: accessType === 'ONE_TIME' ? 7 : 30 });
  return { grant, token: accounts.mintAccessToken(grant.grantId).token };
}

async function apiError(p: Promise<unknown>): Promise<PortabilityApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortabilityApiError);
  return err as PortabilityApiError;
}

function checksums(buf: Buffer) {
  const c = new CRC32C();
  c.update(buf);
  return { crc32c: c.toString(), md5: createHash('md5').update(buf).digest('base64') };
}

async function download(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body };
}

async function assertValidZip(buf: Buffer, name: string) {
  const file = path.join(tmp, name);
  await writeFile(file, buf);
  expect(buf.readUInt32LE(0)).toBe(0x04034b50);
  // End of central directory record: signature at size - 22 (no comment).
  expect(buf.readUInt32LE(buf.length - 22)).toBe(0x06054b50);
  unzip(['-tq', file]);
}

async function completeJob(resources: string[], accessType: SimAccessType = 'ONE_TIME') {
  const c = consent(resources, accessType);
  const { archiveJobId } = await api.initiate(c.token, { resources }, QU);
  t += 11 * 60_000;
  const state = await api.getState(c.token, archiveJobId, QU);
  expect(state.state).toBe('COMPLETE');
  return { ...c, archiveJobId, state };
}

describe('the happy path', () => {
  it('initiate → IN_PROGRESS → COMPLETE with a signed URL whose bytes match x-goog-hash and form a valid zip', async () => {
    const c = consent(['myactivity.search']);
    const started = await api.initiate(c.token, { resources: ['myactivity.search'] }, QU);
    expect(started.accessType).toBe('ACCESS_TYPE_ONE_TIME');
    expect(started.archiveJobId).toMatch(/^[0-9a-f-]{36}$/);

    const pending = await api.getState(c.token, started.archiveJobId, QU);
    expect(pending).toEqual({
      name: `archiveJobs/${started.archiveJobId}/portabilityArchiveState`,
      state: 'IN_PROGRESS',
      urls: [],
      exportTime: new Date(t).toISOString(),
    });

    t += 9 * 60_000;
    expect((await api.getState(c.token, started.archiveJobId, QU)).state).toBe('IN_PROGRESS');
    t += 2 * 60_000;
    const done = await api.getState(c.token, started.archiveJobId, QU);
    expect(done.state).toBe('COMPLETE');
    expect(done.urls).toHaveLength(1);
    const u = new URL(done.urls[0]);
    expect(u.host).toBe(sim.archiveHost);
    expect(u.searchParams.get('X-Goog-Algorithm')).toBe('GOOG4-RSA-SHA256');
    expect(u.searchParams.get('X-Goog-Expires')).toBe('21600');
    expect(u.searchParams.get('X-Goog-Date')).toMatch(/^\d{8}T\d{6}Z$/);
    expect(u.searchParams.get('X-Goog-Signature')).toMatch(/^[0-9a-f]{64}$/);

    const { res, body } = await download(done.urls[0]);
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(Number(res.headers.get('content-length'))).toBe(body.length);
    expect(body.length).toBeGreaterThan(150_000);
    const sums = checksums(body);
    expect(res.headers.get('x-goog-hash')).toBe(`crc32c=${sums.crc32c},md5=${sums.md5}`);
    await assertValidZip(body, 'happy.zip');

    const job = sim.jobs().find((j) => j.id === started.archiveJobId);
    expect(job?.archives?.[0]).toMatchObject({ size: body.length, crc32c: sums.crc32c, md5: sums.md5 });
  });

  it('records every call with its quotaUser and job id, and never a token or URL', async () => {
    const c = consent(['chrome.history']);
    const { archiveJobId } = await api.initiate(c.token, { resources: ['chrome.history'] }, 'qu-calls');
    await api.getState(c.token, archiveJobId, 'qu-calls');
    await api.checkAccessType(c.token, 'qu-calls');
    const mine = sim.calls.filter((x) => x.quotaUser === 'qu-calls');
    expect(mine.map((x) => [x.method, x.jobId, x.status])).toEqual([
      ['initiate', archiveJobId, 200],
      ['getState', archiveJobId, 200],
      ['checkAccessType', undefined, 200],
    ]);
    expect(JSON.stringify(sim.calls)).not.toContain(c.token);
    expect(JSON.stringify(sim.calls)).not.toContain('X-Goog-Signature');
  });

  it('the client caps quotaUser at 40 characters', async () => {
    const c = consent(['play.library'], 'TIME_BASED');
    await api.checkAccessType(c.token, 'x'.repeat(60));
    expect(sim.calls.at(-1)?.quotaUser).toBe('x'.repeat(40));
  });

  it('accessType.check lists the grant’s resources under its access type', async () => {
    const one = consent(['youtube.channel', 'maps.reviews']);
    expect(await api.checkAccessType(one.token, QU)).toEqual({ oneTimeResources: ['youtube.channel', 'maps.reviews'], timeBasedResources: [] });
    const tb = consent(['myactivity.maps'], 'TIME_BASED');
    expect(await api.checkAccessType(tb.token, QU)).toEqual({ oneTimeResources: [], timeBasedResources: ['myactivity.maps'] });
  });

  it('two archives per job when asked: an archive-browser zip, then the data zip', async () => {
    sim.faults.urlsPerJob('saved.collections', 2);
    const { state, archiveJobId } = await completeJob(['saved.collections']);
    expect(state.urls).toHaveLength(2);
    for (const [i, url] of state.urls.entries()) {
      const { res, body } = await download(url);
      expect(res.status).toBe(200);
      const sums = checksums(body);
      expect(res.headers.get('x-goog-hash')).toBe(`crc32c=${sums.crc32c},md5=${sums.md5}`);
      await assertValidZip(body, `two-${i}.zip`);
    }
    expect(sim.jobs().find((j) => j.id === archiveJobId)?.archives?.map((a) => a.kind)).toEqual(['archive-browser', 'data']);
  });

  it('jobDuration fault: a slow resource stays IN_PROGRESS for its own duration', async () => {
    sim.faults.jobDuration('maps.photos_videos', 3 * DAY);
    const c = consent(['maps.photos_videos']);
    const { archiveJobId } = await api.initiate(c.token, { resources: ['maps.photos_videos'] }, QU);
    // Access tokens live an hour: mint a fresh one each time, as a refresh would.
    const fresh = () => accounts.mintAccessToken(c.grant.grantId).token;
    t += 2 * DAY;
    expect((await api.getState(fresh(), archiveJobId, QU)).state).toBe('IN_PROGRESS');
    t += DAY;
    expect((await api.getState(fresh(), archiveJobId, QU)).state).toBe('COMPLETE');
  });
});

describe('time filters', () => {
  it('startTime/endTime are echoed; exportTime is the endTime', async () => {
    const c = consent(['myactivity.youtube']);
    const startTime = '2026-01-01T00:00:00Z';
    const endTime = '2026-06-01T12:30:00.500Z';
    const { archiveJobId } = await api.initiate(c.token, { resources: ['myactivity.youtube'], startTime, endTime }, QU);
    const s = await api.getState(c.token, archiveJobId, QU);
    expect(s.startTime).toBe('2026-01-01T00:00:00.000Z');
    expect(s.exportTime).toBe('2026-06-01T12:30:00.500Z');
  });

  it.each([
    [{ startTime: 'yesterday' }],
    [{ endTime: '2026-01-01 00:00:00' }],
    [{ startTime: '2026-02-01T00:00:00Z', endTime: '2026-01-01T00:00:00Z' }],
    [{ startTime: '2026-01-01T00:00:00Z', endTime: '2026-01-01T00:00:00Z' }],
  ])('rejects bad times %j with 400 INVALID_ARGUMENT', async (times) => {
    const c = consent(['myactivity.play']);
    const e = await apiError(api.initiate(c.token, { resources: ['myactivity.play'], ...times }, QU));
    expect([e.httpStatus, e.status]).toEqual([400, 'INVALID_ARGUMENT']);
    expect(classifyApiError(e, 'initiate').kind).toBe('invalid');
  });
});

describe('error rows of the reference', () => {
  it('unknown resource → 400 INVALID_ARGUMENT (invalid)', async () => {
    const c = consent(['myactivity.search']);
    const e = await apiError(api.initiate(c.token, { resources: ['myactivity.nope'] }, QU));
    expect([e.httpStatus, e.status]).toEqual([400, 'INVALID_ARGUMENT']);
    expect(classifyApiError(e, 'initiate').kind).toBe('invalid');
  });

  it('resources not granted → 403 PERMISSION_DENIED with Google’s message (not-authorized)', async () => {
    const c = consent(['myactivity.search']);
    const e = await apiError(api.initiate(c.token, { resources: ['myactivity.search', 'chrome.history'] }, QU));
    expect([e.httpStatus, e.status]).toEqual([403, 'PERMISSION_DENIED']);
    expect(e.message).toContain('The requested resources are not authorized by the OAuth token.');
    expect(classifyApiError(e, 'initiate')).toEqual({ kind: 'not-authorized' });
  });

  it('unknown, expired and revoked tokens → 401 UNAUTHENTICATED (unauthenticated); the message never holds the token', async () => {
    const unknown = await apiError(api.checkAccessType('ya29.not-a-token', QU));
    expect([unknown.httpStatus, unknown.status, unknown.reason]).toEqual([401, 'UNAUTHENTICATED', 'ACCESS_TOKEN_TYPE_UNSUPPORTED']);
    expect(unknown.message).not.toContain('ya29.not-a-token');
    expect(classifyApiError(unknown)).toEqual({ kind: 'unauthenticated' });

    const c = consent(['myactivity.search']);
    t += HOUR;
    const expired = await apiError(api.checkAccessType(c.token, QU));
    expect([expired.httpStatus, expired.reason]).toEqual([401, 'ACCESS_TOKEN_EXPIRED']);

    const d = consent(['myactivity.search']);
    accounts.revoke(d.grant.grantId);
    expect((await apiError(api.checkAccessType(d.token, QU))).httpStatus).toBe(401);

    const res = await fetch(new URL('v1/accessType:check', sim.apiRoot), { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
    const body = (await res.json()) as { error: { details: { reason: string }[] } };
    expect(body.error.details[0].reason).toBe('CREDENTIALS_MISSING');
  });

  it.each([
    ['ONE_TIME', 'ALREADY_EXISTS_ONE_TIME'],
    ['TIME_BASED', 'ALREADY_EXISTS_TIME_BASED'],
  ] as const)('%s: an identical job still IN_PROGRESS → 409 %s with metadata.job_id (already-exists)', async (accessType, reason) => {
    const c = consent(['play.installs', 'play.library'], accessType);
    const { archiveJobId } = await api.initiate(c.token, { resources: ['play.library', 'play.installs'] }, QU);
    const e = await apiError(api.initiate(c.token, { resources: ['play.installs', 'play.library'] }, QU));
    expect([e.httpStatus, e.status, e.reason]).toEqual([409, 'ALREADY_EXISTS', reason]);
    expect(e.metadata.job_id).toBe(archiveJobId);
    expect(classifyApiError(e, 'initiate')).toEqual({ kind: 'already-exists', jobId: archiveJobId });
  });

  it('one-time access used → 429 RESOURCE_EXHAUSTED_ONE_TIME with previous_job_ids, also for a new consent, until reset', async () => {
    const user = 'user-one-time';
    const first = consent(['myactivity.shopping'], 'ONE_TIME', user);
    const { archiveJobId } = await api.initiate(first.token, { resources: ['myactivity.shopping'] }, QU);
    t += 11 * 60_000;
    expect((await api.getState(first.token, archiveJobId, QU)).state).toBe('COMPLETE');

    const e = await apiError(api.initiate(first.token, { resources: ['myactivity.shopping'] }, QU));
    expect([e.httpStatus, e.status, e.reason]).toEqual([429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_ONE_TIME']);
    expect(classifyApiError(e, 'initiate')).toEqual({ kind: 'one-time-exhausted', previousJobIds: [archiveJobId] });

    const again = consent(['myactivity.shopping'], 'ONE_TIME', user);
    expect((await apiError(api.initiate(again.token, { resources: ['myactivity.shopping'] }, QU))).reason).toBe('RESOURCE_EXHAUSTED_ONE_TIME');

    await api.resetAuthorization(again.token, QU);
    const afterReset = consent(['myactivity.shopping'], 'ONE_TIME', user);
    const next = await api.initiate(afterReset.token, { resources: ['myactivity.shopping'] }, QU);
    expect(next.archiveJobId).not.toBe(archiveJobId);
  });

  it('time-based, within 24 h → 400 FAILED_PRECONDITION RESOURCE_EXHAUSTED_TIME_BASED with timestamp_after_24hrs (cooldown)', async () => {
    const c = consent(['chrome.bookmarks'], 'TIME_BASED');
    const startedAt = t;
    const { archiveJobId } = await api.initiate(c.token, { resources: ['chrome.bookmarks'] }, QU);
    t += 11 * 60_000;
    expect((await api.getState(c.token, archiveJobId, QU)).state).toBe('COMPLETE');

    const e = await apiError(api.initiate(c.token, { resources: ['chrome.bookmarks'] }, QU));
    const retryAt = new Date(startedAt + DAY).toISOString();
    expect([e.httpStatus, e.status, e.reason, e.metadata.timestamp_after_24hrs]).toEqual([400, 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED_TIME_BASED', retryAt]);
    expect(classifyApiError(e, 'initiate')).toEqual({ kind: 'time-based-cooldown', retryAt });

    t = startedAt + DAY;
    const fresh = accounts.mintAccessToken(c.grant.grantId).token;
    const next = await api.initiate(fresh, { resources: ['chrome.bookmarks'] }, QU);
    expect(next.accessType).toBe('ACCESS_TYPE_TIME_BASED');
  });

  it('the cooldown "day" is configurable (dayMs)', async () => {
    const a = new GoogleAccounts(clock);
    const s = await startPortabilityApiSimulator({ accounts: a, dayMs: 60_000, jobDurationMs: 1000, archiveBytes: 5000 });
    try {
      const client = new PortabilityApiClient({ apiRoot: s.apiRoot });
      const g = a.createGrant({ googleUserId: 'u', resources: ['youtube.music'], accessType: 'TIME_BASED', days: 30 });
      const tok = a.mintAccessToken(g.grantId).token;
      await client.initiate(tok, { resources: ['youtube.music'] }, QU);
      t += 2000;
      const e = await apiError(client.initiate(tok, { resources: ['youtube.music'] }, QU));
      expect(e.reason).toBe('RESOURCE_EXHAUSTED_TIME_BASED');
      t += 60_000;
      await expect(client.initiate(tok, { resources: ['youtube.music'] }, QU)).resolves.toMatchObject({ accessType: 'ACCESS_TYPE_TIME_BASED' });
    } finally {
      await s.stop();
    }
  });

  it('an unknown or foreign job id → 404 NOT_FOUND', async () => {
    const mine = consent(['youtube.comments']);
    const other = consent(['youtube.comments']);
    const { archiveJobId } = await api.initiate(mine.token, { resources: ['youtube.comments'] }, QU);
    expect((await apiError(api.getState(other.token, archiveJobId, QU))).httpStatus).toBe(404);
    expect((await apiError(api.getState(mine.token, 'no-such-job', QU))).status).toBe('NOT_FOUND');
  });

  it('an unknown body field → 400 INVALID_ARGUMENT, as Google rejects unknown JSON names', async () => {
    const c = consent(['myactivity.search']);
    const res = await fetch(new URL('v1/portabilityArchive:initiate', sim.apiRoot), {
      method: 'POST',
      headers: { Authorization: `Bearer ${c.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ resources: ['myactivity.search'], resource: 'x' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { status: string; message: string } };
    expect(body.error.status).toBe('INVALID_ARGUMENT');
    expect(body.error.message).toContain('Unknown name "resource"');
  });
});

describe('retry and cancel', () => {
  it('retry only works on FAILED, returns a NEW job that starts IN_PROGRESS, at most 3 times per original job', async () => {
    sim.faults.failNextJobs('discover.likes', 4);
    const c = consent(['discover.likes']);
    let token = c.token;
    const { archiveJobId: original } = await api.initiate(token, { resources: ['discover.likes'] }, QU);

    const notFailed = await apiError(api.retry(token, original, QU));
    expect([notFailed.httpStatus, notFailed.status]).toEqual([400, 'FAILED_PRECONDITION']);
    expect(classifyApiError(notFailed, 'retry').kind).toBe('invalid');

    let current = original;
    const ids = [original];
    for (let i = 0; i < 3; i++) {
      t += 11 * 60_000;
      token = accounts.mintAccessToken(c.grant.grantId).token;
      const failed = await api.getState(token, current, QU);
      expect(failed).toMatchObject({ state: 'FAILED', urls: [] });
      const { archiveJobId } = await api.retry(token, current, QU);
      expect(ids).not.toContain(archiveJobId);
      expect((await api.getState(token, archiveJobId, QU)).state).toBe('IN_PROGRESS');
      ids.push(archiveJobId);
      current = archiveJobId;
    }
    t += 11 * 60_000;
    token = accounts.mintAccessToken(c.grant.grantId).token;
    expect((await api.getState(token, current, QU)).state).toBe('FAILED');
    const exhausted = await apiError(api.retry(token, current, QU));
    expect([exhausted.httpStatus, exhausted.status]).toEqual([400, 'FAILED_PRECONDITION']);
    expect(sim.jobs().filter((j) => j.originalJobId === original)).toHaveLength(4);
  });

  it('a retried job can complete and serve its archive', async () => {
    sim.faults.failNextJobs('discover.follows', 1);
    const c = consent(['discover.follows']);
    const { archiveJobId } = await api.initiate(c.token, { resources: ['discover.follows'] }, QU);
    t += 11 * 60_000;
    const token = accounts.mintAccessToken(c.grant.grantId).token;
    expect((await api.getState(token, archiveJobId, QU)).state).toBe('FAILED');
    const { archiveJobId: next } = await api.retry(token, archiveJobId, QU);
    t += 11 * 60_000;
    const token2 = accounts.mintAccessToken(c.grant.grantId).token;
    const s = await api.getState(token2, next, QU);
    expect(s.state).toBe('COMPLETE');
    expect((await download(s.urls[0])).res.status).toBe(200);
  });

  it('cancel only works on IN_PROGRESS; the job is then CANCELLED', async () => {
    const c = consent(['myactivity.myadcenter'], 'TIME_BASED');
    const { archiveJobId } = await api.initiate(c.token, { resources: ['myactivity.myadcenter'] }, QU);
    await api.cancel(c.token, archiveJobId, QU);
    expect(await api.getState(c.token, archiveJobId, QU)).toMatchObject({ state: 'CANCELLED', urls: [] });
    const e = await apiError(api.cancel(c.token, archiveJobId, QU));
    expect([e.httpStatus, e.status]).toEqual([400, 'FAILED_PRECONDITION']);
    expect(classifyApiError(e, 'cancel').kind).toBe('invalid');
    // A cancelled export does not start the 24-hour cooldown.
    await expect(api.initiate(c.token, { resources: ['myactivity.myadcenter'] }, QU)).resolves.toBeDefined();
  });

  it('authorization.reset revokes the grant: the token stops working', async () => {
    const c = consent(['shopping.reviews']);
    await api.resetAuthorization(c.token, QU);
    expect(accounts.grants.get(c.grant.grantId)?.revoked).toBe(true);
    const e = await apiError(api.checkAccessType(c.token, QU));
    expect(classifyApiError(e)).toEqual({ kind: 'unauthenticated' });
  });
});

describe('signed URLs', () => {
  it('expire after 6 h by the clock (400 ExpiredToken XML); getState then issues fresh, working URLs', async () => {
    const { token, archiveJobId, grant, state } = await completeJob(['youtube.playable']);
    t += 6 * HOUR + 1000;
    const expired = await download(state.urls[0]);
    expect(expired.res.status).toBe(400);
    expect(expired.body.toString()).toContain('<Code>ExpiredToken</Code>');
    expect(expired.res.headers.get('content-type')).toContain('application/xml');

    expect(token).toBeDefined();
    const fresh = await api.getState(accounts.mintAccessToken(grant.grantId).token, archiveJobId, QU);
    expect(fresh.urls[0]).not.toBe(state.urls[0]);
    expect((await download(fresh.urls[0])).res.status).toBe(200);
  });

  it('each getState issues different URLs, all valid until they expire', async () => {
    const { token, archiveJobId, state } = await completeJob(['youtube.posts']);
    const again = await api.getState(token, archiveJobId, QU);
    expect(again.urls[0]).not.toBe(state.urls[0]);
    expect((await download(state.urls[0])).res.status).toBe(200);
    expect((await download(again.urls[0])).res.status).toBe(200);
  });

  it('a tampered signature or date → 403 SignatureDoesNotMatch', async () => {
    const { state } = await completeJob(['youtube.music']);
    const u = new URL(state.urls[0]);
    const sig = u.searchParams.get('X-Goog-Signature') ?? '';
    u.searchParams.set('X-Goog-Signature', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
    const bad = await download(u.toString());
    expect(bad.res.status).toBe(403);
    expect(bad.body.toString()).toContain('<Code>SignatureDoesNotMatch</Code>');

    const v = new URL(state.urls[0]);
    v.searchParams.set('X-Goog-Expires', '604800');
    expect((await download(v.toString())).res.status).toBe(403);
  });

  it('data older than 14 days → 404 NoSuchKey even with a fresh URL', async () => {
    // Time-based (30-day) consent: a one-time grant of a test-mode client would be gone after 7 days.
    const { grant, archiveJobId } = await completeJob(['youtube.shopping'], 'TIME_BASED');
    t += 14 * DAY;
    const s = await api.getState(accounts.mintAccessToken(grant.grantId).token, archiveJobId, QU);
    const gone = await download(s.urls[0]);
    expect(gone.res.status).toBe(404);
    expect(gone.body.toString()).toContain('<Code>NoSuchKey</Code>');
  });

  it('honours Range: 206 with Content-Range and the right bytes; suffix ranges; 416 beyond the end', async () => {
    const { state } = await completeJob(['youtube.subscriptions']);
    const url = state.urls[0];
    const full = await download(url);
    const size = full.body.length;

    const part = await download(url, { Range: 'bytes=10-99' });
    expect(part.res.status).toBe(206);
    expect(part.res.headers.get('content-range')).toBe(`bytes 10-99/${size}`);
    expect(part.res.headers.get('content-length')).toBe('90');
    expect(part.body.equals(full.body.subarray(10, 100))).toBe(true);
    // x-goog-hash stays the whole object's, as GCS sends it.
    expect(part.res.headers.get('x-goog-hash')).toBe(full.res.headers.get('x-goog-hash'));

    const open = await download(url, { Range: `bytes=${size - 5}-` });
    expect(open.res.status).toBe(206);
    expect(open.body.equals(full.body.subarray(size - 5))).toBe(true);

    const suffix = await download(url, { Range: 'bytes=-22' });
    expect(suffix.body.readUInt32LE(0)).toBe(0x06054b50);

    const beyond = await download(url, { Range: `bytes=${size}-` });
    expect(beyond.res.status).toBe(416);
    expect(beyond.res.headers.get('content-range')).toBe(`bytes */${size}`);
  });

  it('expireNextDownloadAfterBytes: the download dies after n bytes and that URL is expired from then on', async () => {
    const { grant, archiveJobId, state } = await completeJob(['youtube.live_chat']);
    sim.faults.expireNextDownloadAfterBytes(50_000);
    const res = await fetch(state.urls[0]);
    expect(res.status).toBe(200);
    const declared = Number(res.headers.get('content-length'));
    let received = 0;
    const reading = (async () => {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
    })();
    // undici's error for a body cut off before its Content-Length.
    await expect(reading).rejects.toThrow('terminated');
    expect(received).toBe(50_000);
    expect(declared).toBeGreaterThan(50_000);

    const after = await download(state.urls[0]);
    expect(after.res.status).toBe(400);
    expect(after.body.toString()).toContain('ExpiredToken');

    const fresh = await api.getState(accounts.mintAccessToken(grant.grantId).token, archiveJobId, QU);
    const ok = await download(fresh.urls[0]);
    expect(ok.body.length).toBe(declared);
  });

  it('expireAllUrls expires every URL issued so far', async () => {
    const { state } = await completeJob(['youtube.public_videos']);
    sim.faults.expireAllUrls();
    expect((await download(state.urls[0])).res.status).toBe(400);
  });
});

describe('transient faults', () => {
  it('failNextCalls(503, Retry-After) → PortabilityApiError with retryAfterSeconds (transient), then the call works', async () => {
    const c = consent(['mymaps.maps']);
    sim.faults.failNextCalls('initiate', 503, 1, 5);
    const e = await apiError(api.initiate(c.token, { resources: ['mymaps.maps'] }, QU));
    expect([e.httpStatus, e.status, e.retryAfterSeconds]).toEqual([503, 'UNAVAILABLE', 5]);
    expect(classifyApiError(e, 'initiate')).toEqual({ kind: 'transient', retryAfterSeconds: 5 });
    await expect(api.initiate(c.token, { resources: ['mymaps.maps'] }, QU)).resolves.toBeDefined();
  });

  it('429 carries reason RATE_LIMIT_EXCEEDED (transient); 500 is INTERNAL (transient)', async () => {
    const c = consent(['streetview.imagery']);
    sim.faults.failNextCalls('checkAccessType', 429, 1);
    sim.faults.failNextCalls('checkAccessType', 500, 1);
    const a = await apiError(api.checkAccessType(c.token, QU));
    expect([a.httpStatus, a.reason]).toEqual([429, 'RATE_LIMIT_EXCEEDED']);
    expect(classifyApiError(a).kind).toBe('transient');
    const b = await apiError(api.checkAccessType(c.token, QU));
    expect([b.httpStatus, b.status]).toEqual([500, 'INTERNAL']);
    expect(classifyApiError(b).kind).toBe('transient');
    await expect(api.checkAccessType(c.token, QU)).resolves.toBeDefined();
  });

  it('download faults answer GCS-style XML', async () => {
    const { state } = await completeJob(['youtube.private_videos']);
    sim.faults.failNextCalls('download', 503, 1, 2);
    const d = await download(state.urls[0]);
    expect(d.res.status).toBe(503);
    expect(d.res.headers.get('retry-after')).toBe('2');
    expect(d.body.toString()).toContain('<Code>ServiceUnavailable</Code>');
    expect((await download(state.urls[0])).res.status).toBe(200);
  });

  it('an unreachable API is a network error (transient)', async () => {
    const dead = new PortabilityApiClient({ apiRoot: 'http://127.0.0.1:1/', timeoutMs: 2000 });
    const err = await dead.checkAccessType('ya29.x', QU).catch((e: unknown) => e);
    expect(classifyApiError(err)).toEqual({ kind: 'transient' });
  });
});

describe('client tolerance (stubbed fetch)', () => {
  const stub = (status: number, body: string, headers: Record<string, string> = {}) =>
    new PortabilityApiClient({ apiRoot: 'https://dataportability.example/', fetchImpl: async () => new Response(body, { status, headers }) });

  it('unknown fields are dropped, an unknown state is STATE_UNSPECIFIED, missing urls are []', async () => {
    const c = stub(200, JSON.stringify({ name: 'archiveJobs/x/portabilityArchiveState', state: 'COMPLETED', extra: 1 }));
    expect(await c.getState('tok', 'x', QU)).toEqual({ name: 'archiveJobs/x/portabilityArchiveState', state: 'STATE_UNSPECIFIED', urls: [] });
    const d = stub(200, JSON.stringify({ archiveJobId: 'j', accessType: 'ACCESS_TYPE_FOREVER' }));
    expect(await d.initiate('tok', { resources: ['a'] }, QU)).toEqual({ archiveJobId: 'j', accessType: 'ACCESS_TYPE_UNSPECIFIED' });
    const e = stub(200, '{}');
    expect(await e.checkAccessType('tok', QU)).toEqual({ oneTimeResources: [], timeBasedResources: [] });
  });

  it('a 2xx with a wrong shape throws a PortabilityApiResponseError (classified invalid)', async () => {
    const err = await stub(200, JSON.stringify({ accessType: 'ACCESS_TYPE_ONE_TIME' }))
      .initiate('tok', { resources: ['a'] }, QU)
      .catch((x: unknown) => x);
    expect((err as Error).name).toBe('PortabilityApiResponseError');
    expect(classifyApiError(err).kind).toBe('invalid');
  });

  it('a non-JSON error body still gives a PortabilityApiError with the HTTP code', async () => {
    const e = await apiError(stub(502, '<html>Bad Gateway</html>').getState('tok', 'x', QU));
    expect([e.httpStatus, e.status, e.reason]).toEqual([502, '', undefined]);
    expect(classifyApiError(e).kind).toBe('transient');
  });

  it('sends the names exactly as the reference, with the bearer token and quotaUser', async () => {
    const seen: { method: string; url: string; auth: string | null; body: string | null }[] = [];
    const c = new PortabilityApiClient({
      apiRoot: 'https://dataportability.example',
      fetchImpl: async (input, init) => {
        const h = new Headers(init?.headers);
        seen.push({ method: init?.method ?? 'GET', url: String(input), auth: h.get('authorization'), body: (init?.body as string | undefined) ?? null });
        return new Response(JSON.stringify({ archiveJobId: 'n', name: 'archiveJobs/j/portabilityArchiveState', state: 'IN_PROGRESS' }), { status: 200 });
      },
    });
    await c.getState('tok', 'j', 'q');
    await c.retry('tok', 'archiveJobs/j', 'q');
    await c.cancel('tok', 'j', 'q');
    await c.resetAuthorization('tok', 'q');
    await c.initiate('tok', { resources: ['myactivity.search'], startTime: '2026-01-01T00:00:00Z' }, 'q');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET https://dataportability.example/v1/archiveJobs/j/portabilityArchiveState?quotaUser=q',
      'POST https://dataportability.example/v1/archiveJobs/j:retry?quotaUser=q',
      'POST https://dataportability.example/v1/archiveJobs/j:cancel?quotaUser=q',
      'POST https://dataportability.example/v1/authorization:reset?quotaUser=q',
      'POST https://dataportability.example/v1/portabilityArchive:initiate?quotaUser=q',
    ]);
    expect(seen.every((s) => s.auth === 'Bearer tok')).toBe(true);
    expect(seen[1].body).toBe('{}');
    expect(JSON.parse(seen[4].body ?? '')).toEqual({ resources: ['myactivity.search'], startTime: '2026-01-01T00:00:00Z' });
  });

  it('parses Retry-After as seconds or an HTTP date, and ErrorInfo metadata', () => {
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30);
    expect(parseRetryAfter('soon')).toBeUndefined();
    const e = parseApiError(
      'x',
      409,
      JSON.stringify({ error: { code: 409, status: 'ALREADY_EXISTS', message: 'm', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'R', metadata: { job_id: 'j' } }] } }),
      null,
    );
    expect([e.reason, e.metadata, e.status]).toEqual(['R', { job_id: 'j' }, 'ALREADY_EXISTS']);
  });
});

it('leaves no archive files behind after stop()', async () => {
  const a = new GoogleAccounts(clock);
  const s = await startPortabilityApiSimulator({ accounts: a, jobDurationMs: 0, archiveBytes: 5000 });
  const g = a.createGrant({ googleUserId: 'u', resources: ['chrome.autofill'] });
  const tok = a.mintAccessToken(g.grantId).token;
  const client = new PortabilityApiClient({ apiRoot: s.apiRoot });
  const { archiveJobId } = await client.initiate(tok, { resources: ['chrome.autofill'] }, QU);
  await client.getState(tok, archiveJobId, QU);
  const file = s.jobs()[0].archives?.[0].path ?? '';
  expect(existsSync(file)).toBe(true);
  await s.stop();
  expect(existsSync(file)).toBe(false);
});

describe('zip archives', () => {
  /** Reads the central directory and checks every entry's CRC-32 by inflating it: validity without unzip. */
  function checkZipStructure(buf: Buffer): string[] {
    const eocd = buf.length - 22;
    expect(buf.readUInt32LE(eocd)).toBe(0x06054b50);
    const entries = buf.readUInt16LE(eocd + 10);
    const cdSize = buf.readUInt32LE(eocd + 12);
    let p = buf.readUInt32LE(eocd + 16);
    expect(p + cdSize).toBe(eocd);
    const names: string[] = [];
    for (let i = 0; i < entries; i++) {
      expect(buf.readUInt32LE(p)).toBe(0x02014b50);
      const method = buf.readUInt16LE(p + 10);
      const crc = buf.readUInt32LE(p + 16);
      const csize = buf.readUInt32LE(p + 20);
      const usize = buf.readUInt32LE(p + 24);
      const nlen = buf.readUInt16LE(p + 28);
      const local = buf.readUInt32LE(p + 42);
      const name = buf.subarray(p + 46, p + 46 + nlen).toString('utf8');
      expect(buf.readUInt32LE(local)).toBe(0x04034b50);
      const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
      const raw = buf.subarray(dataStart, dataStart + csize);
      const data = method === 8 ? inflateRawSync(raw) : raw;
      expect(data.length).toBe(usize);
      expect(crc32(data)).toBe(crc);
      names.push(name);
      p += 46 + nlen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
    }
    return names;
  }

  it('writes a valid zip near the requested size, with checksums as GCS reports them', async () => {
    const file = path.join(tmp, 'direct.zip');
    const r = await writeZipArchive(file, { seed: 'abc', approxBytes: 3_000_000, resource: 'myactivity.search' });
    const buf = await readFile(file);
    expect(r.size).toBe(buf.length);
    expect(Math.abs(r.size - 3_000_000)).toBeLessThan(100_000);
    expect({ crc32c: r.crc32c, md5: r.md5 }).toEqual(checksums(buf));
    const names = checkZipStructure(buf);
    expect(names.length).toBe(r.entries);
    expect(names[0]).toBe('Portability/My Activity/Search/MyActivity-00001.json');
    unzip(['-tq', file]);
    const json = JSON.parse(unzip(['-p', file, names[0]], { maxBuffer: 64 * 1024 * 1024 }).toString()) as { header: string; time: string }[];
    expect(json[0].header).toBe('Search');
    expect(Date.parse(json[0].time)).not.toBeNaN();
  });

  it('is deterministic from the seed; another seed gives other bytes', async () => {
    const a = await writeZipArchive(path.join(tmp, 'a.zip'), { seed: 's1', approxBytes: 50_000, resource: 'chrome.history' });
    const b = await writeZipArchive(path.join(tmp, 'b.zip'), { seed: 's1', approxBytes: 50_000, resource: 'chrome.history' });
    const c = await writeZipArchive(path.join(tmp, 'c.zip'), { seed: 's2', approxBytes: 50_000, resource: 'chrome.history' });
    expect(b.md5).toBe(a.md5);
    expect(c.md5).not.toBe(a.md5);
  });

  it('tiny and archive-browser archives are valid too', async () => {
    const tiny = path.join(tmp, 'tiny.zip');
    await writeZipArchive(tiny, { seed: 't', approxBytes: 0, resource: 'play.devices' });
    expect(checkZipStructure(await readFile(tiny)).length).toBeGreaterThanOrEqual(1);
    const browser = path.join(tmp, 'browser.zip');
    await writeZipArchive(browser, { seed: 't', approxBytes: 20_000, resource: 'play.devices', kind: 'archive-browser' });
    expect(checkZipStructure(await readFile(browser))[0]).toBe('archive_browser.html');
  });
});
