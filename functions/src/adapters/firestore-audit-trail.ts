/**
 * The audit trail in Firestore, keyed by the hashed user id (`userKey`, firestore-paths.ts):
 *
 * - `auditPending/{draftId}`: facts written blind (no read) in the same transaction or batch as
 *   the change they describe, so a change never commits without its record and the transaction of
 *   a job reads nothing more than before (a per-user head read in every job's transaction would
 *   serialize the jobs of a wide export on it: issue 17's hot spot, a second time).
 * - `auditEntries/{userKey}-{seq}`: the chain. A sealer, run after the commit and by the sweeper
 *   (like the outbox relay), moves a user's pending facts into it in one transaction over the
 *   user's head: oldest first, each entry hashed with the previous one's hash.
 * - `auditHeads/{userKey}`: the chain's last seq and hash.
 *
 * Every document carries `expireAt` (the TTL policy deletes it): the trail outlives the records it
 * describes by AUDIT_RETENTION_DAYS.
 */
import type { DocumentReference, Firestore } from '@google-cloud/firestore';
import { chain, GENESIS_HASH, type AuditDraft, type AuditEntry } from '../domain/audit';
import { contended, runQuery, type QuerySpec } from './firestore-client';
import { userDocId } from './firestore-paths';
import { PerKeyQueue } from './per-key-queue';
import { DAY_MS } from '../domain/durations';

export const AUDIT_COLLECTIONS = { pending: 'auditPending', entries: 'auditEntries', heads: 'auditHeads' } as const;
const C = AUDIT_COLLECTIONS;
/** Each sealed entry is a create and a delete; with the head, one commit stays under Firestore's 500 writes. */
const SEAL_BATCH = 200;

interface PendingDoc {
  userKey: string;
  draft: AuditDraft;
  /** epoch ms, the draft's time: the sweeper's query orders by it. */
  at: number;
  /** Its place among the drafts of one change (which share a time): a job's archives before its export's end. */
  order: number;
  expireAt: Date;
}

interface HeadDoc {
  userKey: string;
  seq: number;
  hash: string;
  expireAt: Date;
}

type StoredEntry = AuditEntry & { expireAt: unknown };

export const auditQueries = {
  pendingOfUser: (userKey: string, limit: number): QuerySpec => ({ collection: C.pending, where: [['userKey', '==', userKey]], orderBy: [['at', 'asc']], limit }),
  pendingBefore: (before: number, limit: number): QuerySpec => ({ collection: C.pending, where: [['at', '<=', before]], orderBy: [['at', 'asc']], limit }),
  /** Newest first; `afterSeq` continues a page. */
  entriesOfUser: (userKey: string, limit: number, afterSeq?: number): QuerySpec => ({
    collection: C.entries,
    where: [['userKey', '==', userKey]],
    orderBy: [['seq', 'desc']],
    limit,
    ...(afterSeq !== undefined ? { startAfter: [afterSeq] } : {}),
  }),
};

/** Anything that can write a document: a transaction or a batch. */
interface DocWriter {
  set(ref: DocumentReference, data: PendingDoc): unknown;
}

const entryId = (userKey: string, seq: number): string => `${userKey}-${String(seq).padStart(12, '0')}`;
const strip = ({ expireAt: _e, ...entry }: StoredEntry): AuditEntry => entry;

/**
 * Inside the change's own transaction or batch: its facts, as pending drafts. A blind write: the
 * draft's id is stable, so the same fact written twice is one pending document.
 */
export function writeAuditDrafts(db: Firestore, writer: DocWriter, userId: string, drafts: readonly AuditDraft[], keepDays: number, firstOrder = 0): void {
  const userKey = userDocId(userId);
  for (const [i, draft] of drafts.entries()) {
    const order = firstOrder + i;
    writer.set(db.doc(`${C.pending}/${draft.id}`), { userKey, draft, at: draft.at, order, expireAt: new Date(draft.at + keepDays * DAY_MS) });
  }
}

export class FirestoreAuditTrail {
  /** One sealer at a time per user in this instance: the rest would only contend on the head. */
  private readonly sealers = new PerKeyQueue();

