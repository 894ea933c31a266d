/**
 * The one Firestore client the stores share: `@google-cloud/firestore`, so transactions, retries,
 * auth, deadlines and request routing are Google's. Queries are kept as plain descriptions
 * (`QuerySpec`) so that test/infra/terraform.test.ts can derive the composite indexes they need.
 */
import { UnavailableError } from '../domain/errors';
import { FIRESTORE_CONTENTION_ATTEMPTS } from '../domain/retry-policies';
import { Firestore, type DocumentData, type Query } from '@google-cloud/firestore';

export interface FirestoreOptions {
  projectId: string;
  databaseId?: string;
  /** host:port of the Firestore emulator (plaintext, the emulator's `owner` credentials). */
  emulatorHost?: string;
}

export function createFirestore(opts: FirestoreOptions): Firestore {
  return new Firestore({
    projectId: opts.projectId,
    ...(opts.databaseId ? { databaseId: opts.databaseId } : {}),
    ...(opts.emulatorHost ? { host: opts.emulatorHost, ssl: false } : {}),
    // Optional fields of the model are left out of the document rather than refused.
    ignoreUndefinedProperties: true,
  });
}

/**
 * Loads the client's transport, fetches credentials and opens the channel: one document read
 * (of a document that never exists), made while the framework starts so the first request
 * does not pay for it.
 */
export async function warmFirestore(db: Firestore): Promise<void> {
  await db.doc('warm-up/probe').get();
}

const ABORTED = 10;
const INVALID_ARGUMENT = 3;

/**
 * Contention, not a bad request: ABORTED after the client's own retries, or a transaction the
 * server closed under it (the emulator answers INVALID_ARGUMENT "Transaction is invalid or
 * closed" to the reads of a transaction it aborted to let another one through).
 */
function isContention(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e.code === ABORTED || (e.code === INVALID_ARGUMENT && /transaction is invalid or closed|transaction has expired/i.test(String(e.message)));
}

/**
 * Runs a transaction again, after a short random pause, when it met contention; still contended
 * after `attempts`, it is the caller's to try again (503), never a server fault.
 */
export async function contended<T>(transaction: () => Promise<T>, attempts = FIRESTORE_CONTENTION_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (err) {
      if (!isContention(err)) throw err;
      if (attempt >= attempts) throw new UnavailableError('Too many changes to the same records at once; try again', 1);
      await new Promise((r) => setTimeout(r, Math.random() * 100 * attempt));
    }
  }
}

export type WhereOp = '==' | '<' | '<=' | '>' | '>=' | '!=' | 'array-contains';

/** A query on one collection; `select: []` reads document names only. */
export interface QuerySpec {
  collection: string;
  where?: Array<[field: string, op: WhereOp, value: unknown]>;
  orderBy?: Array<[field: string, direction: 'asc' | 'desc']>;
  limit?: number;
  select?: string[];
  /** Cursor values, one per orderBy field: results start after this position. */
  startAfter?: unknown[];
}

export function buildQuery(db: Firestore, spec: QuerySpec): Query {
  let q: Query = db.collection(spec.collection);
  for (const [field, op, value] of spec.where ?? []) q = q.where(field, op, value);
  for (const [field, direction] of spec.orderBy ?? []) q = q.orderBy(field, direction);
  if (spec.startAfter) q = q.startAfter(...spec.startAfter);
  if (spec.limit !== undefined) q = q.limit(spec.limit);
  // select() with no field reads document names only.
  if (spec.select) q = q.select(...spec.select);
  return q;
}

export interface QueryDocument<T> {
  id: string;
  path: string;
  data: T;
}

/**
 * Runs a query and returns its documents. Never inside a transaction: a query there locks far
 * more than the documents it returns (in the emulator, the whole collection).
 */
export async function runQuery<T = DocumentData>(db: Firestore, spec: QuerySpec): Promise<Array<QueryDocument<T>>> {
  const snap = await buildQuery(db, spec).get();
  return snap.docs.map((d) => ({ id: d.id, path: d.ref.path, data: d.data() as T }));
}
