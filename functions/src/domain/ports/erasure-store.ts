/** The seam to where erasures are kept and what they delete (Firestore). */
import type { AuditDraft } from '../audit';
import type { ErasureRecord } from '../erasure';

export interface ErasureStore {
  /**
   * Marks the user's erasure in a transaction: a new one (RUNNING, step 0), or the one already
   * running, joined. From its commit on, the transactions that admit an export, a schedule, a
   * consent or a grant of this user refuse with 409 ERASURE_IN_PROGRESS.
   */
  begin(userId: string, now: number, firstCheckAt: number): Promise<{ record: ErasureRecord; started: boolean }>;
  get(userKey: string): Promise<ErasureRecord | undefined>;
  /** Compare-and-set: moves run `run` from step `from` to `from + 1` (with `patch`); false when it was elsewhere. */
  advance(userKey: string, run: number, from: number, patch?: Partial<ErasureRecord>): Promise<boolean>;
  /** Raises holdUntil to at least `until` (never lowers it). */
  holdUntil(userKey: string, run: number, until: number): Promise<void>;
  /** When the sweeper looks at this run again. */
  setNextCheck(userKey: string, run: number, at: number): Promise<void>;
  /** Adds to a removal count of the run (objects; the Firestore sweeps count in their own transactions). */
  countRemoved(userKey: string, run: number, kind: string, n: number): Promise<void>;
  /** Deletes the user's documents of one swept collection (adapters/erasure-collections.ts), counting them on the run. */
  deleteRecords(collection: string, userId: string, run: number): Promise<number>;
  /**
   * Compare-and-set from the last step: the tombstone (no user id) replaces the running erasure,
   * and `audit`'s drafts are written in the same transaction (so once, however often the last
   * step is delivered).
   */
  finish(userKey: string, run: number, from: number, now: number, audit?: { userId: string; drafts: readonly AuditDraft[] }): Promise<boolean>;
  /** RUNNING erasures due at or before `dueBefore` (a delivery lost or dead): with their user key. */
  listOverdue(dueBefore: number, limit: number): Promise<Array<{ userKey: string; record: ErasureRecord }>>;
}
