/**
 * Erasure of a person on request (DELETE /v1/me), through the public API on the local stack: every
 * Firestore collection and the whole bucket are scanned afterwards for anything of that person
 * (the user id, its hash, its object prefix) but the tombstone. Also: a crash after each step with
 * redelivery, a lost task the sweeper sends again, the races of the issue, and bad input.
 */
import { Firestore, type DocumentReference } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { erasureTaskIdFor } from '../../functions/src/adapters/cloud-tasks-queue';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import type { ErasureStep } from '../../functions/src/domain/erasure';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { quotaUserOf } from '../../functions/src/pipeline/access-tokens';
import { api, authorizedUser, consentAtGoogle, objectNames, startConsent, waitForExport, type ExportBody } from '../support/api-client';

const PROJECT = 'demo-e2e-erasure';
let stack: LocalStack;
let db: Firestore;

/** userKey -> the step after which the erasure crashes once (the seam of composition-root). */
const crashAfter = new Map<string, ErasureStep>();
const crashed = new Set<string>();

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 200,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'error',
    logDestination: { write: (line: string) => (/request failed|erasure step failed/.test(line) && !line.includes('injected crash') ? process.stderr.write(line) : true) },
    // A short copy lease: an erasure during a copy waits for it to pass before deleting objects.
    env: { MAX_EXPORTS_PER_DAY: '20', MAX_CONCURRENT_EXPORTS: '10', COPY_LEASE_SECONDS: '8', COPY_SLICE_SECONDS: '6' },
    overrides: {
      afterErasureStep: async (step, userKey) => {
        if (crashAfter.get(userKey) !== step || crashed.has(userKey)) return;
        crashed.add(userKey);
        throw new Error(`injected crash after ${step}`);
      },
    },
  });
  db = new Firestore({ projectId: PROJECT });
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

interface ErasureBody {
  state: 'RUNNING' | 'DONE';
  requestedAt: string;
  finishedAt?: string;
  removed: Record<string, number>;
}

async function allDocuments(parent: Firestore | DocumentReference = db): Promise<Array<{ path: string; text: string }>> {
  const out: Array<{ path: string; text: string }> = [];
  for (const c of await parent.listCollections()) {
    for (const ref of await c.listDocuments()) {
      const snap = await ref.get();
      if (snap.exists) out.push({ path: ref.path, text: JSON.stringify(snap.data()) });
      out.push(...(await allDocuments(ref)));
    }
  }
  return out;
}

/** Every document (any collection, any depth) and object naming the user, its hash or its prefix; the tombstone aside. */
async function traces(userId: string): Promise<{ docs: string[]; objects: string[] }> {
  const key = userDocId(userId);
  const tombstone = `erasures/${key}`;
  // The audit trail outlives the data (AUDIT_RETENTION_DAYS): pseudonymous, it may hold the hash, never the id.
  const trail = (path: string): boolean => /^audit(Entries|Heads|Pending)\//.test(path);
  const docs = (await allDocuments())
    .filter((d) => d.path !== tombstone && (trail(d.path) ? [userId, `${userId}/`] : [userId, key]).some((n) => d.path.includes(n) || d.text.includes(n)))
    .map((d) => d.path);
  return { docs, objects: (await objectNames(stack)).filter((n) => n.startsWith(`${userId}/`) || n.includes(key)) };
}

async function erase(token: string): Promise<ErasureBody> {
  const res = await api<ErasureBody>(stack, token, 'DELETE', '/v1/me');
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.headers.get('location')).toBe('/v1/me/erasure');
  return res.body;
}

