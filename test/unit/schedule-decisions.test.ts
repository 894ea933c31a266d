/** The pure schedule decisions on a hand-moved clock: windows, busy groups, cooldown, expiry, revocation. */
import { describe, expect, it } from 'vitest';
import { newJob } from '../../functions/src/domain/job';
import type { Job, Schedule } from '../../functions/src/domain/model';
import { cooldownUntil, DAY_MS, HOUR_MS, newSchedule, planRun, settleJob } from '../../functions/src/domain/schedule';

const T0 = Date.UTC(2026, 0, 1);
let n = 0;
const id = (): string => `id${++n}`;
const grant = { exists: true, active: true, timeBasedResources: ['myactivity.search', 'youtube.comments'] };

function run(s: Schedule, now: number, busy: string[] = []): ReturnType<typeof planRun> {
  return planRun(s, grant, new Set(busy), now, id);
}

function finished(s: Schedule, resource: string, patch: Partial<Job>): Job {
  const jobId = s.groups.find((g) => g.resource === resource)?.lastJobId as string;
  return { ...newJob({ id: jobId, exportId: 'e', userId: 'u', resource }, s.lastRun?.startedAt ?? T0), ...patch };
}

describe('schedule decisions', () => {
  it('windows: first run from the chosen start, then from each success; full groups never filtered', () => {
    let s = newSchedule({ id: 's', userId: 'u', resources: ['youtube.comments', 'myactivity.search'], startTime: '2025-12-01T00:00:00Z' }, T0);
    const p1 = run(s, T0);
    expect(p1.kind).toBe('run');
    if (p1.kind !== 'run') return;
    expect(p1.run.jobs.map((j) => [j.resource, j.window, j.startTime])).toEqual([
      ['myactivity.search', 'incremental', '2025-12-01T00:00:00Z'],
      ['youtube.comments', 'full', undefined],
    ]);
    s = p1.schedule;
    expect(s.nextRunAt).toBe(T0 + DAY_MS);
    s = settleJob(s, finished(s, 'myactivity.search', { state: 'SUCCEEDED', exportTime: '2026-01-01T00:00:05Z' }), T0 + HOUR_MS) as Schedule;
    expect(settleJob(s, finished(s, 'myactivity.search', { state: 'SUCCEEDED', exportTime: '2026-01-01T00:00:05Z' }), T0 + HOUR_MS)).toBeUndefined();
    expect(run(s, T0 + HOUR_MS).kind).toBe('wait');
    const p2 = run(s, T0 + DAY_MS);
    expect(p2.kind === 'run' && p2.run.jobs[0]?.startTime).toBe('2026-01-01T00:00:05Z');
  });

  it('skips a group whose previous job still runs, and looks again an hour later', () => {
    const s = (run(newSchedule({ id: 's', userId: 'u', resources: ['myactivity.search'] }, T0), T0) as { schedule: Schedule }).schedule;
    const p = run(s, T0 + DAY_MS, ['myactivity.search']);
    expect(p.kind).toBe('wait');
    expect(p.schedule.nextRunAt).toBe(T0 + DAY_MS + HOUR_MS);
    expect(p.schedule.runCount).toBe(1);
  });

  it('a cooldown moves the group to Google\u2019s time, else 24 h after the run', () => {
    expect(cooldownUntil('2026-01-02T03:00:00Z', T0)).toBe(Date.UTC(2026, 0, 2, 3));
    expect(cooldownUntil(undefined, T0)).toBe(T0 + DAY_MS);
    const s = (run(newSchedule({ id: 's', userId: 'u', resources: ['myactivity.search'], everyHours: 48 }, T0), T0) as { schedule: Schedule }).schedule;
    const cooled = settleJob(s, finished(s, 'myactivity.search', { state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'x' } }), T0 + 60_000) as Schedule;
    expect(cooled.nextRunAt).toBe(T0 + DAY_MS);
    expect(cooled.groups[0]?.cursor).toBeUndefined();
  });

  it('ends at the grant\u2019s expiry, on revocation and without a grant, with a reason and no next run', () => {
    const s = newSchedule({ id: 's', userId: 'u', resources: ['myactivity.search'], endsAt: T0 + 30 * DAY_MS }, T0);
    const expired = run(s, T0 + 30 * DAY_MS);
    expect(expired).toMatchObject({ kind: 'end', schedule: { state: 'NEEDS_CONSENT', endReason: 'GRANT_EXPIRED' } });
    expect(expired.schedule.nextRunAt).toBeUndefined();
    expect(planRun(s, { ...grant, active: false }, new Set(), T0, id)).toMatchObject({ kind: 'end', schedule: { endReason: 'CONSENT_REVOKED' } });
    expect(planRun(s, { ...grant, exists: false }, new Set(), T0, id)).toMatchObject({ kind: 'end', schedule: { endReason: 'NO_AUTHORIZATION' } });
    const claimed = (run(s, T0) as { schedule: Schedule }).schedule;
    const revoked = settleJob(claimed, finished(claimed, 'myactivity.search', { state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'x' } }), T0 + 1);
    expect(revoked).toMatchObject({ state: 'NEEDS_CONSENT', endReason: 'CONSENT_REVOKED' });
    expect(revoked?.nextRunAt).toBeUndefined();
  });
  it('settles a job: the cursor only moves forward and only for incremental groups; only the latest job of an active schedule ends it', () => {
    const s = (run(newSchedule({ id: 's', userId: 'u', resources: ['youtube.comments', 'myactivity.search'], startTime: '2025-12-01T00:00:00Z' }, T0), T0) as { schedule: Schedule }).schedule;
    const ok = (resource: string, exportTime: string) => finished(s, resource, { state: 'SUCCEEDED', exportTime });
    // Not terminal, or a group the schedule does not have: nothing.
    expect(settleJob(s, finished(s, 'myactivity.search', { state: 'WAITING' }), T0)).toBeUndefined();
    expect(settleJob(s, { ...ok('myactivity.search', '2026-01-01T00:00:00Z'), resource: 'chrome.history' }, T0)).toBeUndefined();
    const moved = settleJob(s, ok('myactivity.search', '2026-01-01T00:00:05Z'), T0 + 1) as Schedule;
    expect(moved.groups.find((g) => g.resource === 'myactivity.search')).toMatchObject({ cursor: '2026-01-01T00:00:05Z', lastJobSettled: true });
    expect(moved.updatedAt).toBe(T0 + 1);
    expect(moved.nextRunAt).toBe(T0 + DAY_MS);
    // An older job of the group (not its latest) finishing later: the cursor does not go back.
    const older = { ...ok('myactivity.search', '2025-12-15T00:00:00Z'), id: 'older-job' };
    expect(settleJob(moved, older, T0 + 2)).toBeUndefined();
    // A newer export time from an older job still moves it forward, without settling the latest.
    const newer = settleJob(moved, { ...ok('myactivity.search', '2026-01-01T00:00:09Z'), id: 'older-job' }, T0 + 3) as Schedule;
    expect(newer.groups.find((g) => g.resource === 'myactivity.search')?.cursor).toBe('2026-01-01T00:00:09Z');
    // A full (non-filtered) group never gets a cursor, but its latest job is settled.
    const full = settleJob(s, ok('youtube.comments', '2026-01-01T00:00:05Z'), T0 + 1) as Schedule;
    expect(full.groups.find((g) => g.resource === 'youtube.comments')).toMatchObject({ lastJobSettled: true });
    expect(full.groups.find((g) => g.resource === 'youtube.comments')).not.toHaveProperty('cursor');
    // A revocation seen on an older job, or once the schedule has ended, does not end it (again).
    const revoked = (patch: Partial<Job>) => finished(s, 'myactivity.search', { state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'x' }, ...patch });
    expect(settleJob(moved, revoked({ id: 'older-job' }), T0 + 4)).toBeUndefined();
    const ended = { ...s, state: 'ENDED' as const };
    const after = settleJob(ended, revoked({}), T0 + 4) as Schedule;
    expect(after.state).toBe('ENDED');
    expect(after.nextRunAt).toBe(s.nextRunAt);
    // Another failure of the latest job only settles it: the next run asks for the same window.
    const failed = settleJob(s, finished(s, 'myactivity.search', { state: 'FAILED', error: { code: 'ARCHIVE_FAILED', message: 'x' } }), T0 + 5) as Schedule;
    expect(failed.state).toBe('ACTIVE');
    expect(failed.groups.find((g) => g.resource === 'myactivity.search')).toMatchObject({ lastJobSettled: true, dueAt: T0 + DAY_MS });
    expect(failed.groups.find((g) => g.resource === 'myactivity.search')).not.toHaveProperty('cursor');
  });
});
