/**
 * The whole pipeline through the public API, on the local stack: real Firestore emulator, the
 * Cloud Storage and Cloud Tasks stand-ins spoken to by the official clients, the simulated Data
 * Portability API, and the functions served by the Functions Framework.
 */
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { paths } from '../../functions/src/adapters/firestore-paths';
import { api, authorizedUser, crc32cOfObject, objectNames, REDIRECT, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;
let db: Firestore;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: 'demo-e2e-pipeline',
    jobDurationMs: 400,
    archiveBytes: 300_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
  });
  db = new Firestore({ projectId: 'demo-e2e-pipeline' });
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

async function start(token: string, body: unknown = {}, headers: Record<string, string> = {}) {
  return api<ExportBody>(stack, token, 'POST', '/v1/exports', body, headers);
}

async function objectGenerations(prefix: string): Promise<Record<string, string>> {
  const [files] = await stack.storage.bucket(stack.config.archive.bucket).getFiles({ prefix });
  return Object.fromEntries(files.map((f) => [f.name, String(f.metadata.generation)]));
}

async function countDocs(collection: string): Promise<number> {
  return (await db.collection(collection).count().get()).data().count;
}

describe('an export through the public API', () => {
  it('copies several resource groups, multi-URL archives included, verified in the bucket', async () => {
    const { token } = await authorizedUser(stack, 'alice', ['myactivity.search', 'chrome.history']);
    stack.portability.faults.urlsPerJob('myactivity.search', 2);
    const res = await start(token);
    expect(res.status).toBe(202);
    expect(res.body.state).toBe('RUNNING');
    expect(res.body.jobs.map((j) => [j.resource, j.state])).toEqual([
      ['chrome.history', 'INITIATING'],
      ['myactivity.search', 'INITIATING'],
    ]);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const search = done.jobs.find((j) => j.resource === 'myactivity.search');
    expect(search?.archives).toHaveLength(2);
    const simJobs = stack.portability.jobs();
    for (const job of done.jobs) {
      expect(job.attempts).toBe(1);
      for (const a of job.archives ?? []) {
        expect(a.name).toMatch(new RegExp(`^alice/${done.exportId}/${job.resource.replace('.', '\\.')}/archive-\\d-of-\\d\\.zip$`));
        // What is in the bucket is byte for byte what Google served.
        expect(await crc32cOfObject(stack, a.bucket, a.name)).toBe(a.crc32c);
        const sources = simJobs.flatMap((j) => j.archives ?? []);
        expect(sources.some((s) => s.crc32c === a.crc32c && s.size === a.size)).toBe(true);
      }
    }
    expect(await objectNames(stack, `alice/${done.exportId}/`)).toHaveLength(3);
    // quotaUser is a hash of the user, never the user id.
    const quotaUsers = new Set(stack.portability.calls.filter((c) => c.quotaUser).map((c) => c.quotaUser));
    expect([...quotaUsers].every((q) => q && q.length <= 40 && !q.includes('alice'))).toBe(true);
  });

  it('retries a job Google FAILED, following the new job id', async () => {
    const { token } = await authorizedUser(stack, 'bob', ['youtube.subscriptions']);
    stack.portability.faults.failNextJobs('youtube.subscriptions', 2);
    const res = await start(token);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.jobs[0]?.attempts).toBe(3);
    expect(stack.portability.calls.filter((c) => c.method === 'retry' && c.status === 200).length).toBeGreaterThanOrEqual(2);
  });

  it('gives up after Google FAILED four times (three retries) with a clear job error', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'carol', ['youtube.comments']);
    // Google here would retry more often than the real one, so only the pipeline's own cap stops it.
    stack.portability.faults.retriesAllowed(10);
    stack.portability.faults.failNextJobs('youtube.comments', 6, googleUserId);
    try {
      const res = await start(token);
      const done = await waitForExport(stack, token, res.body.exportId);
      expect(done.state).toBe('FAILED');
      expect(done.jobs[0]).toMatchObject({ state: 'FAILED', attempts: 4, error: { code: 'ARCHIVE_FAILED' } });
      expect(done.jobs[0]?.error?.message).toMatch(/failed 4 times, retries exhausted/);
      const carols = new Set(stack.portability.jobs().filter((j) => j.googleUserId === googleUserId).map((j) => j.id));
      expect(carols.size).toBe(4);
      const retries = stack.portability.calls.filter((c) => c.method === 'retry' && c.jobId !== undefined && carols.has(c.jobId));
      expect(retries.map((c) => c.status)).toEqual([200, 200, 200]);
    } finally {
      stack.portability.faults.retriesAllowed(3);
    }
  });

  it('cancels a running export at Google', async () => {
    const { token } = await authorizedUser(stack, 'dave', ['maps.reviews']);
    stack.portability.faults.jobDuration('maps.reviews', 600_000);
    const res = await start(token);
    await waitForExport(stack, token, res.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    const cancelled = await api<ExportBody>(stack, token, 'POST', `/v1/exports/${res.body.exportId}:cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.state).toBe('CANCELLED');
    expect(cancelled.body.jobs[0]?.state).toBe('CANCELLED');
    const simJob = stack.portability.jobs().find((j) => j.resources.includes('maps.reviews'));
    expect(simJob?.state).toBe('CANCELLED');
    // Cancelling again is harmless; the pipeline's pending check finds the job finished and drops it.
    expect((await api(stack, token, 'POST', `/v1/exports/${res.body.exportId}:cancel`)).status).toBe(200);
  });

  it('resets the authorization at Google and forgets the stored grant', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'erin', ['play.installs']);
    expect(await db.doc(paths.grant('erin')).get().then((d) => d.exists)).toBe(true);
    const res = await api(stack, token, 'POST', '/v1/authorizations:reset');
    expect(res.status).toBe(200);
    expect(await db.doc(paths.grant('erin')).get().then((d) => d.exists)).toBe(false);
    const grants = [...stack.accounts.grants.values()].filter((g) => g.googleUserId === googleUserId);
    expect(grants.every((g) => g.revoked)).toBe(true);
    const after = await start(token);
    expect(after.status).toBe(409);
    expect(after.body).toMatchObject({ error: { code: 'NO_AUTHORIZATION' } });
  });

  it('exports what a partial consent granted and refuses the rest', async () => {
    const { token, grant } = await authorizedUser(stack, 'frank', ['myactivity.search', 'chrome.history'], { granted: ['chrome.history'] });
    expect(grant).toMatchObject({ oneTimeResources: ['chrome.history'], timeBasedResources: [] });
    const refused = await start(token, { resources: ['myactivity.search'] });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: { field: 'resources' } });
    const res = await start(token);
    expect(res.body.jobs.map((j) => j.resource)).toEqual(['chrome.history']);
    expect((await waitForExport(stack, token, res.body.exportId)).state).toBe('SUCCEEDED');
  });

  it('gets fresh URLs when a signed URL expires in the middle of a copy', async () => {
    const { token } = await authorizedUser(stack, 'grace', ['chrome.bookmarks']);
    stack.portability.faults.expireNextDownloadAfterBytes(50_000);
    const res = await start(token);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const a = done.jobs[0]?.archives?.[0];
    expect(a).toBeDefined();
    expect(await crc32cOfObject(stack, a!.bucket, a!.name)).toBe(a!.crc32c);
    const getStates = stack.portability.calls.filter((c) => c.method === 'getState' && c.jobId === stack.portability.jobs().find((j) => j.resources.includes('chrome.bookmarks'))?.id);
    // one call saw COMPLETE, one fetched the copy's URLs, one refreshed them after the expiry
    expect(getStates.length).toBeGreaterThanOrEqual(3);
    // ...all within one copy step: the refresh happened in place, not through a task retry.
    const copyDeliveries = stack.tasks.deliveries.filter((d) => d.url.startsWith(stack.config.tasks.copyUrl) && d.taskName.includes(`-copy-`));
    expect(copyDeliveries.filter((d) => d.status !== 200)).toEqual([]);
  });

  it('adopts the job Google already runs (ALREADY_EXISTS) instead of failing', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'heidi', ['discover.likes']);
    stack.portability.faults.jobDuration('discover.likes', 1500);
    // Someone (an earlier delivery that crashed before recording) already started this job at Google.
    const grant = [...stack.accounts.grants.values()].find((g) => g.googleUserId === googleUserId && !g.revoked)!;
    const access = stack.accounts.mintAccessToken(grant.grantId);
    const pre = await fetch(`${stack.portability.apiRoot}v1/portabilityArchive:initiate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${access.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ resources: ['discover.likes'] }),
    });
    const { archiveJobId } = (await pre.json()) as { archiveJobId: string };
    const res = await start(token);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const stored = (await db.doc(`jobs/${done.jobs[0]!.jobId}`).get()).data();
    expect(stored?.archiveJobIds).toEqual([archiveJobId]);
  });

  it('answers the same export for the same Idempotency-Key, and 409 for a different body', async () => {
    const { token } = await authorizedUser(stack, 'ivan', ['shopping.reviews', 'shopping.addresses']);
    const first = await start(token, { resources: ['shopping.reviews'] }, { 'Idempotency-Key': 'k-1' });
    const again = await start(token, { resources: ['shopping.reviews'] }, { 'Idempotency-Key': 'k-1' });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.exportId).toBe(first.body.exportId);
    const other = await start(token, { resources: ['shopping.addresses'] }, { 'Idempotency-Key': 'k-1' });
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    await waitForExport(stack, token, first.body.exportId);
    const list = await api<{ exports: ExportBody[] }>(stack, token, 'GET', '/v1/exports');
    expect(list.body.exports.map((e) => e.exportId)).toEqual([first.body.exportId]);
  });

  it('lists a user\'s exports newest first, paginated', async () => {
    const { token } = await authorizedUser(stack, 'judy', ['play.library', 'play.devices', 'play.grouping']);
    const ids: string[] = [];
    for (const r of ['play.library', 'play.devices', 'play.grouping']) ids.push((await start(token, { resources: [r] })).body.exportId);
    const page1 = await api<{ exports: ExportBody[]; nextPageToken?: string }>(stack, token, 'GET', '/v1/exports?pageSize=2');
    expect(page1.body.exports.map((e) => e.exportId)).toEqual([ids[2], ids[1]]);
    expect(page1.body.nextPageToken).toBeTruthy();
    const page2 = await api<{ exports: ExportBody[]; nextPageToken?: string }>(stack, token, 'GET', `/v1/exports?pageSize=2&pageToken=${page1.body.nextPageToken}`);
    expect(page2.body.exports.map((e) => e.exportId)).toEqual([ids[0]]);
    expect(page2.body.nextPageToken).toBeUndefined();
    for (const id of ids) await waitForExport(stack, token, id);
  });
});

