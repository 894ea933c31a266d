/**
 * planRun and settleJob case by case, on schedules built by hand: which groups a run takes and
 * what it leaves (groups no longer time-based, busy ones, ones not due), when the scheduler looks
 * next, how each ending reads, and which outcomes settleJob folds in or leaves alone.
 */
import { describe, expect, it } from 'vitest';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import { BUSY_RECHECK_MS, DAY_MS, HOUR_MS, newSchedule, planRun, settleJob, unsettledJobIds } from '../../functions/src/domain/schedule';
import type { Schedule, ScheduleGroup } from '../../functions/src/domain/model';

const T0 = Date.UTC(2026, 0, 1);
let n = 0;
const id = (): string => `id${++n}`;
const active = (timeBasedResources: string[]) => ({ exists: true, active: true, timeBasedResources });

function scheduleWith(groups: Array<Partial<ScheduleGroup> & { resource: string }>, over: Partial<Schedule> = {}): Schedule {
  return { ...newSchedule({ id: 's', userId: 'u', resources: [] }, T0), groups: groups.map((g) => ({ window: 'incremental', dueAt: T0, ...g })), ...over };
}

const jobOf = (resource: string, jobId: string, patch: Partial<Job>): Job => ({ ...newJob({ id: jobId, exportId: 'e', userId: 'u', resource }, T0), ...patch });

describe('newSchedule', () => {
  it('carries the grant\'s end only when there is one', () => {
    expect(newSchedule({ id: 's', userId: 'u', resources: ['chrome.history'] }, T0)).not.toHaveProperty('endsAt');
    expect(newSchedule({ id: 's', userId: 'u', resources: ['chrome.history'], endsAt: T0 + DAY_MS }, T0).endsAt).toBe(T0 + DAY_MS);
  });
});

describe('planRun', () => {
  it('ends with a reason and a message the user can act on', () => {
    const s = scheduleWith([{ resource: 'chrome.history' }], { endsAt: T0 + DAY_MS });
    const ending = (grant: Parameters<typeof planRun>[1], now = T0) => {
      const p = planRun(s, grant, new Set(), now, id);
      expect(p.kind).toBe('end');
      expect(p.schedule).not.toHaveProperty('nextRunAt');
      return [p.schedule.state, p.schedule.endReason, p.schedule.endMessage];
    };
    expect(ending({ exists: false, active: false, timeBasedResources: [] })).toEqual([
      'NEEDS_CONSENT',
      'NO_AUTHORIZATION',
      'The Google authorization was reset: the user must consent again and create a new schedule',
    ]);
    expect(ending({ exists: true, active: false, timeBasedResources: ['chrome.history'] })).toEqual([
      'NEEDS_CONSENT',
      'CONSENT_REVOKED',
      'The Google authorization was revoked or has expired: the user must consent again',
    ]);
    expect(ending(active(['chrome.history']), T0 + DAY_MS)).toEqual([
      'NEEDS_CONSENT',
      'GRANT_EXPIRED',
      `The time-based access ended at ${new Date(T0 + DAY_MS).toISOString()}: the user must consent again`,
    ]);
    expect(ending(active(['myactivity.search']))).toEqual(['ENDED', 'NOT_TIME_BASED', 'None of the schedule\u2019s groups is covered by time-based access any more']);
    expect(planRun(s, active(['chrome.history']), new Set(), T0 + DAY_MS - 1, id).kind).toBe('run');
  });

  it('runs the due, free, time-based groups; a busy one is looked at an hour later; the rest stay as they were', () => {
    const s = scheduleWith([
      { resource: 'chrome.history' },
      { resource: 'myactivity.search' },
      { resource: 'play.store', dueAt: T0 + 2 * HOUR_MS },
      { resource: 'myactivity.maps', dueAt: T0 - DAY_MS },
    ]);
    // myactivity.maps is no longer time-based; myactivity.search is busy.
    const p = planRun(s, active(['chrome.history', 'myactivity.search', 'play.store']), new Set(['myactivity.search']), T0, id);
    if (p.kind !== 'run') throw new Error(`expected a run, got ${p.kind}`);
    expect(p.run.jobs.map((j) => j.resource)).toEqual(['chrome.history']);
    const jobId = p.run.jobs[0]!.jobId;
    expect(p.schedule.groups).toEqual([
      { resource: 'chrome.history', window: 'incremental', dueAt: T0 + DAY_MS, lastJobId: jobId, lastJobSettled: false },
      { resource: 'myactivity.search', window: 'incremental', dueAt: T0 + BUSY_RECHECK_MS },
      { resource: 'play.store', window: 'incremental', dueAt: T0 + 2 * HOUR_MS },
      { resource: 'myactivity.maps', window: 'incremental', dueAt: T0 - DAY_MS },
    ]);
    // The soonest time-based group decides the next look (not the group that left, not the latest).
    expect(p.schedule.nextRunAt).toBe(T0 + BUSY_RECHECK_MS);
  });

  it('waits when every due group is busy, looking again an hour later, at the soonest time-based group', () => {
    const s = scheduleWith([
      { resource: 'chrome.history' },
      { resource: 'play.store', dueAt: T0 + 30 * 60_000 },
      { resource: 'myactivity.maps', dueAt: T0 - DAY_MS },
    ]);
    const p = planRun(s, active(['chrome.history', 'play.store']), new Set(['chrome.history']), T0, id);
    expect(p.kind).toBe('wait');
    expect(p.schedule.groups.map((g) => g.dueAt)).toEqual([T0 + BUSY_RECHECK_MS, T0 + 30 * 60_000, T0 - DAY_MS]);
    expect(p.schedule.nextRunAt).toBe(T0 + 30 * 60_000);
  });
});

