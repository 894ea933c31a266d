/**
 * The erasure worker's steps on the Firestore emulator and the Cloud Storage stand-in: it removes
 * the person's records and objects (and nobody else's, not even a user whose id starts with
 * theirs), resets the grant at Google once it is stored, leaves a pseudonymous entry in the audit
 * trail, and ends the same way when a delivery dies after any step and is delivered again.
 * Google's answers to authorization.reset are simulated (the API is the one thing the tests fake).
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageArchiveBucket } from '../../functions/src/adapters/cloud-storage-archive-bucket';
import { ERASURE_COLLECTIONS } from '../../functions/src/adapters/erasure-collections';
import { FirestoreAuditTrail } from '../../functions/src/adapters/firestore-audit-trail';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreErasureStore } from '../../functions/src/adapters/firestore-erasure-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { erasureSteps, type ErasureStep } from '../../functions/src/domain/erasure';
import { ConsentRevokedError, PortabilityApiError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Grant, Job } from '../../functions/src/domain/model';
import type { PortabilityApi } from '../../functions/src/domain/ports/portability-api';
import type { ErasureTask } from '../../functions/src/domain/ports/task-queues';
import { createLogger } from '../../functions/src/logging';
import { AuditTrail } from '../../functions/src/pipeline/audit-trail';
import { ErasureWorker, leaseEnd } from '../../functions/src/pipeline/erasure-worker';
import { JobTransitions } from '../../functions/src/pipeline/job-transitions';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';

const BUCKET = 'erasure-steps';
const T0 = Date.UTC(2100, 0, 1);
const COLLECTIONS = ERASURE_COLLECTIONS.map((c) => c.collection);
const STEPS = erasureSteps(COLLECTIONS);

let db: Firestore;
let gcs: GcsServer;
let storage: Storage;
let store: FirestoreExportStore;
let erasures: FirestoreErasureStore;
let audit: AuditTrail;

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-erasure-steps' });
  store = new FirestoreExportStore(db);
  erasures = new FirestoreErasureStore(db, { audit: { keepDays: 400 } });
  audit = new AuditTrail({ store: new FirestoreAuditTrail(db, 400), logger: createLogger({ level: 'silent' }) });
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-erasure-steps' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  await gcs?.stop();
  await db?.terminate();
});

const newUser = (): string => `es-${randomBytes(5).toString('hex')}`;

const grantOf = (userId: string): Grant => ({
  userId,
  refreshToken: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' },
  resources: ['myactivity.search'],
  oneTimeResources: ['myactivity.search'],
  timeBasedResources: [],
  state: 'ACTIVE',
  createdAt: T0,
  updatedAt: T0,
});

/** A grant, an export with a live job, and two archive objects. */
async function seed(userId: string, job: Partial<Job> = {}): Promise<Job> {
  await store.putGrant(grantOf(userId));
  const exportId = randomBytes(10).toString('hex');
  const resource = job.resource ?? 'myactivity.search';
  const j: Job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource }, T0), state: 'WAITING', seq: 2, archiveJobId: 'g', archiveJobIds: ['g'], ...job };
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: [resource], createdAt: T0, updatedAt: T0 }, [j], undefined, {});
  for (const name of ['a.zip', 'b.zip']) await storage.bucket(BUCKET).file(`${userId}/${exportId}/${resource}/${name}`).save('zip');
  return j;
}

const objectsOf = async (prefix: string): Promise<string[]> => (await storage.bucket(BUCKET).getFiles({ prefix }))[0].map((f) => f.name);

interface Harness {
  worker: ErasureWorker;
  clock: { t: number };
  resets: Array<{ token: string; quotaUser: string }>;
  forgotten: string[];
  queued: ErasureTask[];
  logs: string[];
}

function harness(opts: { reset?: (token: string) => Promise<void>; forUser?: (userId: string) => Promise<string>; afterStep?: (step: ErasureStep, userKey: string) => Promise<void>; erasures?: FirestoreErasureStore } = {}): Harness {
  const clock = { t: T0 + 1000 };
  const resets: Harness['resets'] = [];
  const forgotten: string[] = [];
  const queued: ErasureTask[] = [];
  const logs: string[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => (logs.push(s), true) } });
  const api = {
    resetAuthorization: async (token: string, quotaUser: string) => {
      resets.push({ token, quotaUser });
      await opts.reset?.(token);
    },
  } as unknown as PortabilityApi;
  const worker = new ErasureWorker({
    erasures: opts.erasures ?? erasures,
    store,
    jobs: new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy: { initialSeconds: 300, maxSeconds: 3600 }, logger, now: () => clock.t }),
    api: async () => api,
    tokens: { forUser: opts.forUser ?? (async (userId) => `token-of-${userId}`), forget: (userId) => void forgotten.push(userId) },
    bucket: async () => new CloudStorageArchiveBucket(storage, BUCKET),
    queue: async () => ({ enqueueErasure: async (t) => void queued.push(t) }),
    collections: COLLECTIONS,
    logger,
    now: () => clock.t,
    audit,
    ...(opts.afterStep ? { afterStep: opts.afterStep } : {}),
  });
  return { worker, clock, resets, forgotten, queued, logs };
}

