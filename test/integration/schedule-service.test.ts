/**
 * The schedule service's use cases, tick and run task on the real Firestore emulator (schedule and
 * export stores; a project per test, so ticks see only that test's schedules) with a controllable
 * clock and recording queues. Races between a read and the transaction that acts on it are made
 * real: a hook changes the stored schedule between the two.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreScheduleStore } from '../../functions/src/adapters/firestore-schedule-store';
import { newJob } from '../../functions/src/domain/job';
import type { Grant, Job } from '../../functions/src/domain/model';
import type { PipelineTask, ScheduleRunTask } from '../../functions/src/domain/ports/task-queues';
import type { ScheduleStore } from '../../functions/src/domain/ports/schedule-store';
import { DAY_MS, HOUR_MS } from '../../functions/src/domain/schedule';
import type { Schedule } from '../../functions/src/domain/model';
import { createLogger } from '../../functions/src/logging';
import { DISPATCH_LEASE_MS, ScheduleService } from '../../functions/src/pipeline/schedule-service';
import { refusalOf } from '../support/rejections';

/** What a caller gets: the answer as JSON encodes it (fields left undefined are not sent). */
const wire = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

const T0 = Date.UTC(2100, 0, 1);
let project = 0;

const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;

function world() {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  const db = createFirestore({ projectId: `demo-schedule-service-${++project}-${randomBytes(3).toString('hex')}` });
  const store = new FirestoreExportStore(db);
  const real = new FirestoreScheduleStore(db);
  const hooks: { afterList?: () => Promise<void>; afterGet?: () => Promise<void> } = {};
  // The real store, with a pause after the reads the service acts on later.
  const schedules: ScheduleStore = Object.assign(Object.create(real) as FirestoreScheduleStore, {
    listDueSchedules: async (dueBefore: number, limit: number) => {
      const due = await real.listDueSchedules(dueBefore, limit);
      await hooks.afterList?.();
      return due;
    },
    getSchedule: async (id: string) => {
      const s = await real.getSchedule(id);
      await hooks.afterGet?.();
      return s;
    },
  });
  const clock = { t: T0 };
  const tasks: PipelineTask[] = [];
  const runs: ScheduleRunTask[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
  const svc = new ScheduleService({
    schedules,
    store,
    queue: async () => ({ enqueue: async (t: PipelineTask) => void tasks.push(t) }),
    runQueue: async () => ({ enqueueScheduleRun: async (t: ScheduleRunTask) => void runs.push(t) }),
    logger,
    now: () => clock.t,
  });
  const grant = async (userId: string, over: Partial<Grant> = {}) =>
    store.putGrant({
      userId,
      refreshToken: { keyVersion: 'k', ciphertext: 'x' } as unknown as Grant['refreshToken'],
      resources: ['chrome.history', 'myactivity.search', 'saved.collections'],
      oneTimeResources: ['saved.collections'],
      timeBasedResources: ['myactivity.search', 'chrome.history'],
      state: 'ACTIVE',
      createdAt: T0,
      updatedAt: T0,
      ...over,
    });
  const said = (message: string) => logs.filter((l) => l.message === message);
  return { svc, store, real, hooks, clock, tasks, runs, said, grant };
}


describe('creating a schedule', () => {
  it('refuses without an active, unexpired time-based grant for every group, a start in the future, or runs closer than a day; stores nothing', async () => {
    const w = world();
    const userId = newUser();
    expect(await refusalOf(w.svc.createSchedule(userId, {}))).toMatchObject({ status: 409, code: 'NO_AUTHORIZATION' });
    await w.grant(userId, { state: 'NEEDS_CONSENT' });
    expect(await refusalOf(w.svc.createSchedule(userId, {}))).toMatchObject({ status: 409, code: 'NEEDS_CONSENT' });
    await w.grant(userId);
    expect(await refusalOf(w.svc.createSchedule(userId, { resources: ['youtube.subscriptions', 'chrome.history', 'play.store'] }))).toMatchObject({
      status: 400,
      field: 'resources',
      message: 'Not granted by the user: play.store, youtube.subscriptions',
    });
    expect(await refusalOf(w.svc.createSchedule(userId, { resources: ['saved.collections', 'chrome.history'] }))).toMatchObject({
      status: 409,
      code: 'ONE_TIME_ACCESS',
      message: 'Granted with one-time access, so they cannot be exported on a schedule: saved.collections. Ask the user for time-based access',
    });
    expect(await refusalOf(w.svc.createSchedule(userId, { resources: [] }))).toMatchObject({ code: 'ONE_TIME_ACCESS', message: expect.stringMatching(/^The user granted one-time access only/) });
    const oneTimeOnly = newUser();
    await w.grant(oneTimeOnly, { timeBasedResources: [] });
    expect(await refusalOf(w.svc.createSchedule(oneTimeOnly, {}))).toMatchObject({ code: 'ONE_TIME_ACCESS', message: expect.stringMatching(/^The user granted one-time access only/) });
    expect(await refusalOf(w.svc.createSchedule(userId, { startTime: new Date(T0).toISOString() }))).toMatchObject({ status: 400, field: 'startTime', message: 'startTime must be in the past' });
    expect(await refusalOf(w.svc.createSchedule(userId, { everyHours: 23 }))).toMatchObject({ status: 400, field: 'everyHours', message: 'everyHours must be at least 24' });
    await w.grant(userId, { expiresAt: T0 });
    expect(await refusalOf(w.svc.createSchedule(userId, {}))).toMatchObject({ status: 409, code: 'NEEDS_CONSENT', message: 'The time-based access has ended: the user must consent again' });
    expect(await w.svc.listSchedules(userId)).toEqual({ schedules: [] });
    expect(w.runs).toEqual([]);
  });

  it('creates it over the time-based groups, due now, ending with the grant, and enqueues its first run', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId, { expiresAt: T0 + 1 });
    const view = await w.svc.createSchedule(userId, { everyHours: 24, startTime: '2099-12-01T00:00:00Z' });
    expect(view).toMatchObject({
      state: 'ACTIVE',
      resources: ['chrome.history', 'myactivity.search'],
      everyHours: 24,
      startTime: '2099-12-01T00:00:00Z',
      groups: [
        { resource: 'chrome.history', window: 'incremental', dueAt: new Date(T0).toISOString() },
        { resource: 'myactivity.search', window: 'incremental', dueAt: new Date(T0).toISOString() },
      ],
      runCount: 0,
      nextRunAt: new Date(T0).toISOString(),
      endsAt: new Date(T0 + 1).toISOString(),
      createdAt: new Date(T0).toISOString(),
      updatedAt: new Date(T0).toISOString(),
    });
    expect(view).not.toHaveProperty('reason');
    expect(wire(view.groups[0])).not.toHaveProperty('cursor');
    expect(w.runs).toEqual([{ scheduleId: view.scheduleId, run: 1 }]);
    expect(await w.real.getSchedule(view.scheduleId)).toMatchObject({ userId, everyHours: 24 });
    expect(w.said('schedule created')).toMatchObject([{ userId, scheduleId: view.scheduleId, everyHours: 24 }]);
    const other = newUser();
    await w.grant(other);
    const weekly = await w.svc.createSchedule(other, { resources: ['myactivity.search'], everyHours: 168 });
    expect(weekly).toMatchObject({ resources: ['myactivity.search'], everyHours: 168 });
    expect(weekly).not.toHaveProperty('endsAt');
    expect(wire(weekly)).not.toHaveProperty('startTime');
  });
});

