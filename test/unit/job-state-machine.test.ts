import { describe, expect, it } from 'vitest';
import { deriveExportState } from '../../functions/src/domain/export-state';
import { applies, canApply, newJob, transition, type JobEvent } from '../../functions/src/domain/job';
import { InvalidTransitionError } from '../../functions/src/domain/errors';
import type { Job, JobState } from '../../functions/src/domain/model';
import { nextCheckDelaySeconds } from '../../functions/src/domain/polling-policy';

const policy = { initialSeconds: 300, maxSeconds: 3600 };
const MIN = 60_000;

function fresh(now = 0): Job {
  return newJob({ id: 'a'.repeat(20), exportId: 'b'.repeat(20), userId: 'u1', resource: 'myactivity.search' }, now);
}

describe('job state machine', () => {
  it('walks INITIATING -> WAITING -> COPYING -> SUCCEEDED with one effect per step', () => {
    let t = transition(fresh(), { type: 'initiated', archiveJobId: 'g1' }, 0, policy);
    expect(t.job).toMatchObject({ state: 'WAITING', archiveJobId: 'g1', archiveJobIds: ['g1'], seq: 1, nextCheckAt: 300_000 });
    expect(t.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 300 }]);
    t = transition(t.job, { type: 'still-running' }, 5 * MIN, policy);
    expect(t.job).toMatchObject({ state: 'WAITING', checks: 1, seq: 2 });
    t = transition(t.job, { type: 'archive-complete', exportTime: '2026-11-28T00:00:00Z' }, 10 * MIN, policy);
    expect(t.job).toMatchObject({ state: 'COPYING', readyAt: 10 * MIN, exportTime: '2026-11-28T00:00:00Z' });
    // A copy holds the job for a lease; after it the sweeper may assume the copy died.
    expect(t.job.nextCheckAt).toBe(10 * MIN + 2100 * 1000);
    expect(t.effects).toEqual([{ type: 'enqueue', step: 'copy', delaySeconds: 0 }]);
    const archives = [{ bucket: 'b', name: 'n', size: 10, crc32c: 'x' }];
    t = transition(t.job, { type: 'copied', archives }, 11 * MIN, policy);
    expect(t.job).toMatchObject({ state: 'SUCCEEDED', archives, bytesCopied: 10, finishedAt: 11 * MIN });
    expect(t.job.nextCheckAt).toBeUndefined();
    expect(t.effects).toEqual([]);
  });

  it('follows the new archive job id on retry and counts attempts', () => {
    let t = transition(fresh(), { type: 'initiated', archiveJobId: 'g1' }, 0, policy);
    t = transition(t.job, { type: 'archive-retried', archiveJobId: 'g2' }, MIN, policy);
    expect(t.job).toMatchObject({ archiveJobId: 'g2', archiveJobIds: ['g1', 'g2'], retries: 1, state: 'WAITING' });
    expect(t.effects[0]).toMatchObject({ step: 'check' });
  });

  it('refuses events that do not apply, and moves seq on with every transition, so stale deliveries change nothing', () => {
    const job = fresh();
    expect(canApply(job, 'copied')).toBe(false);
    expect(() => transition(job, { type: 'copied', archives: [] }, 0, policy)).toThrow(InvalidTransitionError);
    const done = transition(job, { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } }, 0, policy).job;
    for (const type of ['initiated', 'still-running', 'cancelled', 'failed'] as const) expect(canApply(done, type)).toBe(false);
    // The whole table: which state each event applies in.
    const states = ['INITIATING', 'WAITING', 'COPYING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
    const allowed: Record<JobEvent['type'], readonly JobState[]> = {
      initiated: ['INITIATING'],
      'still-running': ['WAITING'],
      'archive-complete': ['WAITING'],
      'archive-retried': ['WAITING'],
      'archive-cancelled': ['WAITING'],
      copied: ['COPYING'],
      cancelled: ['INITIATING', 'WAITING'],
      failed: ['INITIATING', 'WAITING', 'COPYING'],
      'lease-taken': ['INITIATING', 'WAITING'],
      'lease-released': ['INITIATING', 'WAITING'],
      'copy-saved': ['COPYING'],
      'copy-progress': ['COPYING'],
      'copy-sized': ['COPYING'],
      'parts-planned': ['COPYING'],
      'part-copied': ['COPYING'],
      'slice-ended': ['COPYING'],
      'archive-indexed': ['COPYING'],
      redelivered: ['INITIATING', 'WAITING', 'COPYING'],
    };
    for (const [event, where] of Object.entries(allowed) as [JobEvent['type'], readonly JobState[]][]) {
      expect(states.filter((state) => canApply({ ...job, state }, event)), event).toEqual(where);
    }
    // Every applied event moves seq on by one: a task made for the seq before is stale from then on
    // (the job runner compares seq inside its transaction; test/integration/job-runner-races.test.ts).
    const events: JobEvent[] = [
      { type: 'initiated', archiveJobId: 'g1' },
      { type: 'still-running' },
      { type: 'archive-retried', archiveJobId: 'g2' },
      { type: 'archive-complete' },
      { type: 'copied', archives: [] },
    ];
    let j: Job = { ...job, seq: 7 };
    for (const e of events) {
      const next = transition(j, e, MIN, policy).job;
      expect(next.seq, e.type).toBe(j.seq + 1);
      j = next;
    }
    for (const [state, e] of [
      ['WAITING', { type: 'archive-cancelled' }],
      ['INITIATING', { type: 'cancelled' }],
      ['COPYING', { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } }],
    ] as const) {
      expect(transition({ ...job, state, seq: 3 }, e, 0, policy).job.seq).toBe(4);
    }
  });

  it('records each archive\'s manifest once, merges its warnings without duplicates, keeps them on the finished job and drops them when a copy starts afresh', () => {
    const copying: Job = { ...fresh(), state: 'COPYING', seq: 4 };
    const chrome = { code: 'SERVICE_INCOMPLETE' as const, archive: 0, service: 'Chrome history', message: 'Google marked Chrome history incomplete' };
    const first = transition(copying, { type: 'archive-indexed', archive: 0, entries: 12, warnings: [chrome] }, MIN, policy);
    expect(first.effects).toEqual([]);
    expect(first.job.seq).toBe(4); // bookkeeping: the copy task in flight stays valid
    expect(first.job.manifests).toEqual([{ archive: 0, entries: 12 }]);
    // The same archive again (a redelivered copy step): refused by the guard, nothing doubles.
    expect(applies(first.job, { type: 'archive-indexed', archive: 0, entries: 12, warnings: [chrome] }, MIN)).toBe(false);
    // The same service marked incomplete in the second archive is one warning; another archive's damage is its own.
    const damaged = { code: 'ARCHIVE_DAMAGED' as const, archive: 1, message: 'archive 2 is damaged' };
    const second = transition(first.job, { type: 'archive-indexed', archive: 1, entries: 3, warnings: [{ ...chrome, archive: 1 }, damaged] }, MIN, policy).job;
    expect(second.warnings).toEqual([chrome, damaged]);
    expect(second.manifests).toEqual([{ archive: 0, entries: 12 }, { archive: 1, entries: 3 }]);
    const done = transition(second, { type: 'copied', archives: [] }, 2 * MIN, policy).job;
    expect(done).toMatchObject({ state: 'SUCCEEDED', warnings: [chrome, damaged], manifests: second.manifests });
    expect(canApply(done, 'archive-indexed')).toBe(false);
    const again = transition({ ...second, state: 'WAITING' }, { type: 'archive-complete' }, 3 * MIN, policy).job;
    expect(again).not.toHaveProperty('warnings');
    expect(again).not.toHaveProperty('manifests');
  });

  it('polls in proportion to the wait, counts checks, and ends a job with no further step', () => {
    const waiting = transition(fresh(), { type: 'initiated', archiveJobId: 'g1' }, 0, policy).job;
    // Waited 50 minutes: the next check comes after a fifth of that (10 minutes).
    const later = transition(waiting, { type: 'still-running' }, 50 * MIN, policy);
    expect(later.job.nextCheckAt).toBe(60 * MIN);
    expect(later.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 600 }]);
    const ready = transition(later.job, { type: 'archive-complete' }, 55 * MIN, policy).job;
    expect(ready.checks).toBe(2);
    expect(ready).not.toHaveProperty('exportTime');
    for (const [state, event, ends] of [
      ['WAITING', { type: 'archive-cancelled' }, 'CANCELLED'],
      ['INITIATING', { type: 'cancelled' }, 'CANCELLED'],
      ['COPYING', { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'x' } }, 'FAILED'],
    ] as const) {
      const t = transition({ ...waiting, state, nextCheckAt: 1 }, event, 70 * MIN, policy);
      expect(t.job.state).toBe(ends);
      expect(t.job.finishedAt).toBe(70 * MIN);
      expect(t.job).not.toHaveProperty('nextCheckAt');
      expect(t.effects).toEqual([]);
    }
    expect(fresh()).toMatchObject({ archiveJobIds: [], archives: [], retries: 0, checks: 0, bytesCopied: 0 });
    expect(fresh().archiveJobIds).toHaveLength(0);
  });

  it('cannot cancel a job that is already copying', () => {
    const copying = { ...fresh(), state: 'COPYING' as const };
    expect(canApply(copying, 'cancelled')).toBe(false);
  });
});