const logsOf = (h: Harness, message: string): Array<Record<string, unknown>> => h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message === message);

async function begin(userId: string, at = T0 + 1000): Promise<{ userKey: string; run: number }> {
  const { record } = await erasures.begin(userId, at, at);
  return { userKey: userDocId(userId), run: record.run };
}

const ALL_REMOVED = { googleAuthorizations: 1, objects: 2, jobs: 1, exports: 1, grants: 1, ledgers: 1 };

describe('the erasure worker', () => {
  it('removes the person\'s grant, records and objects, resets the grant at Google, and leaves a pseudonymous audit entry', async () => {
    const userId = newUser();
    const neighbour = `${userId}x`;
    const job = await seed(userId);
    const kept = await seed(neighbour);
    const h = harness();
    const task = await begin(userId);

    expect(await h.worker.run(task)).toEqual({ kind: 'done', detail: 'erasure finished' });
    expect(h.resets).toEqual([{ token: `token-of-${userId}`, quotaUser: expect.any(String) }]);
    expect(h.resets[0]?.quotaUser).not.toContain(userId);
    // The token is forgotten after the reset and again when the erasure ends.
    expect(h.forgotten).toEqual([userId, userId]);
    expect(await objectsOf(`${userId}/`)).toEqual([]);
    expect(await store.getGrant(userId)).toBeUndefined();
    expect(await store.getJob(job.id)).toBeUndefined();
    expect(await store.getExport(job.exportId)).toBeUndefined();
    const done = await erasures.get(task.userKey);
    expect(done).toMatchObject({ state: 'DONE', run: 1, step: STEPS.length - 1, removed: ALL_REMOVED });
    expect(done?.userId).toBeUndefined();
    expect(done?.nextCheckAt).toBeUndefined();
    // The trail keeps what was removed, under the hash only.
    const { entries } = await audit.list(userId, { pageSize: 10 });
    expect(entries.map((e) => [e.kind, e.details])).toEqual([['user.erased', { removed: ALL_REMOVED }]]);
    expect(JSON.stringify(entries)).not.toContain(userId);
    expect(logsOf(h, 'erasure finished')).toEqual([expect.objectContaining({ severity: 'INFO', userKey: task.userKey, run: 1 })]);
    expect(JSON.stringify(h.logs)).not.toContain(userId);

    // The user whose id starts with the erased one's keeps everything.
    expect(await objectsOf(`${neighbour}/`)).toHaveLength(2);
    expect(await store.getGrant(neighbour)).toBeDefined();
    expect(await store.getJob(kept.id)).toMatchObject({ state: 'WAITING' });

    // Delivered again, or for another run: nothing left to do.
    expect(await h.worker.run(task)).toEqual({ kind: 'dropped', detail: 'no such erasure running' });
    expect(await h.worker.run({ userKey: userDocId(neighbour), run: 1 })).toEqual({ kind: 'dropped', detail: 'no such erasure running' });
    const other = await begin(neighbour);
    expect(await h.worker.run({ ...other, run: other.run + 1 })).toEqual({ kind: 'dropped', detail: 'no such erasure running' });
    expect(await store.getGrant(neighbour)).toBeDefined();
    expect(h.resets).toHaveLength(1);
  });

  it('ends the same way when a delivery dies after any step and is delivered again', async () => {
    // Every fixed step, and the first and last collection sweep.
    const crashAt = [...STEPS.slice(0, 6), STEPS.at(-2) as ErasureStep];
    const results = await Promise.all(
      crashAt.map(async (crashStep) => {
        const userId = newUser();
        await seed(userId);
        let crashed = false;
        const h = harness({
          afterStep: async (step) => {
            if (step === crashStep && !crashed) {
              crashed = true;
              throw new Error(`instance died after ${step}`);
            }
          },
        });
        const task = await begin(userId);
        const first = await h.worker.run(task).catch((e: unknown) => (e as Error).message);
        // The crashed delivery left the erasure due now, for the sweeper's redelivery.
        const left = await erasures.get(task.userKey);
        const second = await h.worker.run(task);
        const { entries } = await audit.list(userId, { pageSize: 10 });
        return { crashStep, first, leftStep: left?.step, due: left?.nextCheckAt, second, record: await erasures.get(task.userKey), objects: await objectsOf(`${userId}/`), grant: await store.getGrant(userId), audit: entries.map((e) => e.details) };
      }),
    );
    for (const r of results) {
      const i = STEPS.indexOf(r.crashStep);
      expect(r, r.crashStep).toMatchObject({ first: `instance died after ${r.crashStep}`, leftStep: i, due: T0 + 1000, second: { kind: 'done', detail: 'erasure finished' }, record: { state: 'DONE', removed: ALL_REMOVED }, objects: [], grant: undefined });
      expect(r.audit, r.crashStep).toEqual([{ removed: ALL_REMOVED }]);
    }
  });

  it('waits for the longest lease of the jobs it ended, also after a crash right after ending them', async () => {
    const userId = newUser();
    // A copy whose lease runs 90 s, and a Google call whose lease runs 60 s.
    await seed(userId, { state: 'COPYING', nextCheckAt: T0 + 91_000 });
    await seed(userId, { resource: 'chrome.history', state: 'INITIATING', lease: { until: T0 + 61_000 } });
    let crashed = false;
    const h = harness({
      afterStep: async (step) => {
        if (step === 'end-jobs' && !crashed) {
          crashed = true;
          throw new Error('died');
        }
      },
    });
    const task = await begin(userId);
    await expect(h.worker.run(task)).rejects.toThrow('died');
    expect(await erasures.get(task.userKey)).toMatchObject({ holdUntil: T0 + 91_000 });
    // The jobs are already ended: the redelivery finds none live, and still waits for the recorded lease.
    expect(await h.worker.run(task)).toEqual({ kind: 'done', detail: 'waiting for leases to end' });
    expect(h.queued).toEqual([{ ...task, delaySeconds: 90, wake: `w${T0 + 1000}` }]);
    expect(await erasures.get(task.userKey)).toMatchObject({ nextCheckAt: T0 + 91_000 });
    expect(await objectsOf(`${userId}/`)).toHaveLength(4);
    h.clock.t = T0 + 90_500;
    expect(await h.worker.run(task)).toEqual({ kind: 'done', detail: 'waiting for leases to end' });
    expect(h.queued.at(-1)).toEqual({ ...task, delaySeconds: 1, wake: `w${T0 + 90_500}` });
    h.clock.t = T0 + 91_000;
    expect(await h.worker.run(task)).toEqual({ kind: 'done', detail: 'erasure finished' });
    expect(await objectsOf(`${userId}/`)).toEqual([]);
    expect(logsOf(h, 'erasure waits for the leases of ended jobs').map((l) => l.waitSeconds)).toEqual([90, 1]);
    expect(logsOf(h, 'erasure waits for the leases of ended jobs')[0]).toMatchObject({ userKey: task.userKey, run: 1 });
  });

  it('a lease is the Google call\'s, or a copy\'s next check; nothing for a job in neither', () => {
    const job = newJob({ id: 'j', exportId: 'e', userId: 'u', resource: 'myactivity.search' }, T0);
    expect(leaseEnd({ ...job, nextCheckAt: T0 + 5 })).toBe(0);
    expect(leaseEnd({ ...job, state: 'WAITING', nextCheckAt: T0 + 5 })).toBe(0);
    expect(leaseEnd({ ...job, state: 'COPYING', nextCheckAt: T0 + 5 })).toBe(T0 + 5);
    expect(leaseEnd({ ...job, state: 'COPYING', nextCheckAt: T0 + 5, lease: { until: T0 + 9 } })).toBe(T0 + 9);
    expect(leaseEnd({ ...job, state: 'COPYING', nextCheckAt: T0 + 9, lease: { until: T0 + 5 } })).toBe(T0 + 9);
    expect(leaseEnd({ ...job, state: 'COPYING', nextCheckAt: undefined })).toBe(0);
  });

  it('erases our side when Google refuses the reset for good, or the grant is already gone; retries a transient failure', async () => {
    const cases: Array<{ name: string; reset?: () => Promise<void>; forUser?: () => Promise<string>; noGrant?: true; warned: boolean }> = [
      { name: 'revoked', forUser: async () => Promise.reject(new ConsentRevokedError()), warned: false },
      { name: 'unauthenticated', reset: async () => Promise.reject(new PortabilityApiError(401, 'UNAUTHENTICATED', 'expired', 'ACCESS_TOKEN_EXPIRED')), warned: false },
      { name: 'invalid', reset: async () => Promise.reject(new PortabilityApiError(400, 'INVALID_ARGUMENT', 'bad')), warned: true },
      { name: 'no grant', noGrant: true, warned: false },
    ];
    for (const c of cases) {
      const userId = newUser();
      await seed(userId);
      if (c.noGrant) await db.doc(`grants/${userDocId(userId)}`).delete();
      const h = harness({ ...(c.reset ? { reset: c.reset } : {}), ...(c.forUser ? { forUser: c.forUser } : {}) });
      const task = await begin(userId);
      expect(await h.worker.run(task), c.name).toEqual({ kind: 'done', detail: 'erasure finished' });
      const record = await erasures.get(task.userKey);
      expect(record?.removed.googleAuthorizations, c.name).toBeUndefined();
      expect(record?.removed.objects, c.name).toBe(2);
      expect(await objectsOf(`${userId}/`), c.name).toEqual([]);
      expect(logsOf(h, 'authorization.reset refused; erasing our side regardless'), c.name).toEqual(c.warned ? [expect.objectContaining({ severity: 'WARNING', kind: 'invalid' })] : []);
      if (c.noGrant) expect(h.resets, c.name).toEqual([]);
      else expect(h.forgotten[0], c.name).toBe(userId);
    }

    const userId = newUser();
    await seed(userId);
    let fail = true;
    const h = harness({ reset: async () => (fail ? Promise.reject(new PortabilityApiError(503, 'UNAVAILABLE', 'busy')) : undefined) });
    const task = await begin(userId);
    await expect(h.worker.run(task)).rejects.toBeInstanceOf(PortabilityApiError);
    expect(h.forgotten).toEqual([userId]);
    expect(await erasures.get(task.userKey)).toMatchObject({ state: 'RUNNING', step: 0 });
    expect(await store.getGrant(userId)).toBeDefined();
    fail = false;
    expect(await h.worker.run(task)).toEqual({ kind: 'done', detail: 'erasure finished' });
    expect((await erasures.get(task.userKey))?.removed).toEqual(ALL_REMOVED);
  });

  it('parallel deliveries of one erasure end it once', async () => {
    const userId = newUser();
    await seed(userId);
    const task = await begin(userId);
    const outcomes = await Promise.all([harness(), harness(), harness()].map((h) => h.worker.run(task)));
    expect(outcomes.filter((o) => o.detail === 'erasure finished')).toHaveLength(1);
    // The others find it moved on (or finished) under them, and drop their delivery.
    for (const o of outcomes.filter((x) => x.detail !== 'erasure finished')) {
      expect(o.kind).toBe('dropped');
      expect(['another delivery moved the erasure on', 'another delivery finished the erasure', 'no such erasure running']).toContain(o.detail);
    }
    const record = await erasures.get(task.userKey);
    expect(record).toMatchObject({ state: 'DONE', removed: ALL_REMOVED });
    expect(await objectsOf(`${userId}/`)).toEqual([]);
    expect((await audit.list(userId, { pageSize: 10 })).entries).toHaveLength(1);
  });

  it('a delivery that another one overtakes at the last step drops itself', async () => {
    const userId = newUser();
    await seed(userId);
    const task = await begin(userId);
    const other = harness();
    let overtaken = false;
    // The first delivery reaches its finish; before that commits, a second delivery runs it to the end.
    const racing = Object.assign(Object.create(erasures) as FirestoreErasureStore, {
      finish: async (...args: Parameters<FirestoreErasureStore['finish']>) => {
        if (!overtaken) {
          overtaken = true;
          expect(await other.worker.run(task)).toEqual({ kind: 'done', detail: 'erasure finished' });
        }
        return erasures.finish(...args);
      },
    });
    const slow = harness({ erasures: racing });
    expect(await slow.worker.run(task)).toEqual({ kind: 'dropped', detail: 'another delivery finished the erasure' });
    expect(await erasures.get(task.userKey)).toMatchObject({ state: 'DONE', removed: ALL_REMOVED });
    // Only the delivery that finished forgets the token at the end and says so, and writes the trail's entry.
    expect(logsOf(slow, 'erasure finished')).toEqual([]);
    expect(logsOf(other, 'erasure finished')).toHaveLength(1);
    expect((await audit.list(userId, { pageSize: 10 })).entries.map((e) => e.kind)).toEqual(['user.erased']);
  });

  it('a delivery that dies in its finish leaves no entry in the trail, and the redelivery writes the one', async () => {
    const userId = newUser();
    await seed(userId);
    const task = await begin(userId);
    // The finish's transaction never commits: the delivery dies there (a crash, a timeout).
    const dying = Object.assign(Object.create(erasures) as FirestoreErasureStore, { finish: async () => Promise.reject(new Error('instance stopped')) });
    await expect(harness({ erasures: dying }).worker.run(task)).rejects.toThrow('instance stopped');
    expect((await audit.list(userId, { pageSize: 10 })).entries).toEqual([]);
    expect(await harness().worker.run(task)).toEqual({ kind: 'done', detail: 'erasure finished' });
    const { entries } = await audit.list(userId, { pageSize: 10 });
    expect(entries.map((e) => e.kind)).toEqual(['user.erased']);
    expect(entries[0]?.details).toEqual({ removed: ALL_REMOVED });
    expect(await audit.verify(userId)).toEqual({ ok: true, entries: 1 });
  });
});
