/**
 * The audit trail on the Firestore emulator: drafts written blind in the transactions of the
 * changes they describe (no extra read in a job's transaction), chained per user by the sealer
 * after the commit and by the sweeper, in order and exactly once under parallel ends and
 * parallel sealers; the chain check names the first entry an edit or a removal broke; the trail
 * is the caller's own, newest first, page by page.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AUDIT_COLLECTIONS, FirestoreAuditTrail } from '../../functions/src/adapters/firestore-audit-trail';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { GENESIS_HASH } from '../../functions/src/domain/audit';
import { consentGranted, userErased } from '../../functions/src/domain/audit-drafts';
import { RequestError } from '../../functions/src/domain/errors';
import { newJob } from '../../functions/src/domain/job';
import type { Job, JobState } from '../../functions/src/domain/model';
import { RESOURCE_GROUPS } from '../../functions/src/domain/resource-groups';
import { createLogger } from '../../functions/src/logging';
import { AuditTrail, decodeAuditPageToken, encodeAuditPageToken } from '../../functions/src/pipeline/audit-trail';
import { countingFirestore, type FirestoreOpCounts } from '../../bench/firestore-op-counter';

const projectId = 'demo-audit-trail';
const KEEP_DAYS = 400;
let db: Firestore;
let counts: FirestoreOpCounts;
let store: FirestoreExportStore;
let trailStore: FirestoreAuditTrail;
let trail: AuditTrail;

beforeAll(() => {
  const host = inject('firestoreEmulatorHost');
  process.env.FIRESTORE_EMULATOR_HOST = host;
  ({ db, counts } = countingFirestore(projectId, host));
  store = new FirestoreExportStore(db, { audit: { keepDays: KEEP_DAYS }, recordDays: 90 });
  trailStore = new FirestoreAuditTrail(db, KEEP_DAYS);
  trail = new AuditTrail({ store: trailStore, logger: createLogger({ level: 'silent' }) });
});

afterAll(async () => {
  await db?.terminate();
});

const newUser = (): string => `audit-${randomBytes(6).toString('hex')}`;

async function exportOf(userId: string, n: number): Promise<{ exportId: string; jobs: Job[] }> {
  const exportId = randomBytes(10).toString('hex');
  const now = Date.now();
  const jobs = RESOURCE_GROUPS.slice(0, n).map((resource) => ({ ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource }, now), state: 'COPYING' as const, seq: 3 }));
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: jobs.map((j) => j.resource), createdAt: now, updatedAt: now }, jobs);
  return { exportId, jobs };
}

const archive = (j: Job) => ({ bucket: 'b', name: `${j.userId}/${j.exportId}/${j.resource}/archive-1-of-1.zip`, size: 42, crc32c: 'AAAAAA==', md5Hash: 'md5==' });

const end = (j: Job, state: JobState) =>
  store.updateJob(j.id, (cur) =>
    cur.state === 'COPYING' ? { ...cur, state, seq: cur.seq + 1, updatedAt: Date.now(), finishedAt: Date.now(), nextCheckAt: undefined, archives: state === 'SUCCEEDED' ? [archive(cur)] : [] } : undefined,
  );

const pendingOf = async (userId: string): Promise<number> => (await db.collection(AUDIT_COLLECTIONS.pending).where('userKey', '==', userDocId(userId)).get()).size;

describe('the audit trail', () => {
  it('records an export from start to finish, with the archives copied, chained from the genesis hash', async () => {
    const userId = newUser();
    const { exportId, jobs } = await exportOf(userId, 2);
    const [a, b] = jobs as [Job, Job];
    await end(a, 'SUCCEEDED');
    const last = await end(b, 'FAILED');
    expect(last?.audited).toBe(true);
    expect(await pendingOf(userId)).toBe(3);
    expect(await trailStore.seal(userDocId(userId))).toBe(3);
    expect(await pendingOf(userId)).toBe(0);

    const page = await trail.list(userId, { pageSize: 10 });
    expect(page.entries.map((e) => [e.seq, e.kind])).toEqual([
      [3, 'export.finished'],
      [2, 'archives.copied'],
      [1, 'export.started'],
    ]);
    expect(page.entries[2]?.prevHash).toBe(GENESIS_HASH);
    expect(page.entries[0]?.details).toEqual({ exportId, state: 'PARTIAL' });
    // Archives are named inside the user's prefix: no user id in the trail, and no URL or token.
    expect(page.entries[1]?.details).toEqual({ exportId, jobId: a.id, resource: a.resource, archives: [{ name: `${exportId}/${a.resource}/archive-1-of-1.zip`, size: 42, crc32c: 'AAAAAA==', md5: 'md5==' }] });
    expect(JSON.stringify(page)).not.toContain(userId);
    expect(await trail.verify(userId)).toEqual({ ok: true, entries: 3 });
    // Each entry expires with the trail (TTL on expireAt), the ended job with the records.
    const [entry] = (await db.collection(AUDIT_COLLECTIONS.entries).where('userKey', '==', userDocId(userId)).limit(1).get()).docs;
    expect(entry?.get('expireAt')).toBeDefined();
    const jobDoc = await db.doc(`jobs/${a.id}`).get();
    expect(jobDoc.get('expireAt').toMillis()).toBe(jobDoc.get('finishedAt') + 90 * 86_400_000);
    const exportDoc = await db.doc(`exports/${exportId}`).get();
    expect(exportDoc.get('expireAt').toMillis()).toBe(exportDoc.get('updatedAt') + 90 * 86_400_000);
    // A running export has no expiry yet.
    const running = await exportOf(userId, 1);
    expect((await db.doc(`exports/${running.exportId}`).get()).get('expireAt')).toBeUndefined();
  });

  it('adds no read to the transaction of a job that ends: the drafts are written blind', async () => {
    const { jobs } = await exportOf(newUser(), 3);
    const before = counts.reads;
    await end(jobs[0] as Job, 'SUCCEEDED');
    // Its transaction reads its own job; the settle after the commit reads the marker and the export.
    expect(counts.reads - before).toBe(3);
  });

  it('seals every fact of a wide export ending at once exactly once, in one chain, with sealers running in parallel', async () => {
    const userId = newUser();
    const { jobs } = await exportOf(userId, 12);
    // Each job's end seals after its commit, while sealers of other instances run at the same time.
    const other = new FirestoreAuditTrail(db, KEEP_DAYS);
    await Promise.all([
      ...jobs.map((j) => end(j, 'SUCCEEDED').then(() => trail.sealAfterCommit(userId))),
      ...[other, trailStore, other].map((s) => s.seal(userDocId(userId)).catch(() => 0)),
    ]);
    // What a contended sealer gave up on is still pending (the sweeper's part): one more seal finishes it.
    await trailStore.seal(userDocId(userId));
    expect(await pendingOf(userId)).toBe(0);
    const { entries } = await trailStore.trail(userDocId(userId));
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(entries.filter((e) => e.kind === 'archives.copied')).toHaveLength(12);
    expect(new Set(entries.map((e) => e.id)).size).toBe(14);
    // The export's end comes after the archives of the job that ended it (one change, one time, in write order).
    const finished = entries.findIndex((e) => e.kind === 'export.finished');
    expect(entries[finished - 1]).toMatchObject({ kind: 'archives.copied', at: entries[finished]?.at });
    expect(await trail.verify(userId)).toEqual({ ok: true, entries: 14 });
  });

  it('names the first broken entry when one is edited, removed, or the newest is dropped', async () => {
    const userId = newUser();
    await store.putGrant({ userId, refreshToken: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' }, resources: ['myactivity.search'], oneTimeResources: [], timeBasedResources: [], state: 'ACTIVE', createdAt: 1, updatedAt: 1 }, [
      consentGranted({ userId, refreshToken: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' }, resources: ['myactivity.search'], oneTimeResources: [], timeBasedResources: [], state: 'ACTIVE', createdAt: 1, updatedAt: 1 }, Date.now()),
    ]);
    const { jobs } = await exportOf(userId, 3);
    for (const j of jobs) await end(j, 'SUCCEEDED');
    await trailStore.seal(userDocId(userId));
    expect((await trail.verify(userId)).ok).toBe(true);
    const key = userDocId(userId);
    const doc = (seq: number) => db.doc(`${AUDIT_COLLECTIONS.entries}/${key}-${String(seq).padStart(12, '0')}`);

    // An archive's size changed afterwards: its own hash no longer holds.
    const third = (await doc(3).get()).data() as { details: { archives: Array<{ size: number }> } };
    await doc(3).update({ 'details.archives': third.details.archives.map((x) => ({ ...x, size: 1 })) });
    expect(await trail.verify(userId)).toMatchObject({ ok: false, firstBroken: { seq: 3, reason: 'its hash does not match its content' } });
    // Re-hashed by the tamperer: then the next entry no longer links to it.
    const { auditHash } = await import('../../functions/src/domain/audit');
    const edited = (await doc(3).get()).data() as Parameters<typeof auditHash>[0];
    await doc(3).update({ hash: auditHash(edited) });
    expect(await trail.verify(userId)).toMatchObject({ ok: false, firstBroken: { seq: 4, reason: 'it does not carry the hash of the entry before it' } });

    // A removal inside the chain.
    const other = newUser();
    const { jobs: j2 } = await exportOf(other, 2);
    for (const j of j2) await end(j, 'SUCCEEDED');
    await trailStore.seal(userDocId(other));
    await db.doc(`${AUDIT_COLLECTIONS.entries}/${userDocId(other)}-${String(2).padStart(12, '0')}`).delete();
    expect(await trail.verify(other)).toMatchObject({ ok: false, firstBroken: { seq: 3, reason: 'entries 2 to 2 are missing before it' } });
    // The newest removed: the head says more.
    await db.doc(`${AUDIT_COLLECTIONS.entries}/${userDocId(other)}-${String(4).padStart(12, '0')}`).delete();
    await db.doc(`${AUDIT_COLLECTIONS.entries}/${userDocId(other)}-${String(3).padStart(12, '0')}`).delete();
    expect(await trail.verify(other)).toMatchObject({ ok: false, firstBroken: { seq: 2 } });
  });

  it('the oldest entries expired by TTL: the oldest present anchors the check', async () => {
    const userId = newUser();
    const { jobs } = await exportOf(userId, 2);
    for (const j of jobs) await end(j, 'SUCCEEDED');
    await trailStore.seal(userDocId(userId));
    await db.doc(`${AUDIT_COLLECTIONS.entries}/${userDocId(userId)}-${String(1).padStart(12, '0')}`).delete();
    expect(await trail.verify(userId)).toEqual({ ok: true, entries: 3 });
  });

  it('the sweeper seals what a crash left pending', async () => {
    const userId = newUser();
    const { jobs } = await exportOf(userId, 1);
    await end(jobs[0] as Job, 'SUCCEEDED');
    expect(await pendingOf(userId)).toBe(3);
    expect(await trail.sealPending(Date.now() + 1000)).toBeGreaterThanOrEqual(3);
    expect(await pendingOf(userId)).toBe(0);
    expect((await trail.verify(userId)).entries).toBe(3);
  });

  it("pages newest first with opaque tokens, refuses tokens it did not issue, and never shows another user's entries (also in parallel)", async () => {
    const users = [newUser(), newUser(), newUser()];
    await Promise.all(
      users.map(async (u) => {
        for (let i = 0; i < 3; i++) {
          const { jobs } = await exportOf(u, 1);
          await end(jobs[0] as Job, 'SUCCEEDED');
        }
      }),
    );
    await Promise.all(users.map((u) => trail.sealAfterCommit(u)));
    const pages = await Promise.all(
      users.map(async (u) => {
        const seen: number[] = [];
        let token: string | undefined;
        do {
          const page = await trail.list(u, { pageSize: 4, ...(token ? { pageToken: token } : {}) });
          seen.push(...page.entries.map((e) => e.seq));
          // Every entry is this user's: the export ids it names are this user's exports.
          for (const e of page.entries) expect((await store.getExport(String(e.details.exportId)))?.userId).toBe(u);
          token = page.nextPageToken;
        } while (token);
        return seen;
      }),
    );
    for (const seen of pages) expect(seen).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    const b64 = (t: string) => Buffer.from(t).toString('base64url');
    for (const bad of ['x', 'YTA', b64('a-1'), b64('{"seq":3}'), b64('xa5'), b64('a5x'), b64(`a1${'0'.repeat(15)}`)]) {
      const err = await trail.list(users[0] as string, { pageSize: 2, pageToken: bad }).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(RequestError);
      expect((err as RequestError).field).toBe('pageToken');
      expect((err as RequestError).message).toBe('pageToken: is not a page token this API issued');
    }
    // A token of another user's trail only continues the caller's own.
    const foreign = await trail.list(users[1] as string, { pageSize: 2 });
    const mine = await trail.list(users[0] as string, { pageSize: 20, pageToken: foreign.nextPageToken as string });
    expect(mine.entries.map((e) => e.seq)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    // The last page says so: no token to a page that would be empty.
    expect(mine.nextPageToken).toBeUndefined();
    for (const e of mine.entries) expect((await store.getExport(String(e.details.exportId)))?.userId).toBe(users[0]);
  });

  it('page tokens carry seqs up to 15 digits and nothing else', () => {
    for (const seq of [1, 9, 10, 123_456_789_012_345]) expect(decodeAuditPageToken(encodeAuditPageToken(seq))).toBe(seq);
    expect(decodeAuditPageToken(encodeAuditPageToken(0))).toBeUndefined();
    expect(decodeAuditPageToken(encodeAuditPageToken(1_234_567_890_123_456))).toBeUndefined();
  });

  it('records an erasure with what it removed and when, sealed at once', async () => {
    const userId = newUser();
    const at = Date.UTC(2100, 0, 2, 3, 4, 5);
    const requestedAt = at - 60_000;
    await trail.record(userId, [userErased(userId, { objects: 2, grants: 1 }, at, requestedAt)]);
    // Sealed right away: nothing left for the sweeper.
    expect(await pendingOf(userId)).toBe(0);
    const { entries } = await trail.list(userId, { pageSize: 10 });
    expect(entries).toEqual([{ seq: 1, kind: 'user.erased', at: new Date(at).toISOString(), details: { removed: { objects: 2, grants: 1 } }, prevHash: GENESIS_HASH, hash: expect.any(String) }]);
    expect(await trail.verify(userId)).toEqual({ ok: true, entries: 1 });
  });

  it('a change whose entries cannot be sealed now still succeeds: the sweeper seals them later', async () => {
    const userId = newUser();
    const logs: Array<Record<string, unknown>> = [];
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
    const failing = new AuditTrail({ store: Object.assign(Object.create(trailStore) as FirestoreAuditTrail, { seal: async () => Promise.reject(new Error('contended')) }), logger });
    await expect(failing.sealAfterCommit(userId)).resolves.toBeUndefined();
    // The operator is told, with the cause.
    expect(logs).toEqual([expect.objectContaining({ severity: 'WARNING', message: 'audit entries not sealed yet; the sweeper seals them' })]);
    expect(JSON.stringify(logs)).toContain('contended');
    await failing.record(userId, [userErased(userId, { objects: 1 }, Date.now())]);
    expect(await pendingOf(userId)).toBe(1);
    expect(await trail.sealPending(Date.now() + 1000)).toBeGreaterThanOrEqual(1);
    expect((await trail.list(userId, { pageSize: 10 })).entries.map((e) => e.kind)).toEqual(['user.erased']);
  });
});
