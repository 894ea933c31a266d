/**
 * The erasure store on the Firestore emulator: a running erasure is joined, a finished one with
 * nothing new is joined too, a sweep counts each document once however often it runs, the
 * tombstone keeps no user id, and the sweeper sends again an erasure whose delivery is overdue.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { Firestore } from '@google-cloud/firestore';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreErasureStore } from '../../functions/src/adapters/firestore-erasure-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { paths, userDocId } from '../../functions/src/adapters/firestore-paths';
import type { ErasureTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { Sweeper } from '../../functions/src/pipeline/sweeper';

const T0 = Date.UTC(2100, 0, 1);
let db: Firestore;
let erasures: FirestoreErasureStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-erasure-store' });
  erasures = new FirestoreErasureStore(db);
});

describe('the erasure store', () => {
  it('joins a running erasure, and a finished one while the user has nothing new; a new record starts the next run', async () => {
    const userId = 'es-join';
    const first = await erasures.begin(userId, T0, T0);
    expect(first).toMatchObject({ started: true, record: { state: 'RUNNING', run: 1, step: 0 } });
    expect(await erasures.begin(userId, T0 + 5, T0 + 5)).toMatchObject({ started: false, record: { run: 1, requestedAt: T0 } });
    expect(await erasures.finish(userDocId(userId), 1, 0, T0 + 10)).toBe(true);
    expect(await erasures.begin(userId, T0 + 20, T0 + 20)).toMatchObject({ started: false, record: { state: 'DONE', run: 1 } });
    await db.doc(paths.ledger(userId)).set({ userId });
    expect(await erasures.begin(userId, T0 + 30, T0 + 30)).toMatchObject({ started: true, record: { state: 'RUNNING', run: 2 } });
  });

  it('counts each deleted document once when a sweep runs twice or twice at once, and the tombstone holds no user id', async () => {
    const userId = 'es-count';
    await erasures.begin(userId, T0, T0);
    for (let i = 0; i < 5; i++) await db.doc(`exports/es-count-${i}`).set({ id: `es-count-${i}`, userId });
    await db.doc('exports/es-other').set({ id: 'es-other', userId: 'es-other-user' });
    const counts = await Promise.all([erasures.deleteRecords('exports', userId, 1), erasures.deleteRecords('exports', userId, 1)]);
    expect(counts[0] + counts[1]).toBe(5);
    expect(await erasures.deleteRecords('exports', userId, 1)).toBe(0);
    expect((await erasures.get(userDocId(userId)))?.removed).toEqual({ exports: 5 });
    expect((await db.doc('exports/es-other').get()).exists).toBe(true);
    expect(await erasures.finish(userDocId(userId), 1, 0, T0 + 1)).toBe(true);
    const tombstone = (await db.doc(`erasures/${userDocId(userId)}`).get()).data();
    expect(JSON.stringify(tombstone)).not.toContain(userId);
    expect(tombstone).not.toHaveProperty('nextCheckAt');
  });

  it('refuses a grant, and so an export, of a user whose erasure runs', async () => {
    const userId = 'es-refuse';
    await erasures.begin(userId, T0, T0);
    const grant = { userId, refreshToken: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' }, resources: [], oneTimeResources: [], timeBasedResources: [], state: 'ACTIVE' as const, createdAt: T0, updatedAt: T0 };
    await expect(new FirestoreExportStore(db).putGrant(grant)).rejects.toMatchObject({ status: 409, code: 'ERASURE_IN_PROGRESS' });
    expect((await db.doc(paths.grant(userId)).get()).exists).toBe(false);
  });
});

describe('the sweeper and erasures', () => {
  it('re-enqueues a RUNNING erasure overdue by more than the grace period, once per window; not a finished one', async () => {
    const own = new FirestoreErasureStore(createFirestore({ projectId: 'demo-erasure-sweep' }));
    await own.begin('es-lost', T0, T0);
    await own.begin('es-done', T0, T0);
    await own.finish(userDocId('es-done'), 1, 0, T0);
    const queued: ErasureTask[] = [];
    const sweeperAt = (t: number): Sweeper =>
      new Sweeper({
        store: new FirestoreExportStore(createFirestore({ projectId: 'demo-erasure-sweep' })),
        queue: { enqueue: async () => undefined },
        policy: { initialSeconds: 300, maxSeconds: 3600 },
        graceSeconds: 60,
        logger: createLogger({ level: 'silent' }),
        now: () => t,
        erasures: { store: own, queue: { enqueueErasure: async (task) => void queued.push(task) } },
      });
    expect((await sweeperAt(T0 + 30_000).sweep()).erasures).toBe(0);
    expect((await sweeperAt(T0 + 61_000).sweep()).erasures).toBe(1);
    expect(queued).toEqual([{ userKey: userDocId('es-lost'), run: 1, delaySeconds: 0, wake: `r${Math.floor((T0 + 61_000) / 60_000)}` }]);
    // Pushed a grace period on: the next sweep in the window leaves it to that delivery.
    expect((await sweeperAt(T0 + 62_000).sweep()).erasures).toBe(0);
  });
});
