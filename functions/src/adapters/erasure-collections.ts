/**
 * Every Firestore collection that holds a person's records, and how an erasure finds that
 * person's documents in it: the ONE list the erasure sweeps (adapters/firestore-erasure-store.ts),
 * in this order, one step each. A collection added to the system with per-user documents is added
 * here, or the erasure leaves it behind (test/e2e/erasure.test.ts scans every collection).
 *
 * - `{ docId: 'userKey' }`: the document id is userDocId(userId) (grants, ledgers).
 * - `{ field, equals: 'userId' }`: documents whose `field` == the user id.
 * - `{ field, equals: 'userKey' }`: documents whose `field` == userDocId(userId); new per-user
 *   collections carry `userKey` for this.
 */
export type ErasureFinder = { docId: 'userKey' } | { field: string; equals: 'userId' | 'userKey' };

export interface ErasureCollection {
  collection: string;
  find: ErasureFinder;
  /** Its documents have subcollections of the same person's records, deleted with them (manifests' pages). */
  withSubcollections?: true;
}

export const ERASURE_COLLECTIONS: readonly ErasureCollection[] = [
  { collection: 'schedules', find: { field: 'userId', equals: 'userId' } },
  { collection: 'jobs', find: { field: 'userId', equals: 'userId' } },
  { collection: 'exports', find: { field: 'userId', equals: 'userId' } },
  { collection: 'idempotency', find: { field: 'userId', equals: 'userId' } },
  // Events not yet published name the user only by hash (domain/events.ts userIdHash = userKey).
  { collection: 'outbox', find: { field: 'event.attributes.userIdHash', equals: 'userKey' } },
  { collection: 'consentStates', find: { field: 'userId', equals: 'userId' } },
  // Archive manifests: the summary, and its entries in the subcollection `pages`.
  { collection: 'manifests', find: { field: 'userKey', equals: 'userKey' }, withSubcollections: true },
  { collection: 'grants', find: { docId: 'userKey' } },
  // The admission ledger: the user's limit counters and group holders.
  { collection: 'ledgers', find: { docId: 'userKey' } },
];
