/**
 * Started consents in Firestore: `consentStates/{sha256(state)}`. The raw state never reaches the
 * database; the PKCE verifier is stored encrypted and removed when the state is claimed. The
 * record stays, marked used, until the TTL policy on `expireAt` deletes it, so a replay is told
 * apart from a state that never existed.
 */
import { FieldValue, type Firestore } from '@google-cloud/firestore';
import { consentStateUse, type ConsentState, type ConsentStateRefusal, type ConsentStateStore } from '../domain/consent-state';
import { contended, runQuery, type QuerySpec as Query } from './firestore-client';
import { refuseWhileErasing } from './firestore-erasure-guard';

/** The collection; infra/firestore.tf declares its TTL policy on `expireAt`. */
export const CONSENT_STATE_COLLECTION = 'consentStates';

/** How long a record outlives its expiry before the TTL policy may delete it (replays answer "used" meanwhile). */
const KEEP_AFTER_EXPIRY_MS = 86_400_000;

type Stored = ConsentState & { expireAt: Date };

/** Every query the store runs (test/infra/terraform.test.ts derives the indexes they need from these). */
export const consentStateQueries = {
  // Equality only: the single-field index serves it.
  statesOfUser: (userId: string): Query => ({ collection: CONSENT_STATE_COLLECTION, where: [['userId', '==', userId]], select: [] }),
};

export class FirestoreConsentStateStore implements ConsentStateStore {
  constructor(private readonly db: Firestore) {}

  private doc(key: string) {
    return this.db.collection(CONSENT_STATE_COLLECTION).doc(key);
  }

  /** Refused (409) while the user's erasure runs. */
  async create(key: string, state: ConsentState): Promise<void> {
    // expireAt is a timestamp: the TTL policy deletes the record some time after it.
    const stored: Stored = { ...state, expireAt: new Date(state.expiresAt + KEEP_AFTER_EXPIRY_MS) };
    await contended(() =>
      this.db.runTransaction(async (tx) => {
        await refuseWhileErasing(this.db, tx, state.userId);
        tx.create(this.doc(key), stored);
      }),
    );
  }

  async claim(key: string, userId: string, now: number): Promise<{ ok: true; state: ConsentState } | { ok: false; refusal: ConsentStateRefusal }> {
    const ref = this.doc(key);
    // Contention past the client's own retries is the caller's to retry (503), never a 500.
    return contended(() => this.db.runTransaction(async (tx) => {
      const snap = await tx.get(ref);
      const current = snap.exists ? (snap.data() as Stored) : undefined;
      const use = consentStateUse(current, userId, now);
      if (!use.ok || !current) return { ok: false as const, refusal: use.ok ? 'UNKNOWN' : use.refusal };
      tx.update(ref, { usedAt: now, codeVerifier: FieldValue.delete() });
      const { expireAt: _ttl, ...state } = current;
      return { ok: true as const, state };
    }));
  }

  async deleteOfUser(userId: string): Promise<number> {
    const docs = await runQuery(this.db, consentStateQueries.statesOfUser(userId));
    const writer = this.db.bulkWriter();
    await Promise.all([...docs.map((d) => writer.delete(this.db.doc(d.path))), writer.close()]);
    return docs.length;
  }
}
