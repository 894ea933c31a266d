/** The erasure's pure decisions: when a DELETE starts a run or joins one, the order of steps, the tombstone. */
import { describe, expect, it } from 'vitest';
import { beginErasure, erasureSteps, finishedErasure, toErasureView, type ErasureRecord } from '../../functions/src/domain/erasure';

const T0 = Date.UTC(2026, 0, 1);

describe('beginErasure', () => {
  it('starts run 1 for a user never erased, joins a running one, and joins a finished one unless the user has records again', () => {
    const first = beginErasure(undefined, 'u1', T0, T0, false) as ErasureRecord;
    expect(first).toEqual({ state: 'RUNNING', run: 1, userId: 'u1', requestedAt: T0, updatedAt: T0, step: 0, nextCheckAt: T0, removed: {} });
    expect(beginErasure(first, 'u1', T0 + 1, T0 + 1, true)).toBeUndefined();
    const done = finishedErasure({ ...first, step: 7, holdUntil: T0 + 5, removed: { jobs: 2 } }, T0 + 10);
    expect(beginErasure(done, 'u1', T0 + 20, T0 + 20, false)).toBeUndefined();
    expect(beginErasure(done, 'u1', T0 + 20, T0 + 20, true)).toMatchObject({ state: 'RUNNING', run: 2, requestedAt: T0 + 20, step: 0, removed: {} });
  });
});

describe('the tombstone', () => {
  it('keeps no user id, due time or hold, and shows times as RFC 3339', () => {
    const running: ErasureRecord = { state: 'RUNNING', run: 1, userId: 'u1', requestedAt: T0, updatedAt: T0, step: 3, holdUntil: T0 + 9, nextCheckAt: T0 + 9, removed: { objects: 4 } };
    const done = finishedErasure(running, T0 + 60_000);
    expect(done).toEqual({ state: 'DONE', run: 1, requestedAt: T0, updatedAt: T0 + 60_000, finishedAt: T0 + 60_000, step: 3, removed: { objects: 4 } });
    expect(toErasureView(done)).toEqual({ state: 'DONE', requestedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:01:00.000Z', removed: { objects: 4 } });
    expect(toErasureView(running)).not.toHaveProperty('finishedAt');
  });
});

describe('erasureSteps', () => {
  it('resets at Google, ends jobs and waits for their leases before any delete, one step per swept collection, finish last', () => {
    expect(erasureSteps(['jobs', 'grants'])).toEqual(['reset-google', 'stop-schedules', 'end-jobs', 'wait-leases', 'delete-objects', 'delete:jobs', 'delete:grants', 'finish']);
  });
});