describe('polling policy', () => {
  it('stays inside the documented 5 to 60 minutes', () => {
    for (const waited of [0, 60, 600, 3600, 86_400, 3 * 86_400]) {
      const d = nextCheckDelaySeconds(policy, { checks: 3, waitedSeconds: waited });
      expect(d).toBeGreaterThanOrEqual(300);
      expect(d).toBeLessThanOrEqual(3600);
    }
  });

  it('waits in proportion to the time already waited', () => {
    expect(nextCheckDelaySeconds(policy, { checks: 0, waitedSeconds: 0 })).toBe(300);
    expect(nextCheckDelaySeconds(policy, { checks: 5, waitedSeconds: 10_000 })).toBe(2000);
    expect(nextCheckDelaySeconds(policy, { checks: 9, waitedSeconds: 100_000 })).toBe(3600);
  });
});

describe('export state', () => {
  it('follows from the jobs', () => {
    expect(deriveExportState(['SUCCEEDED', 'WAITING'])).toBe('RUNNING');
    expect(deriveExportState(['SUCCEEDED', 'SUCCEEDED'])).toBe('SUCCEEDED');
    expect(deriveExportState(['SUCCEEDED', 'FAILED'])).toBe('PARTIAL');
    expect(deriveExportState(['SUCCEEDED', 'CANCELLED'])).toBe('PARTIAL');
    expect(deriveExportState(['FAILED', 'CANCELLED'])).toBe('FAILED');
    expect(deriveExportState(['CANCELLED', 'CANCELLED'])).toBe('CANCELLED');
    expect(deriveExportState([])).toBe('RUNNING');
  });
});

