/** The events of a schedule's changes, pure: which change tells what, under which stable id. */
import { describe, expect, it } from 'vitest';
import { scheduleChangeEvents, userIdHash } from '../../functions/src/domain/events';
import { newJob } from '../../functions/src/domain/job';
import type { Job, Schedule } from '../../functions/src/domain/model';
import { DAY_MS, HOUR_MS, newSchedule, planRun, settleJob } from '../../functions/src/domain/schedule';

const T0 = Date.UTC(2026, 0, 1);
let n = 0;
const id = (): string => `id${++n}`;
const grant = { exists: true, active: true, timeBasedResources: ['myactivity.search'] };

function started(): { before: Schedule; after: Schedule; job: (patch: Partial<Job>) => Job } {
  const before = newSchedule({ id: 's1', userId: 'u', resources: ['myactivity.search'] }, T0);
  const plan = planRun(before, grant, new Set(), T0, id);
  if (plan.kind !== 'run') throw new Error('no run');
  const job = (patch: Partial<Job>): Job => ({ ...newJob({ id: plan.run.jobs[0]!.jobId, exportId: plan.run.exportId, userId: 'u', resource: 'myactivity.search' }, T0), ...patch });
  return { before, after: plan.schedule, job };
}

describe('schedule change events', () => {
  it('a run started: one event per run, naming its export', () => {
    const { before, after } = started();
    const [e, ...rest] = scheduleChangeEvents(before, after, [], T0);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({
      id: 'schedule/s1/run/1',
      type: 'portability.schedule.run-started',
      source: 'schedules/s1',
      subject: `exports/${after.lastRun!.exportId}`,
      attributes: { type: 'portability.schedule.run-started', userIdHash: userIdHash('u'), exportId: after.lastRun!.exportId, scheduleId: 's1', state: 'ACTIVE' },
      data: { scheduleId: 's1', state: 'ACTIVE', run: 1, exportId: after.lastRun!.exportId, resources: ['myactivity.search'] },
    });
    // A lease (nextRunAt moved) or a wait tells nothing.
    expect(scheduleChangeEvents(after, { ...after, nextRunAt: T0 + HOUR_MS }, [], T0)).toEqual([]);
  });

  it('a cooldown: told once, when the group\u2019s latest job is folded in as Google\u2019s 24-hour refusal', () => {
    const { after, job } = started();
    const refused = job({ state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'wait', retryAt: new Date(T0 + DAY_MS).toISOString() } });
    const cooled = settleJob(after, refused, T0 + 1000) as Schedule;
    const events = scheduleChangeEvents(after, cooled, [refused], T0 + 1000);
    expect(events.map((e) => [e.id, e.type])).toEqual([[`schedule/s1/cooldown/${refused.id}`, 'portability.schedule.cooled-down']]);
    expect(events[0]!.data).toMatchObject({ resource: 'myactivity.search', jobId: refused.id, dueAt: new Date(T0 + DAY_MS).toISOString() });
    // Another failure, or a success, is no cooldown.
    const failed = job({ state: 'FAILED', error: { code: 'ARCHIVE_FAILED', message: 'no' } });
    expect(scheduleChangeEvents(after, settleJob(after, failed, T0 + 1000) as Schedule, [failed], T0 + 1000)).toEqual([]);
  });

  it('an end: told once, with its state and reason', () => {
    const { after, job } = started();
    const revoked = job({ state: 'FAILED', error: { code: 'CONSENT_REVOKED', message: 'revoked' } });
    const ended = settleJob(after, revoked, T0 + 1000) as Schedule;
    const events = scheduleChangeEvents(after, ended, [revoked], T0 + 1000);
    expect(events.map((e) => [e.id, e.attributes.state])).toEqual([['schedule/s1/NEEDS_CONSENT', 'NEEDS_CONSENT']]);
    expect(events[0]!.data).toMatchObject({ reason: { code: 'CONSENT_REVOKED' } });
    expect(events[0]!.attributes).not.toHaveProperty('exportId');
    // A change of a schedule already ended tells no second end.
    expect(scheduleChangeEvents(ended, { ...ended, updatedAt: T0 + 2000 }, [], T0 + 2000)).toEqual([]);
  });
});
