/**
 * Where each record lives in Firestore. A user id never becomes a document id as it is: any
 * `sub` is valid, including ids Firestore reserves (`__x__`) or cannot hold (`/`), so per-user
 * documents are named by a hash of it.
 */
import { createHash } from 'node:crypto';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The document id of a user's per-user records (grant, ledger). */
export const userDocId = (userId: string): string => sha256(`user\n${userId}`);

export const paths = {
  grant: (userId: string) => `grants/${userDocId(userId)}`,
  /** The user's admission ledger (domain/admission.ts). */
  ledger: (userId: string) => `ledgers/${userDocId(userId)}`,
  export: (exportId: string) => `exports/${exportId}`,
  job: (jobId: string) => `jobs/${jobId}`,
  idempotency: (userId: string, key: string) => `idempotency/${sha256(`${userId}\n${key}`)}`,
  schedule: (scheduleId: string) => `schedules/${scheduleId}`,
  /** Archive `archive` (0-based) of a job: its manifest's summary; its entries in the subcollection `pages`. */
  manifest: (jobId: string, archive: number) => `manifests/${jobId}_${archive}`,
  /** The user's erasure while it runs, then its tombstone (domain/erasure.ts). */
  erasure: (userId: string) => `erasures/${userDocId(userId)}`,
};