describe('reading and deleting schedules', () => {
  it('lists only the user\'s schedules, answers another user\'s or a malformed id with 404, and a deleted one is gone', async () => {
    const w = world();
    const userId = newUser();
    const other = newUser();
    await w.grant(userId);
    await w.grant(other);
    const mine = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    const theirs = await w.svc.createSchedule(other, { resources: ['chrome.history'] });
    expect((await w.svc.listSchedules(userId)).schedules.map((s) => s.scheduleId)).toEqual([mine.scheduleId]);
    expect(await w.svc.getSchedule(userId, mine.scheduleId)).toMatchObject({ scheduleId: mine.scheduleId, runs: [] });
    for (const id of [theirs.scheduleId, 'not-an-id', randomBytes(10).toString('hex')]) {
      expect(await refusalOf(w.svc.getSchedule(userId, id))).toMatchObject({ status: 404, message: 'Schedule not found' });
      expect(await refusalOf(w.svc.deleteSchedule(userId, id))).toMatchObject({ status: 404 });
    }
    expect(await w.svc.deleteSchedule(userId, mine.scheduleId)).toEqual({ deleted: true });
    expect(await refusalOf(w.svc.getSchedule(userId, mine.scheduleId))).toMatchObject({ status: 404 });
    expect(await w.real.getSchedule(theirs.scheduleId)).toBeDefined();
    expect(w.said('schedule deleted')).toMatchObject([{ userId, scheduleId: mine.scheduleId }]);
  });
});

