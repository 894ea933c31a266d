/** Reads a user's admission ledger (domain/admission.ts) inside a transaction. */
import type { DocumentReference, Firestore, Transaction } from '@google-cloud/firestore';
import { emptyLedger, type UserLedger } from '../domain/admission';
import { paths } from './firestore-paths';

export async function readLedger(db: Firestore, tx: Transaction, userId: string): Promise<{ ref: DocumentReference; ledger: UserLedger }> {
  const ref = db.doc(paths.ledger(userId));
  const snap = await tx.get(ref);
  return { ref, ledger: { ...emptyLedger(), ...(snap.exists ? (snap.data() as Partial<UserLedger>) : {}) } };
}

/** The ledger's write: the whole ledger, and the user it belongs to (for erasure by user). */
export function writeLedger(tx: Transaction, ref: DocumentReference, ledger: UserLedger, userId: string): void {
  tx.set(ref, { ...ledger, userId });
}