  constructor(
    private readonly db: Firestore,
    /** How long an entry is kept from its time (records' retention + the trail's own). */
    private readonly keepDays: number,
  ) {}

  /** Facts without a transaction of their own (a download link): written, then sealed by the caller. */
  async append(userId: string, drafts: readonly AuditDraft[]): Promise<void> {
    const batch = this.db.batch();
    writeAuditDrafts(this.db, batch, userId, drafts, this.keepDays);
    await batch.commit();
  }

  /** Chains the user's pending facts, oldest first. Returns how many were sealed. */
  async seal(userKey: string): Promise<number> {
    return this.sealers.run(userKey, async () => {
      let sealed = 0;
      for (;;) {
        const n = await this.sealBatch(userKey);
        sealed += n;
        if (n < SEAL_BATCH) return sealed;
      }
    });
  }

  private async sealBatch(userKey: string): Promise<number> {
    // Found outside the transaction (a query inside it locks far more), confirmed inside it.
    const found = await runQuery<PendingDoc>(this.db, auditQueries.pendingOfUser(userKey, SEAL_BATCH));
    if (found.length === 0) return 0;
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const headRef = this.db.doc(`${C.heads}/${userKey}`);
        const [headSnap, ...pendingSnaps] = await tx.getAll(headRef, ...found.map((d) => this.db.doc(d.path)));
        // Sealed meanwhile by another sealer: gone from auditPending, so not chained twice.
        const pending = pendingSnaps.filter((s) => s.exists).map((s) => ({ ref: s.ref, doc: s.data() as PendingDoc }));
        pending.sort((a, b) => a.doc.at - b.doc.at || (a.doc.order ?? 0) - (b.doc.order ?? 0) || (a.doc.draft.id < b.doc.draft.id ? -1 : 1));
        let head = headSnap?.exists ? (headSnap.data() as HeadDoc) : { seq: 0, hash: GENESIS_HASH, expireAt: new Date(0) };
        for (const { ref, doc } of pending) {
          const entry = chain(doc.draft, userKey, head);
          tx.create(this.db.doc(`${C.entries}/${entryId(userKey, entry.seq)}`), { ...entry, expireAt: doc.expireAt });
          tx.delete(ref);
          const expireAt = doc.expireAt > head.expireAt ? doc.expireAt : head.expireAt;
          head = { userKey, seq: entry.seq, hash: entry.hash, expireAt };
        }
        if (pending.length > 0) tx.set(headRef, { ...head, userKey });
        return pending.length;
      }),
    );
  }

  /** The sweeper's part: seals every user with facts pending since `before`. Returns how many facts. */
  async sealPending(before: number, limit = 500): Promise<number> {
    const found = await runQuery<PendingDoc>(this.db, auditQueries.pendingBefore(before, limit));
    let sealed = 0;
    for (const userKey of new Set(found.map((d) => d.data.userKey))) sealed += await this.seal(userKey);
    return sealed;
  }

  /** One page of the user's trail, newest first. */
  async page(userKey: string, limit: number, afterSeq?: number): Promise<{ entries: AuditEntry[]; more: boolean }> {
    const docs = await runQuery<StoredEntry>(this.db, auditQueries.entriesOfUser(userKey, limit + 1, afterSeq));
    return { entries: docs.slice(0, limit).map((d) => strip(d.data)), more: docs.length > limit };
  }

  /** The whole trail, oldest first, and its head: what the chain check reads. */
  async trail(userKey: string): Promise<{ entries: AuditEntry[]; head?: { seq: number; hash: string } }> {
    const entries: AuditEntry[] = [];
    let after: number | undefined;
    for (;;) {
      const { entries: page, more } = await this.page(userKey, 500, after);
      entries.push(...page);
      if (!more) break;
      after = page[page.length - 1]?.seq;
    }
    const head = await this.db.doc(`${C.heads}/${userKey}`).get();
    const h = head.exists ? (head.data() as HeadDoc) : undefined;
    return { entries: entries.reverse(), ...(h ? { head: { seq: h.seq, hash: h.hash } } : {}) };
  }
}
