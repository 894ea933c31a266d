/**
 * The rule behind the API's edges: an outcome never depends on timing. Each invariant is tried
 * with the same requests sent all at once, through the public API on the local stack, and checked
 * in Firestore afterwards.
 */
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RESOURCE_GROUPS } from '../../functions/src/domain/resource-groups';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { scheduleRunTaskIdFor, taskIdFor } from '../../functions/src/adapters/cloud-tasks-queue';
import { api, authorizedUser, objectNames, waitForExport, type ExportBody } from '../support/api-client';

const PROJECT = 'demo-e2e-concurrency';
let stack: LocalStack;
let db: Firestore;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    // Long jobs by default: exports stay RUNNING while the requests race.
    jobDurationMs: 600_000,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    // Server faults are shown with the test that met them (a 500 here is a failure to explain).
    logLevel: 'error',
    logDestination: { write: (line: string) => (line.includes('request failed') ? process.stderr.write(line) : true) },
    env: { MAX_EXPORTS_PER_DAY: '10', MAX_CONCURRENT_EXPORTS: '3' },
  });
  db = new Firestore({ projectId: PROJECT });
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

const statuses = (answers: Array<{ status: number }>): Record<number, number> =>
  answers.reduce<Record<number, number>>((n, a) => ({ ...n, [a.status]: (n[a.status] ?? 0) + 1 }), {});

const exportsOf = async (userId: string): Promise<number> => (await db.collection('exports').where('userId', '==', userId).get()).size;

describe('abuse limits hold under concurrency', () => {
  it('15 concurrent exports of one user, each for another group: exactly 3 run (the concurrent limit), as one by one', async () => {
    // 15 groups: about what one consent URL can carry.
    const groups = RESOURCE_GROUPS.slice(0, 15);
    const { token } = await authorizedUser(stack, 'con-ada', [...groups]);
    const answers = await Promise.all(groups.map((g) => api(stack, token, 'POST', '/v1/exports', { resources: [g] })));
    expect(statuses(answers)).toEqual({ 202: 3, 429: 12 });
    for (const a of answers.filter((x) => x.status === 429)) expect(a.body).toMatchObject({ error: { code: 'CONCURRENT_EXPORT_LIMIT' } });
    expect(await exportsOf('con-ada')).toBe(3);

    // The same requests one by one end the same way.
    const { token: seqToken } = await authorizedUser(stack, 'con-bea', [...groups]);
    const seq = [];
    for (const g of groups) seq.push(await api(stack, seqToken, 'POST', '/v1/exports', { resources: [g] }));
    expect(statuses(seq)).toEqual({ 202: 3, 429: 12 });
    expect(await exportsOf('con-bea')).toBe(3);
  });

  it('the daily limit holds under concurrency: cancelled exports free a running slot, never a daily one', async () => {
    const groups = RESOURCE_GROUPS.slice(0, 12);
    const { token } = await authorizedUser(stack, 'con-cy', [...groups]);
    let started = 0;
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(groups.map((g) => api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: [g] })));
      const accepted = answers.filter((a) => a.status === 202);
      started += accepted.length;
      for (const a of answers.filter((x) => x.status !== 202)) expect(a.status).toBe(429);
      await Promise.all(accepted.map((a) => api(stack, token, 'POST', `/v1/exports/${a.body.exportId}:cancel`)));
    }
    // 3 + 3 + 3 + 1: ten in 24 hours.
    expect(started).toBe(10);
    expect(await exportsOf('con-cy')).toBe(10);
    const after = await api(stack, token, 'POST', '/v1/exports', { resources: [groups[0]] });
    expect(after.body).toMatchObject({ error: { code: 'DAILY_EXPORT_LIMIT' } });
  });
});