describe('lost work is found again', () => {
  it('the sweeper re-enqueues a job whose task was lost, and the export completes', async () => {
    const { token } = await authorizedUser(stack, 'kim', ['play.playpoints']);
    stack.tasks.dropNext(1); // the initiate task vanishes, as if its delivery never happened
    const res = await start(token);
    // Nothing else moves the job: its only task is gone. (The grace period itself is tested on a
    // controllable clock in test/integration/sweeper.test.ts.)
    expect((await api<ExportBody>(stack, token, 'GET', `/v1/exports/${res.body.exportId}`)).body.jobs[0]?.state).toBe('INITIATING');
    let requeued = 0;
    for (let i = 0; i < 60 && requeued === 0; i++) {
      requeued = (await stack.sweep()).requeued;
      if (requeued === 0) await new Promise((r) => setTimeout(r, 500));
    }
    expect(requeued).toBeGreaterThanOrEqual(1);
    expect((await waitForExport(stack, token, res.body.exportId)).state).toBe('SUCCEEDED');
    const job = (await db.collection('jobs').where('exportId', '==', res.body.exportId).get()).docs[0]?.data();
    expect(job?.nextCheckAt).toBeUndefined();
  });

  it('a duplicate delivery of every step changes nothing', async () => {
    const { token } = await authorizedUser(stack, 'leo', ['play.promotions']);
    const res = await start(token);
    const done = await waitForExport(stack, token, res.body.exportId);
    const jobId = done.jobs[0]!.jobId;
    const before = (await db.doc(`jobs/${jobId}`).get()).data();
    const objects = await objectNames(stack, `leo/`);
    const generations = await objectGenerations(`leo/`);
    expect(objects.length).toBeGreaterThan(0);
    // Deliver every step again, at every seq the job went through, with the invoker's token.
    for (let seq = 0; seq <= (before?.seq as number); seq++) {
      for (const step of ['initiate', 'check', 'copy'] as const) {
        const status = await stack.deliverTask({ jobId, step, seq });
        expect(status).toBe(200);
      }
    }
    expect((await db.doc(`jobs/${jobId}`).get()).data()).toEqual(before);
    expect(await objectNames(stack, `leo/`)).toEqual(objects);
    // Not rewritten either: the same generations, each written once.
    expect(await objectGenerations(`leo/`)).toEqual(generations);
    for (const name of objects) expect(stack.gcs.writesOf(stack.config.archive.bucket, name), name).toBe(1);
  });
});

