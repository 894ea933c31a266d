/**
 * The check every transaction that admits new records of a user makes (an export, a schedule, a
 * started consent, a grant): read inside the transaction, so a request racing an erasure either
 * commits before the erasure is marked (and the erasure's sweeps, which run after the mark, find
 * what it wrote) or sees the mark and writes nothing.
 */
import type { Firestore, Transaction } from '@google-cloud/firestore';
import { ERASURE_IN_PROGRESS, type ErasureRecord } from '../domain/erasure';
import { conflict } from '../domain/errors';
import { paths } from './firestore-paths';

export async function refuseWhileErasing(db: Firestore, tx: Transaction, userId: string): Promise<void> {
  const snap = await tx.get(db.doc(paths.erasure(userId)));
  if (snap.exists && (snap.data() as ErasureRecord).state === 'RUNNING') {
    throw conflict(ERASURE_IN_PROGRESS, 'This user\'s data is being erased (DELETE /v1/me): nothing new is taken until it has finished');
  }
}