describe('one export per resource group', () => {
  it('10 concurrent exports of one group: one runs, the others are told which export holds it', async () => {
    const { token } = await authorizedUser(stack, 'con-dan', ['myactivity.search']);
    const answers = await Promise.all(Array.from({ length: 10 }, () => api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.search'] })));
    expect(statuses(answers)).toEqual({ 202: 1, 409: 9 });
    const holder = answers.find((a) => a.status === 202)?.body.exportId;
    for (const a of answers.filter((x) => x.status === 409)) {
      expect(a.body).toMatchObject({ error: { code: 'RESOURCE_GROUP_BUSY' } });
      expect(JSON.stringify(a.body)).toContain(holder);
    }
    expect(await exportsOf('con-dan')).toBe(1);
  });

  it('a second export of a group with a time window is refused while the first holds it, and runs once it ended', async () => {
    const { token } = await authorizedUser(stack, 'con-eve', ['myactivity.search']);
    const x = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(x.status).toBe(202);
    const y = await api(stack, token, 'POST', '/v1/exports', { startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' });
    expect(y.status).toBe(409);
    expect(y.body).toMatchObject({ error: { code: 'RESOURCE_GROUP_BUSY' } });
    expect(JSON.stringify(y.body)).toContain(x.body.exportId);
    expect((await api(stack, token, 'POST', `/v1/exports/${x.body.exportId}:cancel`)).status).toBe(200);
    // A cancel that meets X's initiate in flight ends X only once Google's job is cancelled: the group frees then.
    expect((await waitForExport(stack, token, x.body.exportId)).state).toBe('CANCELLED');
    const again = await api(stack, token, 'POST', '/v1/exports', { startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' });
    expect(again.status).toBe(202);
  });
});

describe('schedules under concurrency', () => {
  it('10 concurrent schedules for one group: one is created and starts one run', async () => {
    const { token } = await authorizedUser(stack, 'con-fay', ['myactivity.youtube'], { accessType: 'TIME_BASED' });
    const answers = await Promise.all(Array.from({ length: 10 }, () => api(stack, token, 'POST', '/v1/schedules', { resources: ['myactivity.youtube'] })));
    expect(statuses(answers)).toEqual({ 201: 1, 409: 9 });
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body).toMatchObject({ error: { code: 'SCHEDULE_EXISTS' } });
    expect((await db.collection('schedules').where('userId', '==', 'con-fay').get()).size).toBe(1);
    // Its one run: exactly one export, whatever the tasks' timing.
    const deadline = Date.now() + 20_000;
    while ((await db.collection('exports').where('userId', '==', 'con-fay').get()).size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    expect(await exportsOf('con-fay')).toBe(1);
  });
});

describe('a schedule and an export of the same group', () => {
  it('a scheduled run skips a group another export is exporting, instead of failing or taking its job over', async () => {
    const { token } = await authorizedUser(stack, 'con-lea', ['myactivity.play'], { accessType: 'TIME_BASED' });
    const manual = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.play'] });
    expect(manual.status).toBe(202);
    const created = await api<{ scheduleId: string }>(stack, token, 'POST', '/v1/schedules', { resources: ['myactivity.play'] });
    expect(created.status).toBe(201);
    const runTask = scheduleRunTaskIdFor({ scheduleId: created.body.scheduleId, run: 1 });
    for (const deadline = Date.now() + 20_000; !stack.tasks.deliveries.some((d) => d.taskName.endsWith(runTask)); ) {
      if (Date.now() > deadline) throw new Error('the first run was never delivered');
      await new Promise((r) => setTimeout(r, 50));
    }
    const delivery = stack.tasks.deliveries.find((d) => d.taskName.endsWith(runTask));
    expect(delivery?.status).toBe(200);
    // The run found the group busy: no second export of it, and the schedule waits with its window.
    expect(await exportsOf('con-lea')).toBe(1);
    const schedule = await api<{ runCount: number; state: string }>(stack, token, 'GET', `/v1/schedules/${created.body.scheduleId}`);
    expect(schedule.body).toMatchObject({ state: 'ACTIVE', runCount: 0 });
  });
});

describe('user ids Firestore reserves', () => {
  // The API's user ids are [A-Za-z0-9_-]{1,128} (Firebase and Google ids fit): within that, ids that
  // Firestore would refuse as document ids must work too.
  for (const sub of ['__x__', '__name__', '__', '__key__']) {
    it(`a caller whose sub is ${JSON.stringify(sub)} consents, exports and reads their export`, async () => {
      stack.portability.faults.jobDuration('chrome.bookmarks', 300);
      const { token } = await authorizedUser(stack, sub, ['chrome.bookmarks']);
      const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['chrome.bookmarks'] });
      expect(started.status).toBe(202);
      expect((await api(stack, token, 'GET', `/v1/exports/${started.body.exportId}`)).status).toBe(200);
      expect((await api(stack, token, 'GET', '/v1/exports')).status).toBe(200);
    });
  }

  it('a sub outside the API\'s user ids is refused with a JSON 403 before anything is stored', async () => {
    const token = await stack.idToken('a/b');
    const res = await api(stack, token, 'POST', '/v1/exports', {});
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: 'PERMISSION_DENIED' } });
    expect(await exportsOf('a/b')).toBe(0);
  });
});

describe('delete racing an Idempotency-Key replay', () => {
  it('no interleaving answers 5xx or leaves an idempotency record pointing nowhere', async () => {
    stack.portability.faults.jobDuration('chrome.history', 200);
    const { token } = await authorizedUser(stack, 'con-gus', ['chrome.history']);
    const seen: number[] = [];
    // Four rounds: each makes at most two exports (the first, and one replay after the delete), within the daily 10.
    for (let i = 0; i < 4; i++) {
      const key = `race-${i}`;
      const first = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['chrome.history'] }, { 'Idempotency-Key': key });
      expect(first.status).toBe(202);
      await waitForExport(stack, token, first.body.exportId);
      const answers = await Promise.all([
        api(stack, token, 'DELETE', `/v1/exports/${first.body.exportId}`),
        ...Array.from({ length: 4 }, () => api(stack, token, 'POST', '/v1/exports', { resources: ['chrome.history'] }, { 'Idempotency-Key': key })),
      ]);
      for (const a of answers) {
        seen.push(a.status);
        expect(a.status, JSON.stringify(a.body)).toBeLessThan(500);
      }
      // Let any export a replay created finish, so the next round's group is free.
      const list = await api<{ exports: ExportBody[] }>(stack, token, 'GET', '/v1/exports');
      for (const e of list.body.exports) if (e.state === 'RUNNING') await waitForExport(stack, token, e.exportId);
    }
    expect(seen).toContain(204);
    const records = await db.collection('idempotency').where('userId', '==', 'con-gus').get();
    for (const r of records.docs) expect((await db.doc(`exports/${String(r.get('exportId'))}`).get()).exists).toBe(true);
  });
});

