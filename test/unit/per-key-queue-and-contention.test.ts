/**
 * Two small pieces the Firestore stores lean on: the per-key queue (one task at a time per key,
 * in order, a failure not blocking the next) and `contended` (a transaction that met contention
 * runs again, a few times, then is the caller's to retry as 503; any other error passes at once).
 */
import type { Firestore } from '@google-cloud/firestore';
import { describe, expect, it } from 'vitest';
import { contended } from '../../functions/src/adapters/firestore-client';
import { FirestoreConsentStateStore } from '../../functions/src/adapters/firestore-consent-state-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { PerKeyQueue } from '../../functions/src/adapters/per-key-queue';
import { UnavailableError } from '../../functions/src/domain/errors';

const tick = () => new Promise((r) => setImmediate(r));

describe('PerKeyQueue', () => {
  it('runs the tasks of one key one at a time in order, other keys alongside, past a failing task, and forgets idle keys', async () => {
    const q = new PerKeyQueue();
    const events: string[] = [];
    const gate: { open?: () => void } = {};
    const first = q.run('a', () => new Promise<string>((resolve) => (gate.open = () => resolve('a1'))).finally(() => events.push('a1 done')));
    const failing = q.run('a', async () => {
      events.push('a2 start');
      throw new Error('a2 failed');
    });
    const third = q.run('a', async () => (events.push('a3 start'), 'a3'));
    const other = q.run('b', async () => (events.push('b1 start'), 'b1'));
    await tick();
    expect(events).toEqual(['b1 start']);
    gate.open?.();
    expect(await first).toBe('a1');
    await expect(failing).rejects.toThrow('a2 failed');
    expect(await third).toBe('a3');
    expect(await other).toBe('b1');
    expect(events).toEqual(['b1 start', 'a1 done', 'a2 start', 'a3 start']);
    await tick();
    expect((q as unknown as { tails: Map<string, unknown> }).tails.size).toBe(0);
  });

  it('keeps a key while a later task of it waits, so a task queued then still waits its turn', async () => {
    const q = new PerKeyQueue();
    const tails = (q as unknown as { tails: Map<string, unknown> }).tails;
    const release: Array<() => void> = [];
    const events: string[] = [];
    const gated = (name: string) => () => new Promise<void>((r) => release.push(r)).then(() => void events.push(name));
    const first = q.run('k', gated('first'));
    const second = q.run('k', gated('second'));
    await tick();
    release[0]?.();
    await first;
    await tick();
    // The first task's tail ended, but the key's tail is the second's, still running.
    expect(tails.size).toBe(1);
    const third = q.run('k', async () => void events.push('third'));
    await tick();
    expect(events).toEqual(['first']);
    release[1]?.();
    await Promise.all([second, third]);
    expect(events).toEqual(['first', 'second', 'third']);
  });
});

describe('contended', () => {
  const failing = (errors: unknown[]) => {
    let calls = 0;
    return {
      calls: () => calls,
      run: async () => {
        const e = errors[calls++];
        if (e !== undefined) throw e;
        return 'done';
      },
    };
  };

  it('runs a transaction again after ABORTED or a transaction the server closed, until it commits', async () => {
    const t = failing([
      Object.assign(new Error('aborted'), { code: 10 }),
      Object.assign(new Error('Transaction is invalid or closed'), { code: 3 }),
      Object.assign(new Error('The transaction has expired'), { code: 3 }),
    ]);
    expect(await contended(t.run)).toBe('done');
    expect(t.calls()).toBe(4);
  });

  it('gives up after the attempts with a 503 the client may retry in a second', async () => {
    const t = failing(Array.from({ length: 10 }, () => Object.assign(new Error('aborted'), { code: 10 })));
    const err = await contended(t.run, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ retryAfterSeconds: 1, message: 'Too many changes to the same records at once; try again' });
    expect(t.calls()).toBe(3);
    const defaults = failing(Array.from({ length: 10 }, () => Object.assign(new Error('aborted'), { code: 10 })));
    await expect(contended(defaults.run)).rejects.toBeInstanceOf(UnavailableError);
    expect(defaults.calls()).toBe(6);
  });

  it('passes any other error on at once: another INVALID_ARGUMENT, another code, a plain error', async () => {
    for (const e of [Object.assign(new Error('bad field'), { code: 3 }), Object.assign(new Error('Transaction is invalid or closed'), { code: 5 }), new Error('boom')]) {
      const t = failing([e]);
      await expect(contended(t.run)).rejects.toBe(e);
      expect(t.calls()).toBe(1);
    }
  });
});

describe('the API-facing transactions under contention past the client’s retries', () => {
  // A Firestore whose every transaction ends ABORTED (code 10), as the client reports contention it gave up on.
  const aborting = { runTransaction: async () => Promise.reject(Object.assign(new Error('10 ABORTED: too much contention'), { code: 10 })), doc: () => ({}), collection: () => ({ doc: () => ({}) }) } as unknown as Firestore;

  it('answer 503 (UnavailableError), not a server fault: the consent claim and the grant-state compare-and-set', async () => {
    const claim = await new FirestoreConsentStateStore(aborting).claim('k'.repeat(43), 'u1', 0).catch((e: unknown) => e);
    expect(claim).toBeInstanceOf(UnavailableError);
    const grantState = await new FirestoreExportStore(aborting).setGrantState('u1', 'ACTIVE', 'NEEDS_CONSENT').catch((e: unknown) => e);
    expect(grantState).toBeInstanceOf(UnavailableError);
  });
});
