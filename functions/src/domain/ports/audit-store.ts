/** The seam to where users' audit trails are kept (Firestore: adapters/firestore-audit-trail.ts). */
import type { AuditDraft, AuditEntry } from '../audit';

export interface AuditStore {
  /** Facts without a transaction of their own, written as pending drafts (sealed by `seal`). */
  append(userId: string, drafts: readonly AuditDraft[]): Promise<void>;
  /** Chains the user's pending drafts (userKey: the hashed user id), oldest first; returns how many. */
  seal(userKey: string): Promise<number>;
  /** Seals every user with drafts pending since `before` (epoch ms); returns how many drafts. */
  sealPending(before: number, limit?: number): Promise<number>;
  /** One page of the user's chain, newest first, after `afterSeq` when given. */
  page(userKey: string, limit: number, afterSeq?: number): Promise<{ entries: AuditEntry[]; more: boolean }>;
  /** The whole chain, oldest first, with its head. */
  trail(userKey: string): Promise<{ entries: AuditEntry[]; head?: { seq: number; hash: string } }>;
}