describe('cancel while a Google job is being started', () => {
  const until = async (what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> => {
    for (const deadline = Date.now() + timeoutMs; !ok(); ) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  it('a cancel during a slowed initiate ends CANCELLED and the job the initiate started is cancelled at Google', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'con-hal', ['maps.reviews'], { accessType: 'TIME_BASED' });
    const before = stack.portability.calls.length;
    // The first initiate answers 503 with Retry-After: 2; the step waits in place, holding its lease, then calls again.
    stack.portability.faults.failNextCalls('initiate', 503, 1, 2);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['maps.reviews'] });
    expect(started.status).toBe(202);
    await until('the first initiate', () => stack.portability.calls.slice(before).some((c) => c.method === 'initiate' && c.status === 503));
    const cancelled = await api<ExportBody>(stack, token, 'POST', `/v1/exports/${started.body.exportId}:cancel`);
    expect(cancelled.status).toBe(200);
    const done = await waitForExport(stack, token, started.body.exportId);
    expect(done.state).toBe('CANCELLED');
    const atGoogle = stack.portability.jobs().filter((j) => j.googleUserId === googleUserId);
    expect(atGoogle.length).toBe(1);
    expect(atGoogle.map((j) => j.state)).toEqual(['CANCELLED']);
  });

  it('a cancel during a slowed archive retry ends CANCELLED and the retried job is cancelled at Google', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'con-ike', ['maps.photos_videos'], { accessType: 'TIME_BASED' });
    stack.portability.faults.jobDuration('maps.photos_videos', 300);
    stack.portability.faults.failNextJobs('maps.photos_videos', 1, googleUserId);
    const before = stack.portability.calls.length;
    stack.portability.faults.failNextCalls('retry', 503, 1, 2);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['maps.photos_videos'] });
    // The original fails within 300 ms; the job its retry starts runs long, so the cancel finds it running.
    await until('the original job at Google', () => stack.portability.jobs().some((j) => j.googleUserId === googleUserId));
    stack.portability.faults.jobDuration('maps.photos_videos', 600_000);
    await until('the first retry', () => stack.portability.calls.slice(before).some((c) => c.method === 'retry' && c.status === 503));
    expect((await api(stack, token, 'POST', `/v1/exports/${started.body.exportId}:cancel`)).status).toBe(200);
    const done = await waitForExport(stack, token, started.body.exportId);
    expect(done.state).toBe('CANCELLED');
    const atGoogle = stack.portability.jobs().filter((j) => j.googleUserId === googleUserId);
    // The failed original and the retry it was replaced by; nothing left running.
    expect(atGoogle.map((j) => j.state).sort()).toEqual(['CANCELLED', 'FAILED']);
  });
});

