import { describe, expect, it } from 'vitest';
import { RetryingPortabilityApi } from '../../functions/src/adapters/retrying-portability-api';
import { PortabilityApiError } from '../../functions/src/domain/errors';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';

/** A fake API whose methods fail with the given errors, in order, then succeed. */
function flaky(errors: unknown[]): { api: PortabilityApi; calls: () => number } {
  let calls = 0;
  const next = async <T>(value: T): Promise<T> => {
    const e = errors[calls++];
    if (e !== undefined) throw e;
    return value;
  };
  const api: PortabilityApi = {
    initiate: () => next({ archiveJobId: 'j1', accessType: 'ACCESS_TYPE_ONE_TIME' as const }),
    getState: () => next({ name: 'archiveJobs/j1/portabilityArchiveState', state: 'IN_PROGRESS' as const, urls: [] }),
    retry: () => next({ archiveJobId: 'j2' }),
    cancel: () => next(undefined),
    resetAuthorization: () => next(undefined),
    checkAccessType: () => next({ oneTimeResources: [], timeBasedResources: [] }),
  };
  return { api, calls: () => calls };
}

const e503 = new PortabilityApiError(503, 'UNAVAILABLE', 'backend unavailable');
const e429wait = new PortabilityApiError(429, 'RESOURCE_EXHAUSTED', 'slow down', undefined, {}, 60);
const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const denied = new PortabilityApiError(403, 'PERMISSION_DENIED', 'The requested resources are not authorized by the OAuth token.');

function wrap(errors: unknown[]) {
  const waits: number[] = [];
  const f = flaky(errors);
  const api = new RetryingPortabilityApi(f.api, { attempts: 3, baseMs: 100, maxWaitMs: 4000, sleep: async (ms) => void waits.push(ms), random: () => 0.5 });
  return { api, waits, calls: f.calls };
}

describe('RetryingPortabilityApi', () => {
  it('rides out transient failures with jittered exponential waits', async () => {
    const { api, waits, calls } = wrap([e503, reset]);
    await expect(api.getState('t', 'j1', 'q')).resolves.toMatchObject({ state: 'IN_PROGRESS' });
    expect(calls()).toBe(3);
    expect(waits).toEqual([50, 100]);
  });

  it('stops after the attempt budget and passes the last error up', async () => {
    const { api, calls } = wrap([e503, e503, e503, e503]);
    await expect(api.getState('t', 'j1', 'q')).rejects.toBe(e503);
    expect(calls()).toBe(3);
  });

  it('does not retry what will never succeed', async () => {
    const { api, calls } = wrap([denied]);
    await expect(api.initiate('t', { resources: ['myactivity.search'] }, 'q')).rejects.toBe(denied);
    expect(calls()).toBe(1);
  });

  it('leaves long Retry-After waits to Cloud Tasks', async () => {
    const { api, waits, calls } = wrap([e429wait]);
    await expect(api.getState('t', 'j1', 'q')).rejects.toBe(e429wait);
    expect(calls()).toBe(1);
    expect(waits).toEqual([]);
  });

  it('repeats archiveJobs.retry only when Google said it did not process it', async () => {
    const lost = wrap([reset]);
    await expect(lost.api.retry('t', 'j1', 'q')).rejects.toBe(reset);
    expect(lost.calls()).toBe(1);
    const throttled = wrap([e503]);
    await expect(throttled.api.retry('t', 'j1', 'q')).resolves.toEqual({ archiveJobId: 'j2' });
    expect(throttled.calls()).toBe(2);
  });
});