describe('a user cancel', () => {
  it('ends a job with no Google call in flight CANCELLED at once', () => {
    const t = transition(fresh(), { type: 'cancelled' }, MIN, policy);
    expect(t.job).toMatchObject({ state: 'CANCELLED', seq: 1, finishedAt: MIN });
    expect(t.job.nextCheckAt).toBeUndefined();
  });

  it('during an initiate in flight is only recorded (same seq), and the recorded job id is checked, then cancelled', () => {
    const leased: Job = { ...fresh(), lease: { until: 2 * MIN } };
    const marked = transition(leased, { type: 'cancelled' }, MIN, policy);
    expect(marked.job).toMatchObject({ state: 'INITIATING', seq: 0, cancelRequested: MIN, lease: { until: 2 * MIN } });
    expect(marked.effects).toEqual([]);
    // The step in flight still records Google's job id (its seq is unchanged), then checks at once.
    const recorded = transition(marked.job, { type: 'initiated', archiveJobId: 'g1' }, MIN + 1, policy);
    expect(recorded.job).toMatchObject({ state: 'WAITING', archiveJobId: 'g1', seq: 1, cancelRequested: MIN });
    expect(recorded.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 0 }]);
    // The check cancels g1 at Google; the cancel then ends the job.
    const ended = transition(recorded.job, { type: 'cancelled', cancelledAtGoogle: 'g1' }, MIN + 2, policy);
    expect(ended.job).toMatchObject({ state: 'CANCELLED', seq: 2 });
    expect(ended.job.cancelRequested).toBeUndefined();
  });

  it('of a WAITING job whose Google job the caller did not cancel asks for a check that will', () => {
    const waiting = transition(fresh(), { type: 'initiated', archiveJobId: 'g1' }, 0, policy).job;
    const t = transition(waiting, { type: 'cancelled', cancelledAtGoogle: 'g0' }, MIN, policy);
    expect(t.job).toMatchObject({ state: 'WAITING', seq: 2, cancelRequested: MIN, nextCheckAt: MIN });
    expect(t.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 0 }]);
  });
});

