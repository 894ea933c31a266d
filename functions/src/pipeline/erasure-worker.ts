/**
 * Carries out an erasure (domain/erasure.ts), one Cloud Tasks delivery at a time: from the step
 * the erasure document records, each step then a compare-and-set that moves the cursor on. Every
 * step is idempotent, so a delivery that dies anywhere is repeated by the next one (a retry, or
 * the sweeper's redelivery) and the erasure still ends the same way.
 *
 * Steps: authorization.reset at Google; delete the schedules (no run starts any more); end every
 * live job through the state machine, having first recorded how long their leases run; wait
 * (a delayed task) until no lease is live, so no step in flight can still write; delete every
 * object under `{userId}/`; then each swept collection (adapters/erasure-collections.ts); last,
 * the tombstone replaces the running erasure.
 */
import type { AuditTrail } from './audit-trail';
import { classifyApiError } from '../domain/api-error-classification';
import { userErased } from '../domain/audit-drafts';
import { erasureSteps, type ErasureRecord, type ErasureStep } from '../domain/erasure';
import { ConsentRevokedError } from '../domain/errors';
import { CONSENT_REVOKED } from '../domain/job';
import type { Job } from '../domain/model';
import type { ArchiveBucket } from '../domain/ports/archive-copier';
import type { ErasureStore } from '../domain/ports/erasure-store';
import type { ExportStore } from '../domain/ports/export-store';
import type { PortabilityApi } from '../domain/ports/portability-api';
import type { ErasureQueue } from '../domain/ports/task-queues';
import type { Logger } from '../logging';
import { quotaUserOf, type AccessTokens } from './access-tokens';
import type { JobTransitions } from './job-transitions';
import type { TaskOutcome } from './task-outcome';

export interface ErasureWorkerDeps {
  erasures: ErasureStore;
  store: Pick<ExportStore, 'getGrant' | 'liveJobsOfUser'>;
  jobs: Pick<JobTransitions, 'apply'>;
  api: () => Promise<PortabilityApi>;
  tokens: Pick<AccessTokens, 'forUser' | 'forget'>;
  bucket: () => Promise<ArchiveBucket>;
  queue: () => Promise<ErasureQueue>;
  /** The swept collections, in order (ERASURE_COLLECTIONS). */
  collections: readonly string[];
  logger: Logger;
  now: () => number;
  /** Called after each step's work and before its cursor moves: the tests' seam for a crash after step k. */
  afterStep?: (step: ErasureStep, userKey: string) => Promise<void>;
  /**
   * The audit trail: the erasure's entry (which outlives it: pseudonymous, kept AUDIT_RETENTION_DAYS)
   * is written with the finish and sealed after it. Without it, no entry is written.
   */
  audit?: Pick<AuditTrail, 'sealAfterCommit'>;
}

export interface ErasureTaskInput {
  userKey: string;
  run: number;
}

/** What a step leaves for the cursor's move: a wait for live leases, or fields written with it. */
interface StepDone {
  waitMs?: number;
  patch?: Partial<ErasureRecord>;
}

/** The lease of a live job: a Google call that starts an archive job, or a copy writing into the bucket. */
export function leaseEnd(job: Job): number {
  return Math.max(job.lease?.until ?? 0, job.state === 'COPYING' ? (job.nextCheckAt ?? 0) : 0);
}

export class ErasureWorker {
  private readonly steps: ErasureStep[];

  constructor(private readonly deps: ErasureWorkerDeps) {
    this.steps = erasureSteps(deps.collections);
  }

  async run(task: ErasureTaskInput): Promise<TaskOutcome> {
    const { erasures, now } = this.deps;
    const r = await erasures.get(task.userKey);
    if (r?.state !== 'RUNNING' || r.run !== task.run || r.userId === undefined) return { kind: 'dropped', detail: 'no such erasure running' };
    const { userKey, run } = task;
    const userId = r.userId;
    // Due now: should this delivery die, the sweeper sends the erasure again a grace period later.
    await erasures.setNextCheck(userKey, run, now());
    for (let i = r.step; i < this.steps.length; i++) {
      const step = this.steps[i] as ErasureStep;
      if (step === 'finish') {
        // The trail's entry is written in the transaction that finishes: a delivery that dies
        // before it writes none, and a redelivery after it is dropped, so there is one entry.
        const removed = { ...(await erasures.get(userKey))?.removed };
        const audit = this.deps.audit ? { userId, drafts: [userErased(userId, removed, now(), r.requestedAt)] } : undefined;
        if (!(await erasures.finish(userKey, run, i, now(), audit))) return { kind: 'dropped', detail: 'another delivery finished the erasure' };
        await this.deps.audit?.sealAfterCommit(userId);
        this.deps.tokens.forget(userId);
        this.deps.logger.info({ userKey, run }, 'erasure finished');
        return { kind: 'done', detail: 'erasure finished' };
      }
      const done = await this.carryOut(step, userId, { userKey, run }, r.removed);
      if (done.waitMs !== undefined) return this.waitForLeases(userKey, run, done.waitMs);
      await this.deps.afterStep?.(step, userKey);
      if (!(await erasures.advance(userKey, run, i, done.patch))) return { kind: 'dropped', detail: 'another delivery moved the erasure on' };
    }
    return { kind: 'dropped', detail: 'the erasure has no step left' };
  }

