/**
 * The events apps are told of a job, an export and a grant about to expire, pure: stable ids (one
 * per fact, so a subscriber drops a repeat), the attributes subscriptions filter on, what the data
 * says, and no user id anywhere (the user is a hash).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authorizationExpiringEvent, exportFinishedEvent, jobFinishedEvent, scheduleChangeEvents, userIdHash } from '../../functions/src/domain/events';
import { newJob } from '../../functions/src/domain/job';
import type { ExportRecord, Grant, Job, Schedule, ScheduleRun } from '../../functions/src/domain/model';
import { newSchedule } from '../../functions/src/domain/schedule';

const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number): string => new Date(ms).toISOString();
const USER = 'person@example.com';
const job = (over: Partial<Job> = {}): Job => ({ ...newJob({ id: 'j1', exportId: 'e1', userId: USER, resource: 'myactivity.search' }, T0), ...over });
const archive = { bucket: 'b', name: 'u/e1/myactivity.search/archive-1.zip', size: 42, crc32c: 'AAAAAA==', md5Hash: 'md5==' };

describe('userIdHash', () => {
  it('is the hex SHA-256 of "user\\n" and the id, which an app can compute from its own ids', () => {
    expect(userIdHash(USER)).toBe(createHash('sha256').update(`user\n${USER}`).digest('hex'));
    expect(userIdHash('a')).not.toBe(userIdHash('b'));
  });
});

describe('a job finished', () => {
  it('a success names its archives (no MD5, no bucket) under an id per job and state', () => {
    const e = jobFinishedEvent(job({ state: 'SUCCEEDED', archives: [archive], finishedAt: T0 + 70, updatedAt: T0 + 80 }));
    expect(e).toEqual({
      id: 'job/j1/SUCCEEDED',
      type: 'portability.job.finished',
      source: 'exports/e1',
      subject: 'jobs/j1',
      time: iso(T0 + 70),
      attributes: { type: 'portability.job.finished', userIdHash: userIdHash(USER), exportId: 'e1', state: 'SUCCEEDED' },
      data: { exportId: 'e1', jobId: 'j1', resource: 'myactivity.search', state: 'SUCCEEDED', archives: [{ name: archive.name, size: 42, crc32c: 'AAAAAA==' }] },
    });
    expect(JSON.stringify(e)).not.toContain(USER);
  });

  it('a failure carries its error (code and message only) and no archives; a scheduled job names its schedule', () => {
    const e = jobFinishedEvent(job({ state: 'FAILED', archives: [archive], error: { code: 'TIME_BASED_COOLDOWN', message: 'wait', retryAt: iso(T0) }, updatedAt: T0 + 5, scheduleId: 's1' }));
    expect(e.id).toBe('job/j1/FAILED');
    expect(e.time).toBe(iso(T0 + 5));
    expect(e.data).toEqual({ exportId: 'e1', jobId: 'j1', resource: 'myactivity.search', state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'wait' }, scheduleId: 's1' });
    const cancelled = jobFinishedEvent(job({ state: 'CANCELLED', finishedAt: T0 }));
    expect(cancelled.data).toEqual({ exportId: 'e1', jobId: 'j1', resource: 'myactivity.search', state: 'CANCELLED' });
  });
});

describe('an export finished', () => {
  const record: ExportRecord = { id: 'e1', userId: USER, state: 'RUNNING', resources: ['myactivity.search', 'chrome.history'], createdAt: T0, updatedAt: T0 };

  it('one id per export and final state, at the time given; the schedule and run on a scheduled export only', () => {
    expect(exportFinishedEvent(record, 'PARTIAL', T0 + 9)).toEqual({
      id: 'export/e1/PARTIAL',
      type: 'portability.export.finished',
      source: 'exports/e1',
      time: iso(T0 + 9),
      attributes: { type: 'portability.export.finished', userIdHash: userIdHash(USER), exportId: 'e1', state: 'PARTIAL' },
      data: { exportId: 'e1', state: 'PARTIAL', resources: ['myactivity.search', 'chrome.history'] },
    });
    expect(exportFinishedEvent({ ...record, scheduleId: 's1', run: 3 }, 'SUCCEEDED', T0).data).toEqual({ exportId: 'e1', state: 'SUCCEEDED', resources: record.resources, scheduleId: 's1', run: 3 });
  });
});

describe('an authorization expiring', () => {
  const grant: Grant & { expiresAt: number } = {
    userId: USER,
    refreshToken: { keyVersion: 'local-v1', wrappedKey: 'w', ciphertext: 'c' },
    resources: ['myactivity.search', 'chrome.history'],
    oneTimeResources: [],
    timeBasedResources: ['myactivity.search', 'chrome.history'],
    state: 'ACTIVE',
    expiresAt: T0 + 30 * 86_400_000,
    createdAt: T0,
    updatedAt: T0,
  };

  it('one id per grant expiry, the groups sorted, the renewal page when there is one', () => {
    const hash = userIdHash(USER);
    expect(authorizationExpiringEvent(grant, T0 + 1, 'https://renew.example/')).toEqual({
      id: `authorization/${hash}/expiring/${grant.expiresAt}`,
      type: 'portability.authorization.expiring',
      source: `authorizations/${hash}`,
      time: iso(T0 + 1),
      attributes: { type: 'portability.authorization.expiring', userIdHash: hash },
      data: { expiresAt: iso(grant.expiresAt), timeBasedResources: ['chrome.history', 'myactivity.search'], renewalUrl: 'https://renew.example/' },
    });
    expect(authorizationExpiringEvent(grant, T0 + 1, undefined).data).not.toHaveProperty('renewalUrl');
    expect(grant.timeBasedResources).toEqual(['myactivity.search', 'chrome.history']);
  });
});

describe('schedule change events, the edges', () => {
  const before = newSchedule({ id: 's1', userId: USER, resources: ['myactivity.search'] }, T0);

  it('a run counter that moved without its run recorded, or a stale last run, tells no run', () => {
    const run: ScheduleRun = { run: 1, exportId: 'e1', startedAt: T0, jobs: [{ resource: 'myactivity.search', jobId: 'j1', window: 'incremental' }] };
    expect(scheduleChangeEvents(before, { ...before, runCount: 1 }, [], T0)).toEqual([]);
    expect(scheduleChangeEvents(before, { ...before, runCount: 2, lastRun: run }, [], T0)).toEqual([]);
    const [e] = scheduleChangeEvents(before, { ...before, runCount: 1, lastRun: run }, [], T0 + 5);
    expect(e).toMatchObject({ id: 'schedule/s1/run/1', time: iso(T0), subject: 'exports/e1' });
  });

  it('an end without a message says an empty one; an end with no reason carries none', () => {
    const [withCode] = scheduleChangeEvents(before, { ...before, state: 'ENDED', endReason: 'NOT_TIME_BASED' }, [], T0 + 3);
    expect(withCode).toMatchObject({ id: 'schedule/s1/ENDED', time: iso(T0 + 3), data: { state: 'ENDED', reason: { code: 'NOT_TIME_BASED', message: '' } } });
    expect(withCode).not.toHaveProperty('subject');
    expect(withCode?.type).toBe('portability.schedule.ended');
    const [said] = scheduleChangeEvents(before, { ...before, state: 'NEEDS_CONSENT', endReason: 'GRANT_EXPIRED', endMessage: 'Access ended' }, [], T0 + 3);
    expect(said?.data).toMatchObject({ reason: { code: 'GRANT_EXPIRED', message: 'Access ended' } });
    const [bare] = scheduleChangeEvents(before, { ...before, state: 'ENDED' }, [], T0 + 3);
    expect(bare?.data).toEqual({ scheduleId: 's1', state: 'ENDED' });
  });

  it('a cooldown needs the group\u2019s latest job folded in now, as Google\u2019s refusal', () => {
    const group = before.groups[0]!;
    const refused = job({ id: 'j9', state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'wait' } });
    const open = { ...before, groups: [{ ...group, lastJobId: 'j9', lastJobSettled: false }] };
    const settled = { ...before, groups: [{ ...group, lastJobId: 'j9', lastJobSettled: true, dueAt: T0 + 86_400_000 }] };
    const [e] = scheduleChangeEvents(open, settled, [refused], T0 + 4);
    expect(e).toMatchObject({ id: 'schedule/s1/cooldown/j9', subject: 'jobs/j9', time: iso(T0 + 4), attributes: { exportId: 'e1' }, data: { resource: group.resource, jobId: 'j9', exportId: 'e1', dueAt: iso(T0 + 86_400_000) } });
    // Settled before already, still open, a group new in this change, or the job not among those folded in: nothing.
    expect(scheduleChangeEvents(settled, settled, [refused], T0)).toEqual([]);
    expect(scheduleChangeEvents(open, open, [refused], T0)).toEqual([]);
    expect(scheduleChangeEvents({ ...before, groups: [] }, settled, [refused], T0)).toEqual([]);
    expect(scheduleChangeEvents(open, settled, [], T0)).toEqual([]);
    expect(scheduleChangeEvents(open, settled, [{ ...refused, id: 'other' }], T0)).toEqual([]);
    expect(scheduleChangeEvents(open, settled, [{ ...refused, state: 'CANCELLED' }], T0)).toEqual([]);
    const { error: _e, ...noError } = refused;
    expect(scheduleChangeEvents(open, settled, [noError], T0)).toEqual([]);
  });

  it('a cooldown is told of its own group among several', () => {
    const two = newSchedule({ id: 's2', userId: USER, resources: ['myactivity.search', 'chrome.history'] }, T0);
    const [g1, g2] = two.groups as [Schedule['groups'][number], Schedule['groups'][number]];
    const refused = job({ id: 'j2', resource: g2.resource, state: 'FAILED', error: { code: 'TIME_BASED_COOLDOWN', message: 'wait' } });
    const ok = job({ id: 'j1', resource: g1.resource, state: 'SUCCEEDED' });
    const open = { ...two, groups: [{ ...g1, lastJobId: 'j1', lastJobSettled: true }, { ...g2, lastJobId: 'j2', lastJobSettled: false }] };
    const settled = { ...two, groups: [{ ...g1, lastJobId: 'j1', lastJobSettled: true }, { ...g2, lastJobId: 'j2', lastJobSettled: true }] };
    expect(scheduleChangeEvents(open, settled, [ok, refused], T0).map((e) => [e.id, e.data])).toEqual([
      ['schedule/s2/cooldown/j2', expect.objectContaining({ resource: g2.resource, jobId: 'j2' })],
    ]);
    // The group before the change is found by its resource, not by its place.
    const reordered = { ...open, groups: [...open.groups].reverse() };
    expect(scheduleChangeEvents(reordered, settled, [ok, refused], T0)).toHaveLength(1);
  });
});