async function waitErased(token: string, timeoutMs = 90_000): Promise<ErasureBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api<ErasureBody>(stack, token, 'GET', '/v1/me/erasure');
    expect(res.status).toBe(200);
    if (res.body.state === 'DONE') return res.body;
    if (Date.now() > deadline) throw new Error(`erasure still RUNNING after ${timeoutMs} ms: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The tombstone as stored: hashed id, times, counts, nothing else. */
async function expectTombstoneOnly(userId: string): Promise<void> {
  const snap = await db.doc(`erasures/${userDocId(userId)}`).get();
  const data = snap.data() as Record<string, unknown>;
  expect(Object.keys(data).sort()).toEqual(['finishedAt', 'removed', 'requestedAt', 'run', 'state', 'step', 'updatedAt']);
  expect(JSON.stringify(data)).not.toContain(userId);
  expect(await traces(userId)).toEqual({ docs: [], objects: [] });
}

/** What another user has, to compare before and after. */
async function holdings(userId: string): Promise<{ docs: string[]; objects: string[] }> {
  const key = userDocId(userId);
  const docs = (await allDocuments()).filter((d) => d.path.includes(key) || d.text.includes(`"${userId}"`)).map((d) => d.path).sort();
  return { docs, objects: (await objectNames(stack)).filter((n) => n.startsWith(`${userId}/`)) };
}

const statuses = (answers: Array<{ status: number }>): number[] => answers.map((a) => a.status);

describe('erasure of a person', () => {
  it('erases a user with exports running, copying, succeeded and scheduled: nothing of them stays but the tombstone; another user is untouched', async () => {
    const [A, B, C, D] = ['maps.reviews', 'chrome.reading_list', 'chrome.history', 'myactivity.youtube'] as const;
    const { token } = await authorizedUser(stack, 'erase-ann', [A, B, C, D], { accessType: 'TIME_BASED' });
    const { token: other } = await authorizedUser(stack, 'keep-bob', [C]);
    const kept = await api<ExportBody>(stack, other, 'POST', '/v1/exports', { resources: [C] }, { 'Idempotency-Key': 'bob-1' });
    expect((await waitForExport(stack, other, kept.body.exportId)).state).toBe('SUCCEEDED');

    const succeeded = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: [C] }, { 'Idempotency-Key': 'ann-1' });
    expect((await waitForExport(stack, token, succeeded.body.exportId)).state).toBe('SUCCEEDED');
    expect((await objectNames(stack, 'erase-ann/')).length).toBeGreaterThan(0);
    stack.portability.faults.jobDuration(A, 600_000);
    const running = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: [A] });
    await waitForExport(stack, token, running.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    stack.portability.faults.urlsPerJob(B, 2);
    stack.portability.faults.throttleDownloads(B, 4096);
    const copying = await api<ExportBody>(stack, token, 'POST', '/v1/exports', { resources: [B] });
    await waitForExport(stack, token, copying.body.exportId, (e) => (e.jobs[0]?.bytesCopied ?? 0) > 0, 30_000);
    const scheduled = await api<{ scheduleId: string }>(stack, token, 'POST', '/v1/schedules', { resources: [D] });
    expect(scheduled.status).toBe(201);
    const bobBefore = await holdings('keep-bob');

    const asked = await erase(token);
    expect(asked.state).toBe('RUNNING');
    const done = await waitErased(token);
    expect(done.finishedAt).toBeDefined();
    expect(done.removed).toMatchObject({ exports: expect.any(Number), jobs: expect.any(Number), objects: expect.any(Number), grants: 1, ledgers: 1, schedules: 1, googleAuthorizations: 1 });
    expect(done.removed.exports).toBeGreaterThanOrEqual(3);
    expect(done.removed.idempotency).toBeGreaterThanOrEqual(1);
    expect(done.removed.consentStates).toBeGreaterThanOrEqual(1);
    await expectTombstoneOnly('erase-ann');

    // What was in flight (the copy, the long job's checks, the schedule's run) settles, and writes nothing back.
    stack.portability.faults.throttleDownloads(B, undefined);
    await stack.tasks.idle();
    await expectTombstoneOnly('erase-ann');
    expect(await holdings('keep-bob')).toEqual(bobBefore);
    expect((await api(stack, other, 'GET', `/v1/exports/${kept.body.exportId}`)).status).toBe(200);
    expect((await api<{ exports: unknown[] }>(stack, token, 'GET', '/v1/exports')).body.exports).toEqual([]);
    // The audit trail outlives the data: its newest entry is the erasure, with the counts, and the chain holds.
    const trail = await api<{ entries: Array<{ kind: string; details: { removed?: Record<string, number> } }> }>(stack, token, 'GET', '/v1/audit');
    expect(trail.body.entries[0]).toMatchObject({ kind: 'user.erased', details: { removed: { grants: 1, schedules: 1 } } });
    expect(trail.body.entries.filter((e) => e.kind === 'user.erased')).toHaveLength(1);
    expect((await api<{ ok: boolean }>(stack, token, 'GET', '/v1/audit:verify')).body.ok).toBe(true);
  }, 240_000);

  it('crashed after any step, the erasure resumes on redelivery and ends the same way', async () => {
    const steps: ErasureStep[] = ['reset-google', 'stop-schedules', 'end-jobs', 'wait-leases', 'delete-objects', 'delete:jobs', 'delete:exports', 'delete:outbox', 'delete:grants', 'delete:ledgers'];
    await Promise.all(
      steps.map(async (step, i) => {
        const userId = `erase-crash-${i}`;
        crashAfter.set(userDocId(userId), step);
        const { token } = await authorizedUser(stack, userId, ['chrome.bookmarks']);
        const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {}, { 'Idempotency-Key': `k-${i}` });
        expect((await waitForExport(stack, token, started.body.exportId)).state).toBe('SUCCEEDED');
        await erase(token);
        const done = await waitErased(token);
        expect(crashed.has(userDocId(userId)), step).toBe(true);
        // Counted once although the step ran twice.
        expect(done.removed, step).toMatchObject({ exports: 1, jobs: 1, idempotency: 1, grants: 1, ledgers: 1, objects: 1 });
        await expectTombstoneOnly(userId);
      }),
    );
  }, 240_000);

  it('a lost erasure task is sent again by the sweeper', async () => {
    const userId = 'erase-lost';
    const { token } = await authorizedUser(stack, userId, ['chrome.autofill']);
    const started = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    await waitForExport(stack, token, started.body.exportId);
    const first = erasureTaskIdFor({ userKey: userDocId(userId), run: 1 });
    let lost = 0;
    stack.tasks.setDispatchFault((t) => (t.name.endsWith(`/${first}`) && lost++ === 0 ? 'drop' : undefined));
    try {
      await erase(token);
      await expect.poll(() => lost, { timeout: 10_000 }).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 1000));
      expect((await api<ErasureBody>(stack, token, 'GET', '/v1/me/erasure')).body.state).toBe('RUNNING');
      // Past the sweep grace period (3 s on the local stack).
      await expect.poll(async () => (await stack.sweep() as { erasures?: number }).erasures, { timeout: 20_000, interval: 1000 }).toBe(1);
      await waitErased(token);
      await expectTombstoneOnly(userId);
    } finally {
      stack.tasks.setDispatchFault(undefined);
    }
  }, 120_000);
});

describe('erasure under concurrency', () => {
  it('two DELETEs at once: one erasure, one tombstone, the same answer to both', async () => {
    const userId = 'erase-twice';
    const { token } = await authorizedUser(stack, userId, ['youtube.channel']);
    const answers = await Promise.all([1, 2, 3].map(() => api<ErasureBody>(stack, token, 'DELETE', '/v1/me')));
    expect(statuses(answers)).toEqual([202, 202, 202]);
    expect(new Set(answers.map((a) => a.body.requestedAt)).size).toBe(1);
    await waitErased(token);
    expect((await db.doc(`erasures/${userDocId(userId)}`).get()).get('run')).toBe(1);
    await expectTombstoneOnly(userId);
  }, 120_000);

  it('while the erasure runs, exports, schedules and consents of the user are refused 409; nothing is left after', async () => {
    const userId = 'erase-mark';
    const { token } = await authorizedUser(stack, userId, ['youtube.public_playlists', 'youtube.subscriptions'], { accessType: 'TIME_BASED' });
    stack.tasks.pause();
    try {
      await erase(token);
      const refused = await Promise.all([
        api(stack, token, 'POST', '/v1/exports', { resources: ['youtube.public_playlists'] }),
        api(stack, token, 'POST', '/v1/schedules', { resources: ['youtube.subscriptions'] }),
        api(stack, token, 'POST', '/v1/authorizations:start', { resources: ['youtube.public_playlists'], redirectUri: stack.env.OAUTH_REDIRECT_URIS }),
      ]);
      for (const r of refused) expect(r, JSON.stringify(r.body)).toMatchObject({ status: 409, body: { error: { code: 'ERASURE_IN_PROGRESS' } } });
    } finally {
      stack.tasks.resume();
    }
    await waitErased(token);
    await expectTombstoneOnly(userId);
  }, 120_000);

  it('a code exchanged while the erasure runs stores no grant, and the grant Google issued is reset there', async () => {
    const userId = 'erase-code';
    const token = await stack.idToken(userId);
    const started = await startConsent(stack, token, ['youtube.posts']);
    const { code, state } = await consentAtGoogle(started.authorizationUrl, `google-${userId}`);
    stack.tasks.pause();
    try {
      await erase(token);
      const resets = (): number => stack.portability.calls.filter((c) => c.method === 'reset' && c.quotaUser === quotaUserOf(userId)).length;
      const answer = await api(stack, token, 'POST', '/v1/authorizations', { code, state });
      expect(answer).toMatchObject({ status: 409, body: { error: { code: 'ERASURE_IN_PROGRESS' } } });
      expect(resets()).toBe(1);
    } finally {
      stack.tasks.resume();
    }
    await waitErased(token);
    await expectTombstoneOnly(userId);
  }, 120_000);

  it('DELETE in parallel with POST /v1/exports of the same user: whatever got in is erased too, no 5xx', async () => {
    const groups = ['youtube.music', 'youtube.comments', 'youtube.live_chat', 'youtube.private_videos', 'youtube.public_videos'];
    const userId = 'erase-race';
    const { token } = await authorizedUser(stack, userId, groups);
    const answers = await Promise.all([
      api(stack, token, 'DELETE', '/v1/me'),
      ...groups.map((g) => api(stack, token, 'POST', '/v1/exports', { resources: [g] })),
    ]);
    expect(answers[0]?.status).toBe(202);
    for (const a of answers.slice(1)) expect([202, 409], JSON.stringify(a.body)).toContain(a.status);
    await waitErased(token);
    await stack.tasks.idle();
    await expectTombstoneOnly(userId);
  }, 120_000);

  it('DELETE during a schedule run: the run exports nothing that stays', async () => {
    const userId = 'erase-sched';
    const { token } = await authorizedUser(stack, userId, ['myactivity.maps'], { accessType: 'TIME_BASED' });
    stack.tasks.pause();
    try {
      expect((await api(stack, token, 'POST', '/v1/schedules', { resources: ['myactivity.maps'] })).status).toBe(201);
      await erase(token);
    } finally {
      // The run's task and the erasure's are delivered together.
      stack.tasks.resume();
    }
    await waitErased(token);
    await stack.tasks.idle();
    await expectTombstoneOnly(userId);
  }, 120_000);
});

describe('erasure requests with bad input', () => {
  it('a body on DELETE is refused cleanly, never 5xx; another user reads only their own status', async () => {
    const token = await stack.idToken('erase-input');
    const other = await stack.idToken('erase-input-other');
    expect((await api(stack, token, 'DELETE', '/v1/me', { confirm: true })).body).toMatchObject({ error: { code: 'INVALID_ARGUMENT', field: 'confirm' } });
    expect((await api(stack, token, 'DELETE', '/v1/me', '{nope', { 'Content-Type': 'application/json' })).status).toBe(400);
    expect((await api(stack, token, 'DELETE', '/v1/me', 'x', { 'Content-Type': 'text/plain' })).status).toBe(415);
    expect((await api(stack, undefined, 'DELETE', '/v1/me')).status).toBe(401);
    expect((await api(stack, token, 'PUT', '/v1/me')).status).toBe(405);
    expect((await api(stack, token, 'GET', '/v1/me/erasure?user=erase-input-other')).status).toBe(400);
    // Nothing was marked by the refusals.
    expect((await api(stack, token, 'GET', '/v1/me/erasure')).status).toBe(404);

    await erase(token);
    await waitErased(token);
    expect((await api(stack, other, 'GET', '/v1/me/erasure')).body).toMatchObject({ error: { code: 'NOT_FOUND' } });
    // An empty JSON object is the same request as none.
    const again = await api<ErasureBody>(stack, token, 'DELETE', '/v1/me', {});
    expect(again.status).toBe(202);
    await waitErased(token);
  });
});
