/**
 * Admission decided on a ledger and the facts read with it: a group held by a live job refuses,
 * the daily window slides (Retry-After when its oldest export leaves it), running exports count
 * only while they run, and a schedule's runs (no limits) hold their groups without counting.
 */
import { describe, expect, it } from 'vitest';
import { admitExport, admitSchedule, emptyLedger, type LedgerFacts, type UserLedger } from '../../functions/src/domain/admission';
import { RequestError } from '../../functions/src/domain/errors';

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const none: LedgerFacts = { runningExports: new Set(), liveJobs: new Set() };
const limits = { exportsPerDay: 2, concurrentExports: 2 };
const request = (exportId: string, resources: string[], now = T0) => ({ exportId, jobs: resources.map((resource) => ({ resource, jobId: `${exportId}-${resource}` })), now });

function refused(fn: () => unknown): RequestError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    return e as RequestError;
  }
  throw new Error('expected a refusal');
}

describe('admitExport', () => {
  it('writes the export into the ledger: its time, its place among the running, its groups', () => {
    const next = admitExport(emptyLedger(), none, request('e1', ['a', 'b']), { limits });
    expect(next).toEqual({ recent: [T0], running: ['e1'], groups: { a: { exportId: 'e1', jobId: 'e1-a' }, b: { exportId: 'e1', jobId: 'e1-b' } }, schedules: [] });
  });

  it('refuses groups held by live jobs, naming the holders; a holder whose job ended lets go', () => {
    const ledger: UserLedger = { ...emptyLedger(), groups: { a: { exportId: 'e1', jobId: 'j1' }, b: { exportId: 'e2', jobId: 'j2' }, c: { exportId: 'e1', jobId: 'j3' } } };
    const facts = { runningExports: new Set<string>(), liveJobs: new Set(['j1', 'j3']) };
    const err = refused(() => admitExport(ledger, facts, request('e9', ['c', 'b', 'a']), {}));
    expect(err).toMatchObject({ status: 409, code: 'RESOURCE_GROUP_BUSY', message: 'Already being exported by export e1: c, a. Wait until it ends or cancel it' });
    const next = admitExport(ledger, facts, request('e9', ['b']), {});
    // Ended holders are dropped from the ledger, live ones stay.
    expect(next.groups).toEqual({ a: { exportId: 'e1', jobId: 'j1' }, b: { exportId: 'e9', jobId: 'e9-b' }, c: { exportId: 'e1', jobId: 'j3' } });
  });

  it('counts the exports of the last 24 hours, and says when the oldest leaves the window', () => {
    const ledger: UserLedger = { ...emptyLedger(), recent: [T0 - DAY, T0 - DAY + 1, T0 - 10_000, T0 - 5_000] };
    const err = refused(() => admitExport(ledger, none, request('e', ['x']), { limits }));
    expect(err).toMatchObject({ status: 429, code: 'DAILY_EXPORT_LIMIT', message: 'At most 2 exports may be started in 24 hours' });
    // Of the two in the window, the older (10 s ago) leaves it in 24 h - 10 s.
    expect(err.retryAfterSeconds).toBe(DAY / 1000 - 10);
    const one = admitExport({ ...ledger, recent: [T0 - DAY, T0 - 5_000] }, none, request('e', ['x']), { limits });
    expect(one.recent).toEqual([T0 - 5_000, T0]);
    const soon = refused(() => admitExport({ ...ledger, recent: [T0 - DAY + 200, T0 - DAY + 300] }, none, request('e', ['x']), { limits: { ...limits, exportsPerDay: 1 } }));
    expect(soon.retryAfterSeconds).toBe(1);
  });

  it('counts running exports only while they run', () => {
    const ledger: UserLedger = { ...emptyLedger(), running: ['e1', 'e2', 'e3'] };
    const err = refused(() => admitExport(ledger, { ...none, runningExports: new Set(['e1', 'e3']) }, request('e4', ['x']), { limits }));
    expect(err).toMatchObject({ status: 429, code: 'CONCURRENT_EXPORT_LIMIT', message: 'At most 2 exports may run at once', retryAfterSeconds: 60 });
    const next = admitExport(ledger, { ...none, runningExports: new Set(['e3']) }, request('e4', ['x']), { limits });
    expect(next.running).toEqual(['e3', 'e4']);
  });

  it('without limits (a schedule\'s run) holds the groups but neither counts nor is counted', () => {
    const ledger: UserLedger = { ...emptyLedger(), recent: [T0 - 1, T0 - 2, T0 - 3], running: ['e1', 'e2', 'e3'] };
    const facts = { ...none, runningExports: new Set(['e1', 'e2', 'e3']) };
    const next = admitExport(ledger, facts, request('run', ['x']), {});
    expect(next).toEqual({ ...ledger, groups: { x: { exportId: 'run', jobId: 'run-x' } } });
  });
});

describe('admitSchedule', () => {
  it('refuses a group already on an active schedule and more than maxActive; ended schedules free both', () => {
    const ledger: UserLedger = { ...emptyLedger(), schedules: ['s1', 's2'] };
    const active = new Map([['s1', ['a', 'b']]]);
    expect(refused(() => admitSchedule(ledger, active, { scheduleId: 's3', resources: ['c', 'b', 'a'], maxActive: 5 }))).toMatchObject({
      status: 409,
      code: 'SCHEDULE_EXISTS',
      message: 'Already on an active schedule: b, a. Delete that schedule first',
    });
    expect(refused(() => admitSchedule(ledger, active, { scheduleId: 's3', resources: ['c'], maxActive: 1 }))).toMatchObject({ code: 'TOO_MANY_SCHEDULES', message: 'At most 1 active schedules per user' });
    expect(admitSchedule(ledger, active, { scheduleId: 's3', resources: ['c'], maxActive: 2 })).toEqual({ ...ledger, schedules: ['s1', 's3'] });
  });
});

describe('admission at its edges', () => {
  it('refuses at exactly the daily limit, names every holder once, and finds a group on any active schedule', () => {
    const full: UserLedger = { ...emptyLedger(), recent: [T0 - 2, T0 - 1] };
    expect(refused(() => admitExport(full, none, request('e', ['x']), { limits })).code).toBe('DAILY_EXPORT_LIMIT');
    const ledger: UserLedger = { ...emptyLedger(), groups: { a: { exportId: 'e1', jobId: 'j1' }, b: { exportId: 'e2', jobId: 'j2' }, c: { exportId: 'e1', jobId: 'j3' } } };
    const all = { runningExports: new Set<string>(), liveJobs: new Set(['j1', 'j2', 'j3']) };
    expect(refused(() => admitExport(ledger, all, request('e9', ['a', 'b', 'c']), {})).message).toBe('Already being exported by export e1, e2: a, b, c. Wait until it ends or cancel it');
    const schedules: UserLedger = { ...emptyLedger(), schedules: ['s1', 's2'] };
    const active = new Map([
      ['s1', ['a']],
      ['s2', ['b']],
    ]);
    expect(refused(() => admitSchedule(schedules, active, { scheduleId: 's3', resources: ['b'], maxActive: 5 })).code).toBe('SCHEDULE_EXISTS');
  });
});