describe('isolation and bad input', () => {
  it('answers 404 when a user reads or cancels another user\'s export', async () => {
    const owner = await authorizedUser(stack, 'mallory-victim', ['saved.collections']);
    const res = await start(owner.token);
    const intruder = await stack.idToken('mallory');
    expect((await api(stack, intruder, 'GET', `/v1/exports/${res.body.exportId}`)).status).toBe(404);
    const cancel = await api(stack, intruder, 'POST', `/v1/exports/${res.body.exportId}:cancel`);
    expect(cancel.status).toBe(404);
    const list = await api<{ exports: unknown[] }>(stack, intruder, 'GET', '/v1/exports');
    expect(list.body.exports).toEqual([]);
    expect((await waitForExport(stack, owner.token, res.body.exportId)).state).toBe('SUCCEEDED');
  });

  it('refuses requests without a valid ID token', async () => {
    for (const token of [undefined, 'garbage', `${await stack.idToken('x')}tampered`]) {
      const res = await api(stack, token, 'GET', '/v1/exports');
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
  });

  it('answers 400 naming the field on every route, and writes nothing', async () => {
    const { token } = await authorizedUser(stack, 'oscar', ['myactivity.play']);
    const before = { exports: await countDocs('exports'), jobs: await countDocs('jobs'), grants: await countDocs('grants'), consents: await countDocs('consentStates') };
    const objectsBefore = (await objectNames(stack)).length;
    const cases: Array<[string, string, unknown, string | undefined, Record<string, string>?]> = [
      ['POST', '/v1/authorizations', {}, 'code'],
      ['POST', '/v1/authorizations', { code: 'x' }, 'state'],
      ['POST', '/v1/authorizations', { code: 'x', state: 'not-issued', extra: 1 }, 'extra'],
      ['POST', '/v1/authorizations', { code: 'x', state: 'not-issued' }, 'state'],
      ['POST', '/v1/authorizations:start', { resources: ['myactivity.play'], redirectUri: 'not a url' }, 'redirectUri'],
      ['POST', '/v1/authorizations:start', { resources: ['myactivity.play'], redirectUri: 'https://a.example/cb' }, 'redirectUri'],
      ['POST', '/v1/authorizations:start', { resources: ['not.a.group'], redirectUri: REDIRECT }, 'resources.0'],
      ['POST', '/v1/authorizations:start', { resources: [], redirectUri: REDIRECT }, 'resources'],
      ['POST', '/v1/authorizations:start', { redirectUri: REDIRECT }, 'resources'],
      ['POST', '/v1/exports', { resources: ['not.a.group'] }, 'resources.0'],
      ['POST', '/v1/exports', { resources: [] }, 'resources'],
      ['POST', '/v1/exports', { resources: 'myactivity.play' }, 'resources'],
      ['POST', '/v1/exports', { startTime: 'yesterday' }, 'startTime'],
      ['POST', '/v1/exports', { startTime: '2026-02-01T00:00:00Z', endTime: '2026-01-01T00:00:00Z' }, 'startTime'],
      ['POST', '/v1/exports', { bogus: true }, 'bogus'],
      ['POST', '/v1/exports', [1, 2], 'body'],
      ['POST', '/v1/exports', {}, 'Idempotency-Key', { 'Idempotency-Key': 'has space' }],
      ['GET', '/v1/exports?pageSize=0', undefined, 'query.pageSize'],
      ['GET', '/v1/exports?pageSize=abc', undefined, 'query.pageSize'],
      ['GET', '/v1/exports?pageToken=%24%24', undefined, 'query.pageToken'],
      ['GET', '/v1/exports?color=blue', undefined, 'query.color'],
      ['POST', '/v1/exports/0123456789abcdef0123:cancel', { force: true }, 'force'],
      ['POST', '/v1/authorizations:reset', { now: 1 }, 'now'],
    ];
    for (const [method, route, body, field, headers] of cases) {
      const res = await api<{ error: { code: string; message: string; field?: string } }>(stack, token, method, route, body, headers);
      expect(res.status, `${method} ${route} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.error.message.length).toBeGreaterThan(0);
      expect(res.body.error.field, `${method} ${route} ${JSON.stringify(body)}`).toBe(field);
    }
    const odd: Array<[string, string, number]> = [
      ['GET', '/v1/nothing', 404],
      ['DELETE', '/v1/authorizations', 405],
      ['GET', '/v1/authorizations:start', 405],
      ['GET', '/v1/exports/not-an-id', 404],
      ['GET', '/v1/exports/0123456789abcdef0123', 404],
    ];
    for (const [method, route, status] of odd) {
      const res = await api<{ error: { code: string } }>(stack, token, method, route);
      expect(res.status, `${method} ${route}`).toBe(status);
      expect(res.body.error.code).toBeTruthy();
    }
    const textBody = await fetch(`${stack.apiUrl}/v1/exports`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'text/plain' }, body: 'hello' });
    expect(textBody.status).toBe(415);
    expect(await countDocs('exports')).toBe(before.exports);
    expect(await countDocs('jobs')).toBe(before.jobs);
    expect(await countDocs('grants')).toBe(before.grants);
    expect(await countDocs('consentStates')).toBe(before.consents);
    expect((await objectNames(stack)).length).toBe(objectsBefore);
  });

  it('private task endpoints refuse callers without the invoker\'s OIDC token, changing nothing', async () => {
    const before = await countDocs('jobs');
    const body = JSON.stringify({ jobId: '0123456789abcdef0123', step: 'check', seq: 0 });
    const userToken = await stack.idToken('alice');
    const { checkUrl, copyUrl, serviceAccount } = stack.config.tasks;
    const invoker = (aud: string, email = serviceAccount) => stack.tasksOidcIssuer.sign({ aud, email, email_verified: true, sub: '1000' }, 300);
    const post = (url: string, auth?: string) =>
      fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) }, body });
    for (const [url, other] of [
      [checkUrl, copyUrl],
      [copyUrl, checkUrl],
    ] as const) {
      const refused = [
        undefined,
        'Bearer nope',
        `Bearer ${userToken}`,
        // Correctly signed by the tasks issuer for the invoker, but minted for the other function.
        `Bearer ${await invoker(other)}`,
      ];
      for (const auth of refused) expect((await post(url, auth)).status, auth?.slice(0, 20)).toBe(401);
      // The right audience, signed for another service account: authenticated, not the invoker.
      expect((await post(url, `Bearer ${await invoker(url, 'someone-else@demo-portability.iam.gserviceaccount.com')}`)).status).toBe(403);
      // The invoker's token for this function passes (an unknown job is then dropped with 200).
      expect((await post(url, `Bearer ${await invoker(url)}`)).status).toBe(200);
    }
    expect(await countDocs('jobs')).toBe(before);
  });
});
