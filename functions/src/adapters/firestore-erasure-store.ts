/**
 * Erasures in Firestore: `erasures/{userKey}` (the running erasure, then its tombstone), and the
 * sweeps that delete a user's documents collection by collection (adapters/erasure-collections.ts).
 * Each sweep deletes a page of documents and adds their number to the erasure's count in one
 * transaction, so a sweep run twice (a redelivery, a crash midway) counts every document once.
 */
import { FieldPath, FieldValue, type DocumentReference, type Firestore, type Transaction } from '@google-cloud/firestore';
import { beginErasure, finishedErasure, type ErasureRecord } from '../domain/erasure';
import type { AuditDraft } from '../domain/audit';
import type { ErasureStore } from '../domain/ports/erasure-store';
import { writeAuditDrafts } from './firestore-audit-trail';
import { ERASURE_COLLECTIONS } from './erasure-collections';
import { contended, runQuery, type QuerySpec } from './firestore-client';
import { consentStateQueries } from './firestore-consent-state-store';
import { paths, userDocId } from './firestore-paths';

const COLLECTION = 'erasures';
/** Documents deleted per transaction (a transaction takes at most 500 writes). */
const PAGE = 200;

/** Every query the store runs (equality or one range: single-field indexes serve them all). */
export const erasureStoreQueries = {
  overdue: (dueBefore: number, limit: number): QuerySpec => ({ collection: COLLECTION, where: [['nextCheckAt', '<=', dueBefore]], orderBy: [['nextCheckAt', 'asc']], limit }),
  recordsOf: (collection: string, field: string, value: string, limit: number): QuerySpec => ({ collection, where: [[field, '==', value]], select: [], limit }),
};

export class FirestoreErasureStore implements ErasureStore {
  /** `audit.keepDays`: how long the audit drafts `finish` writes are kept (AUDIT_RETENTION_DAYS and the records'). */
  constructor(
    private readonly db: Firestore,
    private readonly opts: { audit?: { keepDays: number } } = {},
  ) {}

  private ref(userKey: string): DocumentReference {
    return this.db.collection(COLLECTION).doc(userKey);
  }

  /**
   * Whether a user erased before has records again: everything a user can create goes through a
   * grant, a started consent or the admission ledger (exports, schedules, their idempotency records).
   */
  private async recordsAgain(userId: string, tx: Transaction): Promise<boolean> {
    const [grant, ledger] = await tx.getAll(this.db.doc(paths.grant(userId)), this.db.doc(paths.ledger(userId)));
    if (grant?.exists || ledger?.exists) return true;
    return (await runQuery(this.db, { ...consentStateQueries.statesOfUser(userId), limit: 1 })).length > 0;
  }

