/**
 * The erasure of a person on request: what the running erasure and its tombstone hold, the order
 * of its steps, and what the caller sees. Pure: the steps themselves are pipeline/erasure-worker.ts.
 *
 * One document per person, `erasures/{userKey}` (userKey = the hashed user id). While the erasure
 * runs it also holds the user id (the worker needs it to find the person's records and objects);
 * the step that finishes removes it, and what stays is the tombstone: the hash, when it was asked
 * and finished, and how many of each kind of record were removed.
 */

export type ErasureState = 'RUNNING' | 'DONE';

/** The 409 code of what a running erasure refuses (a new export, schedule, consent or grant of the user). */
export const ERASURE_IN_PROGRESS = 'ERASURE_IN_PROGRESS';

/** What was removed, by kind: one count per swept collection, plus `objects` in the bucket. */
export type ErasureCounts = Record<string, number>;

export interface ErasureRecord {
  state: ErasureState;
  /** 1 for the first erasure of this person; a DELETE after one finished starts the next. */
  run: number;
  /** Only while RUNNING: removed by the step that finishes. */
  userId?: string;
  /** epoch ms */
  requestedAt: number;
  finishedAt?: number;
  updatedAt: number;
  /** Index into the run's steps of the next one to carry out. */
  step: number;
  /**
   * epoch ms: objects are not deleted before then. The end of the longest lease (a Google call
   * that starts an archive job, or a copy writing into the bucket) of the jobs this erasure ended:
   * until it passes, a step already in flight could still write.
   */
  holdUntil?: number;
  /** epoch ms: when the sweeper re-enqueues a RUNNING erasure whose task was lost (absent once DONE). */
  nextCheckAt?: number;
  removed: ErasureCounts;
}

/** The steps before and after the per-collection sweeps, in order. */
export const ERASURE_STEPS_BEFORE = ['reset-google', 'stop-schedules', 'end-jobs', 'wait-leases', 'delete-objects'] as const;
export type ErasureStep = (typeof ERASURE_STEPS_BEFORE)[number] | `delete:${string}` | 'finish';

/** Every step of an erasure: the fixed ones, one per swept collection, then finish. */
export function erasureSteps(collections: readonly string[]): ErasureStep[] {
  return [...ERASURE_STEPS_BEFORE, ...collections.map((c): ErasureStep => `delete:${c}`), 'finish'];
}

export interface ErasureView {
  state: ErasureState;
  requestedAt: string;
  finishedAt?: string;
  removed: ErasureCounts;
}

export function toErasureView(r: ErasureRecord): ErasureView {
  return {
    state: r.state,
    requestedAt: new Date(r.requestedAt).toISOString(),
    ...(r.finishedAt !== undefined ? { finishedAt: new Date(r.finishedAt).toISOString() } : {}),
    removed: { ...r.removed },
  };
}

/**
 * A fresh erasure, or the next run after one that finished when the user has records again (came
 * back, consented, exported); a running one is joined, and so is a finished one with nothing new
 * to erase (undefined: nothing to write). So DELETEs sent together end as one, however they interleave.
 */
export function beginErasure(current: ErasureRecord | undefined, userId: string, now: number, firstCheckAt: number, hasRecords: boolean): ErasureRecord | undefined {
  if (current?.state === 'RUNNING') return undefined;
  if (current?.state === 'DONE' && !hasRecords) return undefined;
  return { state: 'RUNNING', run: (current?.run ?? 0) + 1, userId, requestedAt: now, updatedAt: now, step: 0, nextCheckAt: firstCheckAt, removed: {} };
}

/** The tombstone a finished erasure leaves: no user id, no due time. */
export function finishedErasure(r: ErasureRecord, now: number): ErasureRecord {
  const { userId: _u, nextCheckAt: _n, holdUntil: _h, ...rest } = r;
  return { ...rest, state: 'DONE', finishedAt: now, updatedAt: now };
}
