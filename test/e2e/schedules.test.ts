/**
 * Scheduled exports through the public API on the local stack: the routes' validation and answers,
 * a first run started through Cloud Tasks and the runSchedules function, the scheduler tick, and
 * cancelling a time-based job at Google (the seed's example).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: 'demo-e2e-schedules',
    jobDurationMs: 300,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
  });
});

afterAll(async () => {
  await stack?.stop();
});

interface ScheduleBody {
  scheduleId: string;
  state: string;
  runCount: number;
  groups: Array<{ resource: string; window: string }>;
  runs?: Array<{ exportId: string; run?: number; state: string; jobs: Array<{ resource: string; state: string; window?: string }> }>;
}

async function waitFor<T>(read: () => Promise<T>, until: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (until(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out; last ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe('scheduled exports through the API', () => {
  it('refuses one-time groups with 409 and bad input with 400', async () => {
    const { token } = await authorizedUser(stack, 'olga', ['myactivity.search']);
    const oneTime = await api(stack, token, 'POST', '/v1/schedules', {});
    expect(oneTime.status).toBe(409);
    expect(oneTime.body).toMatchObject({ error: { code: 'ONE_TIME_ACCESS' } });
    const named = await api(stack, token, 'POST', '/v1/schedules', { resources: ['myactivity.search'] });
    expect(named.body).toMatchObject({ error: { code: 'ONE_TIME_ACCESS' } });
    for (const [body, field] of [
      [{ everyHours: 12 }, 'everyHours'],
      [{ everyHours: 24.5 }, 'everyHours'],
      [{ resources: ['not.a.group'] }, 'resources.0'],
      [{ startTime: 'yesterday' }, 'startTime'],
      [{ every: 24 }, 'every'],
    ] as const) {
      const res = await api(stack, token, 'POST', '/v1/schedules', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((res.body as { error: { field: string } }).error.field).toBe(field);
    }
    expect((await api(stack, token, 'GET', '/v1/schedules/0123456789abcdef0123')).status).toBe(404);
    expect((await api(stack, token, 'GET', '/v1/schedules/nope')).status).toBe(404);
    expect((await api(stack, token, 'GET', '/v1/schedules?x=1')).status).toBe(400);
    expect((await api(stack, undefined, 'GET', '/v1/schedules')).status).toBe(401);
  });

  it('creates a schedule whose first run goes through Cloud Tasks and runSchedules to the bucket; lists, shows runs, deletes', async () => {
    const { token } = await authorizedUser(stack, 'pia', ['myactivity.youtube', 'youtube.public_videos'], { accessType: 'TIME_BASED' });
    const created = await api<ScheduleBody>(stack, token, 'POST', '/v1/schedules', { startTime: '2026-01-01T00:00:00Z' });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/v1/schedules/${created.body.scheduleId}`);
    expect(created.body.groups.map((g) => g.window)).toEqual(['incremental', 'full']);
    const id = created.body.scheduleId;
    // Another schedule on the same groups would collide with Google's 24-hour rule.
    expect((await api(stack, token, 'POST', '/v1/schedules', { resources: ['myactivity.youtube'] })).body).toMatchObject({ error: { code: 'SCHEDULE_EXISTS' } });

    const shown = await waitFor(
      async () => (await api<ScheduleBody>(stack, token, 'GET', `/v1/schedules/${id}`)).body,
      (s) => (s.runs?.length ?? 0) === 1 && s.runs?.[0]?.state === 'SUCCEEDED',
    );
    expect(shown.runCount).toBe(1);
    const run = shown.runs?.[0];
    expect(run?.run).toBe(1);
    expect(run?.jobs.map((j) => [j.resource, j.window])).toEqual([
      ['myactivity.youtube', 'incremental'],
      ['youtube.public_videos', 'full'],
    ]);
    const asked = stack.portability.jobs().filter((j) => j.googleUserId === 'google-pia');
    expect(Date.parse(asked.find((j) => j.resources[0] === 'myactivity.youtube')?.startTime ?? '')).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(asked.find((j) => j.resources[0] === 'youtube.public_videos')?.startTime).toBeUndefined();

    // The scheduler tick finds nothing due for a day.
    expect(await stack.tickSchedules()).toMatchObject({ enqueued: 0 });
    const list = await api<{ schedules: ScheduleBody[] }>(stack, token, 'GET', '/v1/schedules');
    expect(list.body.schedules.map((s) => s.scheduleId)).toEqual([id]);
    // Another user sees none of it.
    const other = await stack.idToken('quinn');
    expect((await api(stack, other, 'GET', `/v1/schedules/${id}`)).status).toBe(404);
    expect((await api(stack, other, 'DELETE', `/v1/schedules/${id}`)).status).toBe(404);

    expect((await api(stack, token, 'DELETE', `/v1/schedules/${id}`)).status).toBe(200);
    expect((await api(stack, token, 'GET', `/v1/schedules/${id}`)).status).toBe(404);
  });

  it('cancels a running time-based job at Google, then starts one for one of its groups alone (the seed\u2019s example)', async () => {
    const { token } = await authorizedUser(stack, 'ravi', ['myactivity.youtube', 'youtube.public_videos'], { accessType: 'TIME_BASED' });
    stack.portability.faults.jobDuration('youtube.public_videos', 600_000);
    stack.portability.faults.jobDuration('myactivity.youtube', 600_000);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.youtube', 'youtube.public_videos'] });
    expect(started.status).toBe(202);
    await waitForExport(stack, token, started.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    const cancelled = await api<ExportBody>(stack, token, 'POST', `/v1/exports/${started.body.exportId}:cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.jobs.map((j) => j.state)).toEqual(['CANCELLED', 'CANCELLED']);
    const atGoogle = stack.portability.jobs().filter((j) => j.googleUserId === 'google-ravi');
    expect(atGoogle.map((j) => [j.accessType, j.state])).toEqual([
      ['TIME_BASED', 'CANCELLED'],
      ['TIME_BASED', 'CANCELLED'],
    ]);
    expect(stack.portability.calls.filter((c) => c.method === 'cancel' && c.status === 200).length).toBeGreaterThanOrEqual(2);

    stack.portability.faults.jobDuration('myactivity.youtube', 300);
    const alone = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: ['myactivity.youtube'] });
    expect(alone.status).toBe(202);
    const done = await waitForExport(stack, token, alone.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.jobs.map((j) => j.resource)).toEqual(['myactivity.youtube']);
  });
});