describe('settleJob', () => {
  const latest = (over: Partial<ScheduleGroup> = {}) => scheduleWith([{ resource: 'chrome.history', lastJobId: 'j1', lastJobSettled: false, dueAt: T0 + DAY_MS, ...over }, { resource: 'play.store', dueAt: T0 + 5 }]);

  it('moves the cursor on a success only, never backwards, and leaves the other groups alone', () => {
    const s = latest({ cursor: '2026-01-01T00:00:05Z', lastJobSettled: true });
    const moved = settleJob(s, jobOf('chrome.history', 'j0', { state: 'SUCCEEDED', exportTime: '2026-01-01T00:00:09Z' }), T0);
    expect(moved?.groups).toEqual([{ ...s.groups[0], cursor: '2026-01-01T00:00:09Z' }, s.groups[1]]);
    expect(moved?.nextRunAt).toBe(T0 + 5);
    // An older or equal export time, or one on a failed job: nothing to write.
    expect(settleJob(s, jobOf('chrome.history', 'j0', { state: 'SUCCEEDED', exportTime: '2026-01-01T00:00:01Z' }), T0)).toBeUndefined();
    expect(settleJob(s, jobOf('chrome.history', 'j0', { state: 'SUCCEEDED', exportTime: '2026-01-01T00:00:05.000Z' }), T0)).toBeUndefined();
    expect(settleJob(s, jobOf('chrome.history', 'j0', { state: 'FAILED', exportTime: '2026-01-01T00:00:09Z' }), T0)).toBeUndefined();
  });

  it('a cooldown moves only its group; another failure, or one without an error, only marks the job settled', () => {
    const cooled = settleJob(latest(), jobOf('chrome.history', 'j1', { state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'm', retryAt: '2026-01-03T00:00:00Z' } }), T0);
    expect(cooled?.groups[0]).toMatchObject({ dueAt: Date.parse('2026-01-03T00:00:00Z'), lastJobSettled: true });
    expect(cooled?.groups[1]).toEqual(latest().groups[1]);
    for (const patch of [{ state: 'FAILED', error: { code: 'ARCHIVE_FAILED', message: 'm' } }, { state: 'FAILED' }, { state: 'CANCELLED' }] as Array<Partial<Job>>) {
      const next = settleJob(latest(), jobOf('chrome.history', 'j1', patch), T0);
      expect(next?.groups[0]).toEqual({ ...latest().groups[0], lastJobSettled: true });
      expect(next?.state).toBe('ACTIVE');
    }
  });

  it('lost consent on the latest job ends an active schedule, even when that job was folded in already; an older job\'s does not', () => {
    const revoked = (jobId: string) => jobOf('chrome.history', jobId, { state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'm' } });
    const ended = settleJob(latest({ lastJobSettled: true }), revoked('j1'), T0 + 7);
    expect(ended).toMatchObject({ state: 'NEEDS_CONSENT', endReason: 'CONSENT_REVOKED', endMessage: 'The Google authorization was revoked or has expired: the user must consent again', updatedAt: T0 + 7 });
    expect(ended).not.toHaveProperty('nextRunAt');
    expect(settleJob(latest({ lastJobSettled: true }), revoked('j0'), T0)).toBeUndefined();
    const older = settleJob(latest({ lastJobId: 'j2' }), revoked('j0'), T0);
    expect(older).toBeUndefined();
    // Already stopped: the job is folded in, the schedule is not made due again.
    const stopped = settleJob({ ...latest(), state: 'ENDED', nextRunAt: undefined }, revoked('j1'), T0);
    expect(stopped?.state).toBe('ENDED');
    expect(stopped?.nextRunAt).toBeUndefined();
    expect(settleJob({ ...latest({ lastJobSettled: true }), state: 'ENDED' }, revoked('j1'), T0)).toBeUndefined();
    // Folded in already, another failure (or none named): nothing to write.
    expect(settleJob(latest({ lastJobSettled: true }), jobOf('chrome.history', 'j1', { state: 'FAILED', error: { code: 'ARCHIVE_FAILED', message: 'm' } }), T0)).toBeUndefined();
    expect(settleJob(latest({ lastJobSettled: true }), jobOf('chrome.history', 'j1', { state: 'FAILED' }), T0)).toBeUndefined();
  });
});

describe('unsettledJobIds', () => {
  it('names the latest jobs not folded in yet', () => {
    const s = scheduleWith([
      { resource: 'a', lastJobId: 'j1', lastJobSettled: false },
      { resource: 'b', lastJobId: 'j2', lastJobSettled: true },
      { resource: 'c' },
      { resource: 'd', lastJobId: 'j4', lastJobSettled: false },
    ]);
    expect(unsettledJobIds(s)).toEqual(['j1', 'j4']);
  });
});