describe('the tick', () => {
  it('leases each due schedule and enqueues its next run once per lease window; a schedule not due waits', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const due = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    w.clock.t = T0 + 1;
    const later = await w.svc.createSchedule(userId, { resources: ['myactivity.search'] });
    await w.real.updateSchedule(later.scheduleId, (s) => ({ ...s, nextRunAt: T0 + 2 * DISPATCH_LEASE_MS }));
    w.runs.length = 0;
    w.clock.t = T0 + DISPATCH_LEASE_MS + 5;
    expect(await w.svc.tick()).toEqual({ due: 1, enqueued: 1 });
    expect(w.runs).toEqual([{ scheduleId: due.scheduleId, run: 1, redelivery: Math.floor(w.clock.t / DISPATCH_LEASE_MS) }]);
    expect((await w.real.getSchedule(due.scheduleId))?.nextRunAt).toBe(w.clock.t + DISPATCH_LEASE_MS);
    expect(await w.svc.tick()).toEqual({ due: 0, enqueued: 0 });
    // Exactly at its time, the other one is due.
    w.clock.t = T0 + 2 * DISPATCH_LEASE_MS;
    expect(await w.svc.tick()).toEqual({ due: 1, enqueued: 1 });
  });

  it('does not enqueue a schedule that changed between the query and its lease (leased, claimed or ended meanwhile)', async () => {
    for (const change of [
      (s: Schedule): Schedule => ({ ...s, nextRunAt: s.nextRunAt! + DISPATCH_LEASE_MS }),
      (s: Schedule): Schedule => ({ ...s, runCount: s.runCount + 1 }),
      (s: Schedule): Schedule => ({ ...s, state: 'ENDED' }),
    ]) {
      const w = world();
      const userId = newUser();
      await w.grant(userId);
      const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
      w.runs.length = 0;
      w.hooks.afterList = async () => void (await w.real.updateSchedule(view.scheduleId, change));
      expect(await w.svc.tick()).toEqual({ due: 1, enqueued: 0 });
      expect(w.runs).toEqual([]);
    }
  });
});

