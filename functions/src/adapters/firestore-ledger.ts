/**
 * Reads a user's admission ledger (domain/admission.ts) inside a transaction; refuses (409) while
 * the user's erasure runs, so nothing an admission writes can be left behind by one.
 */
import type { DocumentReference, Firestore, Transaction } from '@google-cloud/firestore';
import { emptyLedger, type UserLedger } from '../domain/admission';
import { refuseWhileErasing } from './firestore-erasure-guard';
import { paths } from './firestore-paths';

export async function readLedger(db: Firestore, tx: Transaction, userId: string): Promise<{ ref: DocumentReference; ledger: UserLedger }> {
  await refuseWhileErasing(db, tx, userId);
  const ref = db.doc(paths.ledger(userId));
  const snap = await tx.get(ref);
  return { ref, ledger: { ...emptyLedger(), ...(snap.exists ? (snap.data() as Partial<UserLedger>) : {}) } };
}

/** The ledger's write: the whole ledger, and the user it belongs to (for erasure by user). */
export function writeLedger(tx: Transaction, ref: DocumentReference, ledger: UserLedger, userId: string): void {
  tx.set(ref, { ...ledger, userId });
}