  async begin(userId: string, now: number, firstCheckAt: number): Promise<{ record: ErasureRecord; started: boolean }> {
    const ref = this.ref(userDocId(userId));
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const snap = await tx.get(ref);
        const current = snap.exists ? (snap.data() as ErasureRecord) : undefined;
        const again = current?.state === 'DONE' && (await this.recordsAgain(userId, tx));
        const next = beginErasure(current, userId, now, firstCheckAt, again);
        if (!next) return { record: current as ErasureRecord, started: false };
        tx.set(ref, next);
        return { record: next, started: true };
      }),
    );
  }

  async get(userKey: string): Promise<ErasureRecord | undefined> {
    const snap = await this.ref(userKey).get();
    return snap.exists ? (snap.data() as ErasureRecord) : undefined;
  }

  /** A compare-and-set on the running erasure of `run`; `change` returns the fields to update, or undefined. */
  private async update(userKey: string, run: number, change: (r: ErasureRecord) => Record<string, unknown> | undefined): Promise<boolean> {
    const ref = this.ref(userKey);
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const snap = await tx.get(ref);
        const r = snap.exists ? (snap.data() as ErasureRecord) : undefined;
        if (r?.state !== 'RUNNING' || r.run !== run) return false;
        const fields = change(r);
        if (!fields) return false;
        tx.update(ref, { ...fields, updatedAt: Date.now() });
        return true;
      }),
    );
  }

  async advance(userKey: string, run: number, from: number, patch: Partial<ErasureRecord> = {}): Promise<boolean> {
    return this.update(userKey, run, (r) => (r.step === from ? { ...patch, step: from + 1 } : undefined));
  }

  async holdUntil(userKey: string, run: number, until: number): Promise<void> {
    await this.update(userKey, run, (r) => ((r.holdUntil ?? 0) < until ? { holdUntil: until } : undefined));
  }

  async setNextCheck(userKey: string, run: number, at: number): Promise<void> {
    await this.update(userKey, run, () => ({ nextCheckAt: at }));
  }

  async countRemoved(userKey: string, run: number, kind: string, n: number): Promise<void> {
    if (n === 0) return;
    const ref = this.ref(userKey);
    await contended(() =>
      this.db.runTransaction(async (tx) => {
        const r = (await tx.get(ref)).data() as ErasureRecord | undefined;
        if (r?.state !== 'RUNNING' || r.run !== run) return;
        tx.update(ref, new FieldPath('removed', kind), FieldValue.increment(n));
      }),
    );
  }

  async deleteRecords(collection: string, userId: string, run: number): Promise<number> {
    const spec = ERASURE_COLLECTIONS.find((c) => c.collection === collection);
    if (!spec) throw new Error(`Not a swept collection: ${collection}`);
    const userKey = userDocId(userId);
    const erasure = this.ref(userKey);
    let total = 0;
    for (;;) {
      // Found outside the transaction (a query inside one locks far more than what it returns).
      const refs =
        'docId' in spec.find
          ? [this.db.collection(collection).doc(userKey)]
          : (await runQuery(this.db, erasureStoreQueries.recordsOf(collection, spec.find.field, spec.find.equals === 'userId' ? userId : userKey, PAGE))).map((d) => this.db.doc(d.path));
      if (refs.length === 0) return total;
      // Subcollections first: a crash after them finds the parents again, and deletes what is left.
      if (spec.withSubcollections) for (const ref of refs) for (const sub of await ref.listCollections()) await this.db.recursiveDelete(sub);
      const deleted = await contended(() =>
        this.db.runTransaction(async (tx) => {
          const [r, ...docs] = await tx.getAll(erasure, ...refs);
          const running = r?.exists && (r.data() as ErasureRecord).state === 'RUNNING' && (r.data() as ErasureRecord).run === run;
          if (!running) return -1;
          const existing = docs.filter((d) => d.exists);
          for (const d of existing) tx.delete(d.ref);
          if (existing.length > 0) tx.update(erasure, new FieldPath('removed', collection), FieldValue.increment(existing.length));
          return existing.length;
        }),
      );
      // Another delivery finished this run meanwhile.
      if (deleted < 0) return total;
      total += deleted;
      // A document id is one document; a page shorter than PAGE was the last one.
      if ('docId' in spec.find || refs.length < PAGE) return total;
    }
  }

  async finish(userKey: string, run: number, from: number, now: number, audit?: { userId: string; drafts: readonly AuditDraft[] }): Promise<boolean> {
    const ref = this.ref(userKey);
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const snap = await tx.get(ref);
        const r = snap.exists ? (snap.data() as ErasureRecord) : undefined;
        if (r?.state !== 'RUNNING' || r.run !== run || r.step !== from) return false;
        // set, not merge: the user id and the due time must go.
        tx.set(ref, finishedErasure(r, now));
        if (audit && this.opts.audit) writeAuditDrafts(this.db, tx, audit.userId, audit.drafts, this.opts.audit.keepDays);
        return true;
      }),
    );
  }

  async listOverdue(dueBefore: number, limit: number): Promise<Array<{ userKey: string; record: ErasureRecord }>> {
    const docs = await runQuery<ErasureRecord>(this.db, erasureStoreQueries.overdue(dueBefore, limit));
    return docs.filter((d) => d.data.state === 'RUNNING').map((d) => ({ userKey: d.id, record: d.data }));
  }
}