describe('bookkeeping events: the state machine writes them too, and they keep the task valid', () => {
  const copying = (over: Partial<Job> = {}): Job => ({ ...fresh(), state: 'COPYING', seq: 5, archiveJobId: 'g1', archiveJobIds: ['g1'], readyAt: 0, nextCheckAt: 35 * MIN, ...over });
  const archive = { bucket: 'b', name: 'n/1.zip', size: 10, crc32c: 'AAAAAA==' };

  it('a lease is taken only when none is live, and released only when held; neither moves seq', () => {
    const job = { ...fresh(), seq: 2 };
    const taken = transition(job, { type: 'lease-taken', until: 2 * MIN }, MIN, policy);
    expect(taken).toEqual({ job: { ...job, lease: { until: 2 * MIN } }, effects: [] });
    expect(applies(taken.job, { type: 'lease-taken', until: 3 * MIN }, MIN + 1)).toBe(false);
    expect(() => transition(taken.job, { type: 'lease-taken', until: 3 * MIN }, MIN + 1, policy)).toThrow(InvalidTransitionError);
    // An expired lease (its holder crashed) can be taken again.
    expect(applies(taken.job, { type: 'lease-taken', until: 4 * MIN }, 2 * MIN)).toBe(true);
    const released = transition(taken.job, { type: 'lease-released' }, MIN + 2, policy).job;
    expect(released).toEqual(job);
    expect(applies(released, { type: 'lease-released' }, MIN + 3)).toBe(false);
  });

  it('copy progress and saved copy state change only what they say', () => {
    const job = copying();
    expect(transition(job, { type: 'copy-progress', bytesCopied: 7 }, MIN, policy)).toEqual({ job: { ...job, bytesCopied: 7 }, effects: [] });
    expect(transition(job, { type: 'copy-sized', bytesTotal: 70 }, MIN, policy)).toEqual({ job: { ...job, bytesTotal: 70 }, effects: [] });
    const saved = transition(job, { type: 'copy-saved', copy: { done: [archive] } }, MIN, policy);
    expect(saved).toEqual({ job: { ...job, copy: { done: [archive] }, updatedAt: MIN }, effects: [] });
  });

  it('a parts plan enqueues one task per part not done, at the same seq, and extends the copy lease', () => {
    const job = copying();
    const plan = { archive: 1, count: 3, size: 9, crc32c: 'x', done: [1] };
    const t = transition(job, { type: 'parts-planned', done: [archive], plan }, MIN, { ...policy, copyLeaseSeconds: 600 });
    expect(t.job).toEqual({ ...job, copy: { done: [archive], parts: plan }, updatedAt: MIN, nextCheckAt: MIN + 600_000 });
    expect(t.effects).toEqual([
      { type: 'enqueue', step: 'copy-part', part: 0, delaySeconds: 0 },
      { type: 'enqueue', step: 'copy-part', part: 2, delaySeconds: 0 },
    ]);
  });

  it('a part joins the plan once; the last one moves seq on and enqueues the compose', () => {
    const plan = { archive: 1, count: 3, size: 9, crc32c: 'x', done: [0] };
    const job = copying({ copy: { done: [archive], parts: plan } });
    const event = (part: number): JobEvent => ({ type: 'part-copied', archive: 1, count: 3, part });
    expect(applies(job, event(0), MIN)).toBe(false);
    expect(applies(job, { type: 'part-copied', archive: 0, count: 3, part: 1 }, MIN)).toBe(false);
    expect(applies(job, { type: 'part-copied', archive: 1, count: 4, part: 1 }, MIN)).toBe(false);
    expect(applies(copying(), event(1), MIN)).toBe(false);
    const second = transition(job, event(2), MIN, policy);
    expect(second.effects).toEqual([]);
    expect(second.job).toMatchObject({ seq: 5, bytesCopied: 10 + 6, copy: { parts: { done: [0, 2] } } });
    const last = transition(second.job, event(1), 2 * MIN, policy);
    expect(last.job).toMatchObject({ seq: 6, bytesCopied: 19, copy: { done: [archive], parts: { done: [0, 1, 2] } } });
    expect(last.effects).toEqual([{ type: 'enqueue', step: 'copy', delaySeconds: 0 }]);
  });

  it('a slice that ends hands over to a copy task at the next seq; a redelivery keeps the seq and names the task anew', () => {
    const job = copying();
    const slice = transition(job, { type: 'slice-ended' }, MIN, { ...policy, copyLeaseSeconds: 60 });
    expect(slice.job).toEqual({ ...job, seq: 6, updatedAt: MIN, nextCheckAt: 2 * MIN });
    expect(slice.effects).toEqual([{ type: 'enqueue', step: 'copy', delaySeconds: 0 }]);
    for (const [state, step] of [['INITIATING', 'initiate'], ['WAITING', 'check'], ['COPYING', 'copy']] as const) {
      const t = transition({ ...job, state }, { type: 'redelivered', nextCheckAt: 9 * MIN, redelivery: 4 }, MIN, policy);
      expect(t.job).toEqual({ ...job, state, nextCheckAt: 9 * MIN });
      expect(t.effects).toEqual([{ type: 'enqueue', step, delaySeconds: 0, redelivery: 4 }]);
    }
    const { nextCheckAt: _n, ...undue } = job;
    expect(applies(undue, { type: 'redelivered', nextCheckAt: 9 * MIN, redelivery: 4 }, MIN)).toBe(false);
  });

  it('waits in proportion to how long Google has been preparing the archive, a failed job keeps its error, manifests stay in archive order', () => {
    // Google started preparing at minute 1000 of the clock: the wait counts from then.
    const T = 1000 * MIN;
    const waiting = transition(fresh(T), { type: 'initiated', archiveJobId: 'g1' }, T, policy).job;
    // After 10 hours of waiting, a fifth of it (2 hours) up to the 1-hour cap.
    const late = transition(waiting, { type: 'still-running' }, T + 600 * MIN, policy);
    expect(late.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 3600 }]);
    // After 50 minutes, 10 minutes.
    const mid = transition(waiting, { type: 'still-running' }, T + 50 * MIN, policy);
    expect(mid.effects).toEqual([{ type: 'enqueue', step: 'check', delaySeconds: 600 }]);
    expect(mid.job.nextCheckAt).toBe(T + 50 * MIN + 600_000);

    const failed = transition({ ...fresh(), state: 'COPYING', seq: 3 }, { type: 'failed', error: { code: 'DATA_EXPIRED', message: 'gone' } }, MIN, policy).job;
    expect(failed).toMatchObject({ state: 'FAILED', error: { code: 'DATA_EXPIRED', message: 'gone' }, finishedAt: MIN });

    const copying: Job = { ...fresh(), state: 'COPYING', seq: 4 };
    const second = transition(copying, { type: 'archive-indexed', archive: 2, entries: 5, warnings: [] }, MIN, policy).job;
    const first = transition(second, { type: 'archive-indexed', archive: 0, entries: 7, warnings: [] }, MIN, policy).job;
    expect(first.manifests).toEqual([{ archive: 0, entries: 7 }, { archive: 2, entries: 5 }]);
  });
});
