/**
 * DELETE /v1/me and GET /v1/me/erasure behind the handler, on the Firestore emulator: a request
 * marks the erasure and enqueues its work (again when joining the one running, so a lost first
 * enqueue is repaired); a failed enqueue leaves it due for the sweeper and still answers; parallel
 * requests start one run; the status is the caller's own, 404 before any request.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreErasureStore } from '../../functions/src/adapters/firestore-erasure-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { RequestError } from '../../functions/src/domain/errors';
import type { ErasureTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { ErasureService } from '../../functions/src/pipeline/erasure-service';

const T0 = Date.UTC(2100, 0, 1);
let db: Firestore;
let erasures: FirestoreErasureStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-erasure-service' });
  erasures = new FirestoreErasureStore(db);
});

afterAll(async () => {
  await db?.terminate();
});

function service(opts: { failEnqueue?: boolean } = {}) {
  const queued: ErasureTask[] = [];
  const logs: Array<{ message?: string; userKey?: string; run?: number }> = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => (logs.push(JSON.parse(s) as (typeof logs)[number]), true) } });
  const queue = { enqueueErasure: async (t: ErasureTask) => (opts.failEnqueue ? Promise.reject(new Error('UNAVAILABLE')) : void queued.push(t)) };
  const s = new ErasureService({ erasures, queue: async () => queue, userKey: userDocId, logger, now: () => T0 });
  return { s, queued, logs };
}

const newUser = (): string => `erase-${randomBytes(5).toString('hex')}`;

describe('the erasure service', () => {
  it('marks the erasure, enqueues it at once, and enqueues it again when a second request joins it', async () => {
    const userId = newUser();
    const { s, queued, logs } = service();
    const view = await s.request(userId);
    expect(view).toEqual({ state: 'RUNNING', requestedAt: new Date(T0).toISOString(), removed: {} });
    expect(queued).toEqual([{ userKey: userDocId(userId), run: 1, delaySeconds: 0 }]);
    expect(logs.filter((l) => l.message === 'erasure requested')).toMatchObject([{ userKey: userDocId(userId), run: 1 }]);
    expect(JSON.stringify(logs)).not.toContain(userId);

    expect(await s.request(userId)).toEqual(view);
    expect(queued).toEqual([{ userKey: userDocId(userId), run: 1, delaySeconds: 0 }, { userKey: userDocId(userId), run: 1, delaySeconds: 0 }]);
    // Joined, not started: told once.
    expect(logs.filter((l) => l.message === 'erasure requested')).toHaveLength(1);
    expect(await s.status(userId)).toEqual(view);
  });

  it('answers when the enqueue fails: the erasure is marked and due now, for the sweeper', async () => {
    const userId = newUser();
    const { s, logs } = service({ failEnqueue: true });
    expect(await s.request(userId)).toMatchObject({ state: 'RUNNING' });
    expect(await erasures.get(userDocId(userId))).toMatchObject({ state: 'RUNNING', run: 1, nextCheckAt: T0 });
    expect(logs.map((l) => l.message)).toEqual(['could not enqueue the erasure; the sweeper will', 'erasure requested']);
    // The operator sees whose erasure (by key) and why.
    expect(logs[0]).toMatchObject({ userKey: userDocId(userId) });
    expect(JSON.stringify(logs[0])).toContain('UNAVAILABLE');
  });

  it('parallel requests start one run', async () => {
    const userId = newUser();
    const { s, queued, logs } = service();
    const views = await Promise.all(Array.from({ length: 5 }, () => s.request(userId)));
    expect(new Set(views.map((v) => JSON.stringify(v))).size).toBe(1);
    expect(new Set(queued.map((t) => t.run))).toEqual(new Set([1]));
    expect(logs.filter((l) => l.message === 'erasure requested')).toHaveLength(1);
  });

  it("says 404 before any request, and only ever reads the caller's own erasure", async () => {
    const userId = newUser();
    const { s } = service();
    const err = await s.status(userId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ status: 404, code: 'NOT_FOUND', message: 'Erasure not found' });
    await s.request(newUser());
    await expect(s.status(userId)).rejects.toMatchObject({ status: 404 });
  });
});