describe('a run task', () => {
  it('drops a task for a malformed or unknown schedule, a run not next, a stale run, and a schedule no longer active', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    const id = view.scheduleId;
    expect(await w.svc.startRun({ scheduleId: 'x', run: 1 })).toEqual({ kind: 'dropped', detail: 'not a schedule id' });
    expect(await w.svc.startRun({ scheduleId: randomBytes(10).toString('hex'), run: 1 })).toEqual({ kind: 'dropped', detail: 'unknown schedule' });
    expect(await w.svc.startRun({ scheduleId: id, run: 2 })).toEqual({ kind: 'dropped', detail: 'run 2 is not next (schedule at 0)' });
    expect(await w.svc.startRun({ scheduleId: id, run: 0 })).toEqual({ kind: 'dropped', detail: 'stale run 0 (schedule at 0)' });
    expect(await w.svc.startRun({ scheduleId: id, run: 1 })).toEqual({ kind: 'done', detail: 'run 1 started' });
    w.clock.t += DAY_MS;
    expect(await w.svc.startRun({ scheduleId: id, run: 0 })).toEqual({ kind: 'dropped', detail: 'stale run 0 (schedule at 1)' });
    await w.real.updateSchedule(id, (s) => ({ ...s, state: 'NEEDS_CONSENT' }));
    expect(await w.svc.startRun({ scheduleId: id, run: 2 })).toEqual({ kind: 'dropped', detail: 'schedule is NEEDS_CONSENT' });
    expect(w.tasks).toHaveLength(1);
  });

  it('creates the run\'s export (its schedule, run number, windows) and enqueues the initiates; delivered again, it creates the same export once', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { startTime: '2099-12-01T00:00:00Z' });
    const task = { scheduleId: view.scheduleId, run: 1 };
    expect(await w.svc.startRun(task)).toEqual({ kind: 'done', detail: 'run 1 started' });
    const stored = await w.real.getSchedule(view.scheduleId);
    const run = stored!.lastRun!;
    expect(stored).toMatchObject({ runCount: 1, nextRunAt: T0 + DAY_MS });
    const record = await w.store.getExport(run.exportId);
    expect(record).toMatchObject({ userId, state: 'RUNNING', resources: ['chrome.history', 'myactivity.search'], scheduleId: view.scheduleId, run: 1, createdAt: T0 });
    const jobs = await w.store.listJobs(run.exportId);
    expect(jobs.map((j) => [j.resource, j.state, j.window, j.startTime, j.scheduleId])).toEqual([
      ['chrome.history', 'INITIATING', 'incremental', '2099-12-01T00:00:00Z', view.scheduleId],
      ['myactivity.search', 'INITIATING', 'incremental', '2099-12-01T00:00:00Z', view.scheduleId],
    ]);
    expect(w.tasks).toEqual(jobs.map((j) => ({ step: 'initiate', jobId: j.id, seq: 0, delaySeconds: 0 })));
    expect(w.said('scheduled run started')).toMatchObject([{ scheduleId: view.scheduleId, run: 1, exportId: run.exportId }]);
    // Delivered again (a crash after the claim): the same export, not a second one.
    expect(await w.svc.startRun(task)).toEqual({ kind: 'done', detail: 'run 1 started' });
    expect((await w.svc.getSchedule(userId, view.scheduleId)).runs?.map((r) => r.exportId)).toEqual([run.exportId]);
    expect(w.said('scheduled run started')).toHaveLength(1);
  });

  it('folds in the outcome of the previous run\'s jobs that no notification brought, and waits for a group still busy', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, {});
    await w.svc.startRun({ scheduleId: view.scheduleId, run: 1 });
    const first = (await w.real.getSchedule(view.scheduleId))!.lastRun!;
    const [history, activity] = first.jobs.map((j) => j.jobId) as [string, string];
    // chrome.history succeeded (its notification lost); myactivity.search is still running.
    await w.store.updateJob(history, (j): Job => ({ ...j, state: 'SUCCEEDED', seq: j.seq + 1, exportTime: '2100-01-01T00:00:30Z', finishedAt: T0 + 1000 }));
    w.clock.t = T0 + DAY_MS;
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 2 })).toEqual({ kind: 'done', detail: 'run 2 started' });
    const second = (await w.real.getSchedule(view.scheduleId))!;
    expect(second.lastRun?.jobs).toEqual([{ resource: 'chrome.history', jobId: expect.any(String), window: 'incremental', startTime: '2100-01-01T00:00:30Z' }]);
    expect(second.groups.find((g) => g.resource === 'chrome.history')?.cursor).toBe('2100-01-01T00:00:30Z');
    expect(second.groups.find((g) => g.resource === 'myactivity.search')?.dueAt).toBe(w.clock.t + HOUR_MS);
    // Both groups busy now (run 2's job and run 1's): the third run waits.
    w.clock.t += DAY_MS;
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 3 })).toEqual({ kind: 'done', detail: 'nothing due yet' });
    expect((await w.store.getJob(activity))?.state).toBe('INITIATING');
  });

  it('waits for a group another export of the user is exporting', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    const exportId = randomBytes(10).toString('hex');
    const jobId = randomBytes(10).toString('hex');
    await w.store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['chrome.history'], createdAt: T0, updatedAt: T0 }, [newJob({ id: jobId, exportId, userId, resource: 'chrome.history' }, T0)], undefined, {});
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 1 })).toEqual({ kind: 'done', detail: 'nothing due yet' });
    expect(w.tasks).toEqual([]);
  });

  it('ends the schedule when the grant is gone, and drops a run claimed between its read and its claim', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const gone = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    const raced = await w.svc.createSchedule(userId, { resources: ['myactivity.search'] });
    await w.store.deleteGrant(userId);
    expect(await w.svc.startRun({ scheduleId: gone.scheduleId, run: 1 })).toEqual({ kind: 'done', detail: 'schedule ended: NO_AUTHORIZATION' });
    expect(await w.real.getSchedule(gone.scheduleId)).toMatchObject({ state: 'NEEDS_CONSENT', endReason: 'NO_AUTHORIZATION' });
    expect(w.said('schedule ended')).toMatchObject([{ scheduleId: gone.scheduleId, userId, reason: 'NO_AUTHORIZATION' }]);
    await w.grant(userId);
    w.hooks.afterGet = async () => {
      w.hooks.afterGet = undefined;
      await w.real.updateSchedule(raced.scheduleId, (s) => ({ ...s, runCount: 1 }));
    };
    expect(await w.svc.startRun({ scheduleId: raced.scheduleId, run: 1 })).toEqual({ kind: 'dropped', detail: 'the run was claimed meanwhile' });
    w.hooks.afterGet = async () => {
      w.hooks.afterGet = undefined;
      await w.real.updateSchedule(raced.scheduleId, (s) => ({ ...s, state: 'ENDED' }));
    };
    expect(await w.svc.startRun({ scheduleId: raced.scheduleId, run: 2 })).toEqual({ kind: 'dropped', detail: 'the run was claimed meanwhile' });
  });

  it('a schedule that a lost CONSENT_REVOKED outcome ends is written ended, with its reason', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    await w.svc.startRun({ scheduleId: view.scheduleId, run: 1 });
    const jobId = (await w.real.getSchedule(view.scheduleId))!.lastRun!.jobs[0]!.jobId;
    await w.store.updateJob(jobId, (j): Job => ({ ...j, state: 'FAILED', seq: j.seq + 1, error: { code: 'CONSENT_REVOKED', message: 'revoked' }, finishedAt: T0 }));
    w.clock.t = T0 + DAY_MS;
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 2 })).toEqual({ kind: 'done', detail: 'schedule ended: CONSENT_REVOKED' });
    expect(await w.real.getSchedule(view.scheduleId)).toMatchObject({ state: 'NEEDS_CONSENT', endReason: 'CONSENT_REVOKED', runCount: 1 });
  });
});