  /**
   * One step: the milliseconds still to wait when leases are live, or what the step's
   * compare-and-set writes with the cursor. `removed`: the counts read before the first step ran.
   */
  private async carryOut(step: ErasureStep, userId: string, t: ErasureTaskInput, removed: ErasureRecord['removed']): Promise<StepDone> {
    const { erasures } = this.deps;
    if (step.startsWith('delete:')) {
      await erasures.deleteRecords(step.slice('delete:'.length), userId, t.run);
      return {};
    }
    switch (step) {
      case 'reset-google':
        // Counted with the cursor's move, not by an increment: a delivery that dies after the
        // reset resets again on its redelivery (Google's reset is idempotent), and still counts one.
        // Nothing else counts before this first step, so `removed` is the record's current map.
        return (await this.resetAtGoogle(userId)) ? { patch: { removed: { ...removed, googleAuthorizations: 1 } } } : {};
      case 'stop-schedules':
        await erasures.deleteRecords('schedules', userId, t.run);
        return {};
      case 'end-jobs':
        await this.endJobs(userId, t);
        return {};
      case 'wait-leases': {
        const r = (await erasures.get(t.userKey)) as ErasureRecord;
        const left = (r.holdUntil ?? 0) - this.deps.now();
        return left > 0 ? { waitMs: left } : {};
      }
      case 'delete-objects': {
        // The user id has the shape the API admits (no '/'): the prefix is this user's only.
        const deleted = await (await this.deps.bucket()).deletePrefix(`${userId}/`);
        await erasures.countRemoved(t.userKey, t.run, 'objects', deleted);
        return {};
      }
      default:
        throw new Error(`Unknown erasure step ${step}`);
    }
  }

  /** True when Google reset the grant now; a grant already gone (revoked, expired, never stored) needs none. */
  private async resetAtGoogle(userId: string): Promise<boolean> {
    if (!(await this.deps.store.getGrant(userId))) return false;
    try {
      const token = await this.deps.tokens.forUser(userId);
      await (await this.deps.api()).resetAuthorization(token, quotaUserOf(userId));
      return true;
    } catch (err) {
      if (err instanceof ConsentRevokedError) return false;
      const cls = classifyApiError(err);
      // Transient: the delivery fails and is retried. Anything else will not change on a retry.
      if (cls.kind === 'transient') throw err;
      if (cls.kind !== 'unauthenticated') this.deps.logger.warn({ kind: cls.kind }, 'authorization.reset refused; erasing our side regardless');
      return false;
    } finally {
      this.deps.tokens.forget(userId);
    }
  }

  /** Records the longest live lease first (a redelivery after a crash still knows it), then ends every live job. */
  private async endJobs(userId: string, t: ErasureTaskInput): Promise<void> {
    const live = await this.deps.store.liveJobsOfUser(userId);
    const hold = Math.max(0, ...live.map(leaseEnd));
    if (hold > this.deps.now()) await this.deps.erasures.holdUntil(t.userKey, t.run, hold);
    for (const job of live) await this.deps.jobs.apply(job.id, { type: 'failed', error: CONSENT_REVOKED });
  }

  private async waitForLeases(userKey: string, run: number, waitMs: number): Promise<TaskOutcome> {
    const now = this.deps.now();
    await this.deps.erasures.setNextCheck(userKey, run, now + waitMs);
    // Named by this delivery's time: a task delivered early (clocks differ) asks for another, not for itself again.
    await (await this.deps.queue()).enqueueErasure({ userKey, run, delaySeconds: Math.ceil(waitMs / 1000), wake: `w${now}` });
    this.deps.logger.info({ userKey, run, waitSeconds: Math.ceil(waitMs / 1000) }, 'erasure waits for the leases of ended jobs');
    return { kind: 'done', detail: 'waiting for leases to end' };
  }
}
