/**
 * Retention on the local stack, whose stand-ins have neither Cloud Storage lifecycle rules nor
 * Firestore TTL: one sweep does what the two do in production (infra/storage.tf, firestore.tf).
 * Objects older than ARCHIVE_RETENTION_DAYS are deleted (age from the object's creation, as the
 * lifecycle rule counts it), and documents whose `expireAt` has passed, in every collection with a
 * TTL policy. Never deployed: in production nothing queries `expireAt` (its index is off).
 */
import type { Firestore } from '@google-cloud/firestore';
import type { Storage } from '@google-cloud/storage';
import { AUDIT_COLLECTIONS } from '../functions/src/adapters/firestore-audit-trail';
import { CONSENT_STATE_COLLECTION } from '../functions/src/adapters/firestore-consent-state-store';
import { DAY_MS } from '../functions/src/domain/durations';

/** Every collection infra/firestore.tf gives a TTL policy on `expireAt`. */
export const TTL_COLLECTIONS = ['idempotency', CONSENT_STATE_COLLECTION, 'exports', 'jobs', ...Object.values(AUDIT_COLLECTIONS)];

const BATCH = 400;

export interface RetentionSweepDeps {
  db: Firestore;
  storage: Storage;
  bucket: string;
  archiveDays: number;
}

export interface RetentionSweepResult {
  objects: number;
  documents: number;
}

export async function sweepRetention(deps: RetentionSweepDeps, now = Date.now()): Promise<RetentionSweepResult> {
  const [files] = await deps.storage.bucket(deps.bucket).getFiles();
  const old = files.filter((f) => Date.parse(String(f.metadata.timeCreated)) + deps.archiveDays * DAY_MS <= now);
  // A file deleted meanwhile (by the user's DELETE) is gone either way.
  await Promise.all(old.map((f) => f.delete({ ignoreNotFound: true })));
  let documents = 0;
  for (const collection of TTL_COLLECTIONS) {
    for (;;) {
      const snap = await deps.db.collection(collection).where('expireAt', '<=', new Date(now)).limit(BATCH).select().get();
      if (snap.empty) break;
      const batch = deps.db.batch();
      for (const d of snap.docs) batch.delete(d.ref);
      await batch.commit();
      documents += snap.size;
      if (snap.size < BATCH) break;
    }
  }
  return { objects: old.length, documents };
}