describe('the runner\'s hook', () => {
  it('folds a finished job into its schedule and says when that ends the schedule; a job of no schedule changes nothing', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    await w.svc.startRun({ scheduleId: view.scheduleId, run: 1 });
    const before = (await w.real.getSchedule(view.scheduleId))!;
    const job = (await w.store.getJob(before.lastRun!.jobs[0]!.jobId))!;
    await w.svc.jobFinished({ ...job, scheduleId: undefined, state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'revoked' } } as Job);
    expect(await w.real.getSchedule(view.scheduleId)).toEqual(before);
    await w.svc.jobFinished({ ...job, state: 'SUCCEEDED', exportTime: '2100-01-01T00:00:10Z' });
    expect((await w.real.getSchedule(view.scheduleId))?.groups[0]?.cursor).toBe('2100-01-01T00:00:10Z');
    expect(w.said('schedule ended')).toEqual([]);
    const other = newUser();
    await w.grant(other);
    const revokedView = await w.svc.createSchedule(other, { resources: ['myactivity.search'] });
    await w.svc.startRun({ scheduleId: revokedView.scheduleId, run: 1 });
    const revokedJob = (await w.store.getJob((await w.real.getSchedule(revokedView.scheduleId))!.lastRun!.jobs[0]!.jobId))!;
    await w.svc.jobFinished({ ...revokedJob, state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'revoked' } });
    expect(await w.real.getSchedule(revokedView.scheduleId)).toMatchObject({ state: 'NEEDS_CONSENT', endReason: 'CONSENT_REVOKED' });
    expect(w.said('schedule ended')).toMatchObject([{ scheduleId: revokedView.scheduleId, userId: other, reason: 'CONSENT_REVOKED' }]);
  });
});

