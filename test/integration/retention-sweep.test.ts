/**
 * The local stack's retention sweep, on the Cloud Storage stand-in and the Firestore emulator
 * through the official clients: what the lifecycle rule and the TTL policies do in production.
 * An archive is deleted once it is ARCHIVE_RETENTION_DAYS old, a record once its `expireAt` has
 * passed (an ended export and its jobs, RECORD_RETENTION_DAYS after the end; the audit trail
 * later), and nothing younger.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { AUDIT_COLLECTIONS, FirestoreAuditTrail } from '../../functions/src/adapters/firestore-audit-trail';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { userDocId } from '../../functions/src/adapters/firestore-paths';
import { newJob } from '../../functions/src/domain/job';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { sweepRetention } from '../../local-stack/retention-sweep';

const DAY = 86_400_000;
const BUCKET = 'retention-archives';
let gcs: GcsServer;
let storage: Storage;
let db: Firestore;

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-retention-sweep' });
  gcs = await startGcsServer();
  storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'demo-retention-sweep' });
  await storage.bucket(BUCKET).create();
});

afterAll(async () => {
  await db?.terminate();
  await gcs?.stop();
});

describe('the retention sweep', () => {
  it('deletes archives at ARCHIVE_RETENTION_DAYS of age and records past their expireAt, and nothing younger', async () => {
    const store = new FirestoreExportStore(db, { audit: { keepDays: 90 + 365 }, recordDays: 90 });
    const userId = `ret-${randomBytes(4).toString('hex')}`;
    const exportId = randomBytes(10).toString('hex');
    const now = Date.now();
    const job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource: 'chrome.history' }, now), state: 'COPYING' as const, seq: 3 };
    await store.createExport({ id: exportId, userId, state: 'RUNNING', resources: ['chrome.history'], createdAt: now, updatedAt: now }, [job]);
    const running = randomBytes(10).toString('hex');
    await store.createExport({ id: running, userId, state: 'RUNNING', resources: ['youtube.playlists'], createdAt: now, updatedAt: now }, [{ ...newJob({ id: randomBytes(10).toString('hex'), exportId: running, userId, resource: 'youtube.playlists' }, now) }]);
    const name = `${userId}/${exportId}/chrome.history/archive-1-of-1.zip`;
    await storage.bucket(BUCKET).file(name).save('zip bytes');
    await store.updateJob(job.id, (cur) => ({ ...cur, state: 'SUCCEEDED', seq: 4, finishedAt: now, updatedAt: now, nextCheckAt: undefined, archives: [{ bucket: BUCKET, name, size: 9, crc32c: 'x' }] }));
    await new FirestoreAuditTrail(db, 90 + 365).seal(userDocId(userId));
    const deps = { db, storage, bucket: BUCKET, archiveDays: 30 };
    const exists = async (path: string) => (await db.doc(path).get()).exists;

    // A day short of each period: everything stays.
    expect(await sweepRetention(deps, now + 29 * DAY)).toEqual({ objects: 0, documents: 0 });
    expect((await storage.bucket(BUCKET).file(name).exists())[0]).toBe(true);
    // 30 days: the archive goes, its records stay (the API still lists the export).
    expect((await sweepRetention(deps, now + 30 * DAY + 60_000)).objects).toBe(1);
    expect((await storage.bucket(BUCKET).file(name).exists())[0]).toBe(false);
    expect(await exists(`exports/${exportId}`)).toBe(true);
    // 90 days after the end: the ended export and its job go; the running export and the trail stay.
    await sweepRetention(deps, now + 90 * DAY + 60_000);
    expect(await exists(`exports/${exportId}`)).toBe(false);
    expect(await exists(`jobs/${job.id}`)).toBe(false);
    expect(await exists(`exports/${running}`)).toBe(true);
    const trail = () => db.collection(AUDIT_COLLECTIONS.entries).where('userKey', '==', userDocId(userId)).get();
    expect((await trail()).size).toBe(4);
    // The trail outlives the records by AUDIT_RETENTION_DAYS.
    await sweepRetention(deps, now + (90 + 365) * DAY + 60_000);
    expect((await trail()).size).toBe(0);
    expect(await exists(`${AUDIT_COLLECTIONS.heads}/${userDocId(userId)}`)).toBe(false);
  });
});