describe('an export never takes over another export\'s Google job', () => {
  it('ALREADY_EXISTS naming a job another export followed is refused, and cancelling the second leaves the first\'s job alone', async () => {
    const { token, googleUserId } = await authorizedUser(stack, 'con-jo', ['myactivity.shopping'], { accessType: 'TIME_BASED' });
    const x = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.shopping'] });
    await waitForExport(stack, token, x.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    // Google will not cancel X's job (answers 400): X ends CANCELLED here while its job runs on at Google.
    stack.portability.faults.failNextCalls('cancel', 400, 1);
    expect((await api(stack, token, 'POST', `/v1/exports/${x.body.exportId}:cancel`)).status).toBe(200);
    expect((await waitForExport(stack, token, x.body.exportId)).state).toBe('CANCELLED');
    const xJob = stack.portability.jobs().find((j) => j.googleUserId === googleUserId);
    expect(xJob?.state).toBe('IN_PROGRESS');

    // Y asks for a window; Google answers ALREADY_EXISTS with X's job.
    const y = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.shopping'], startTime: '2026-01-01T00:00:00Z', endTime: '2026-02-01T00:00:00Z' });
    expect(y.status).toBe(202);
    const ended = await waitForExport(stack, token, y.body.exportId);
    expect(ended.state).toBe('FAILED');
    expect(ended.jobs[0]?.error?.code).toBe('RESOURCE_GROUP_BUSY');
    expect(ended.jobs[0]?.attempts).toBe(0);
    // X's job at Google was neither adopted nor cancelled by Y.
    expect(stack.portability.jobs().find((j) => j.id === xJob?.id)?.state).toBe('IN_PROGRESS');
    expect((await api(stack, token, 'POST', `/v1/exports/${y.body.exportId}:cancel`)).status).toBe(409);
    expect(stack.portability.jobs().find((j) => j.id === xJob?.id)?.state).toBe('IN_PROGRESS');
  });
});

describe('a reset during a copy', () => {
  it('stops the copy, ends the job CONSENT_REVOKED and leaves no object of it in the bucket', async () => {
    const { token } = await authorizedUser(stack, 'con-kim', ['chrome.reading_list']);
    stack.portability.faults.jobDuration('chrome.reading_list', 200);
    stack.portability.faults.urlsPerJob('chrome.reading_list', 2);
    // About 4 KB a second: each 20 KB archive takes seconds to copy.
    stack.portability.faults.throttleDownloads('chrome.reading_list', 4096);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['chrome.reading_list'] });
    const copying = await waitForExport(stack, token, started.body.exportId, (e) => (e.jobs[0]?.bytesCopied ?? 0) > 0, 30_000);
    const jobId = copying.jobs[0]?.jobId as string;
    // Both archives' sizes were asked of their URLs first: the person sees a share of the whole.
    expect(copying.jobs[0]?.bytesTotal).toBeGreaterThan(copying.jobs[0]?.bytesCopied ?? 0);
    // Task ids start with a hash of the job id: the deliveries of this job's tasks, finished ones.
    const jobKey = taskIdFor({ jobId, step: 'copy', seq: 0 }).split('-')[0] as string;
    const copyTasks = (): number => stack.tasks.deliveries.filter((d) => d.taskName.includes(jobKey)).length;
    const before = copyTasks();

    expect((await api(stack, token, 'POST', '/v1/authorizations:reset')).status).toBe(200);
    // The job ends at once, not when the copy would have finished.
    const ended = await api<ExportBody>(stack, token, 'GET', `/v1/exports/${started.body.exportId}`);
    expect(ended.body.state).toBe('FAILED');
    expect(ended.body.jobs[0]?.error?.code).toBe('CONSENT_REVOKED');
    // The copy in flight notices, stops and removes what it wrote: its delivery ends.
    for (const deadline = Date.now() + 20_000; copyTasks() === before; ) {
      if (Date.now() > deadline) throw new Error('the copy in flight never ended');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await objectNames(stack, `con-kim/${started.body.exportId}/`)).toEqual([]);
    stack.portability.faults.throttleDownloads('chrome.reading_list', undefined);
  });
});