describe('gaps the first mutation run showed', () => {
  it('says why a schedule stopped, shows its groups\' cursors, and refuses a path for a schedule id', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    expect(await refusalOf(w.svc.getSchedule(userId, `${view.scheduleId}/x/y`))).toMatchObject({ status: 404 });
    await w.real.updateSchedule(view.scheduleId, (s) => {
      const { nextRunAt: _n, ...rest } = s;
      return { ...rest, state: 'NEEDS_CONSENT', endReason: 'CONSENT_REVOKED', groups: s.groups.map((g) => ({ ...g, cursor: '2100-01-01T00:00:00Z' })) };
    });
    const stopped = await w.svc.getSchedule(userId, view.scheduleId);
    expect(stopped).toMatchObject({ state: 'NEEDS_CONSENT', reason: { code: 'CONSENT_REVOKED', message: '' }, groups: [{ cursor: '2100-01-01T00:00:00Z' }] });
    expect(stopped).not.toHaveProperty('nextRunAt');
  });

  it('names what is missing in each refusal', async () => {
    const w = world();
    const userId = newUser();
    expect(await refusalOf(w.svc.createSchedule(userId, {}))).toMatchObject({ message: 'No Google authorization is stored for this user: POST /v1/authorizations first' });
    await w.grant(userId, { state: 'NEEDS_CONSENT' });
    expect(await refusalOf(w.svc.createSchedule(userId, {}))).toMatchObject({ message: 'The Google authorization expired or was revoked: the user must consent again' });
  });

  it('ends the schedule when the grant needs consent, and runs on when the previous run\'s export was deleted', async () => {
    const w = world();
    const userId = newUser();
    await w.grant(userId);
    const view = await w.svc.createSchedule(userId, { resources: ['chrome.history'] });
    await w.svc.startRun({ scheduleId: view.scheduleId, run: 1 });
    const first = (await w.real.getSchedule(view.scheduleId))!.lastRun!;
    await w.store.updateJob(first.jobs[0]!.jobId, (j): Job => ({ ...j, state: 'CANCELLED', seq: j.seq + 1, finishedAt: T0 }));
    await w.store.deleteExportRecords(first.exportId);
    w.clock.t = T0 + DAY_MS;
    w.tasks.length = 0;
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 2 })).toEqual({ kind: 'done', detail: 'run 2 started' });
    // Delivered again after its job moved on: no second initiate.
    const second = (await w.real.getSchedule(view.scheduleId))!.lastRun!;
    await w.store.updateJob(second.jobs[0]!.jobId, (j): Job => ({ ...j, state: 'WAITING', seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
    w.tasks.length = 0;
    await w.svc.startRun({ scheduleId: view.scheduleId, run: 2 });
    expect(w.tasks).toEqual([]);
    await w.grant(userId, { state: 'NEEDS_CONSENT' });
    await w.store.updateJob(second.jobs[0]!.jobId, (j): Job => ({ ...j, state: 'SUCCEEDED', seq: 2, finishedAt: T0 + DAY_MS }));
    w.clock.t = T0 + 2 * DAY_MS;
    expect(await w.svc.startRun({ scheduleId: view.scheduleId, run: 3 })).toEqual({ kind: 'done', detail: 'schedule ended: CONSENT_REVOKED' });
  });
});
