/**
 * Finds jobs whose next step is overdue (a task lost, a copy that died with its instance) and
 * enqueues that step again. Runs on a Cloud Scheduler tick; reads through the nextCheckAt index,
 * never scanning every job; settles exports a dead instance left unsettled. Redelivery is safe: every step is idempotent and checks the job's seq.
 */
import { STEP_OF } from '../domain/job';
import type { PollingPolicy } from '../domain/polling-policy';
import type { ExportStore } from '../domain/ports/export-store';
import type { ErasureStore } from '../domain/ports/erasure-store';
import type { ErasureQueue, TaskQueue } from '../domain/ports/task-queues';
import type { Logger } from '../logging';
import type { AuditTrail } from './audit-trail';
import type { GrantExpiryWarnings } from './grant-expiry-warnings';
import type { EventRelay } from './event-relay';
import { JobTransitions } from './job-transitions';

const BATCH = 500;
/** Audit drafts are sealed by the sweeper only this many grace periods after they were written. */
const AUDIT_GRACE_FACTOR = 3;

export interface SweepResult {
  overdue: number;
  requeued: number;
  /** Exports left to settle (their last job's instance died before writing the export's final state). */
  settled: number;
  /** Events left in the outbox (a publish failed, or its instance died) published by this sweep. */
  events: number;
  /** Audit drafts left pending (a seal failed, or its instance died) sealed by this sweep. */
  audit?: number;
  /** Warnings that time-based access ends soon written by this sweep. */
  expiryWarnings?: number;
  /** RUNNING erasures whose delivery is overdue (a task lost), enqueued again; only with `erasures`. */
  erasures?: number;
}

export interface SweeperDeps {
  store: ExportStore;
  queue: TaskQueue;
  policy: PollingPolicy;
  graceSeconds: number;
  logger: Logger;
  /** Publishes what the outbox still holds after a grace period. */
  relay?: EventRelay;
  /** Warns that time-based access ends soon (GRANT_EXPIRY_WARNING_DAYS ahead). */
  expiryWarnings?: Pick<GrantExpiryWarnings, 'run'>;
  /** Seals audit drafts a crash left pending, after a grace period. */
  audit?: Pick<AuditTrail, 'sealAfterCommit' | 'sealPending'>;
  /** Erasures whose delivery is overdue are enqueued again (at-least-once, like jobs). */
  erasures?: { store: Pick<ErasureStore, 'listOverdue' | 'setNextCheck'>; queue: ErasureQueue };
  now?: () => number;
}

export class Sweeper {
  private readonly now: () => number;
  private readonly jobs: JobTransitions;

  constructor(private readonly deps: SweeperDeps) {
    this.now = deps.now ?? Date.now;
    const { store, queue, policy, logger, relay, audit } = deps;
    this.jobs = new JobTransitions({ store, queue: async () => queue, policy, logger, now: this.now, relay, audit });
  }

  async sweep(): Promise<SweepResult> {
    const now = this.now();
    const graceMs = this.deps.graceSeconds * 1000;
    const overdue = await this.deps.store.listOverdueJobs(now - graceMs, BATCH);
    // One redelivery name per grace window: two sweeps in the same window enqueue one task.
    const redelivery = Math.floor(now / graceMs);
    let requeued = 0;
    for (const job of overdue) {
      // Pushed a grace period on, so the next sweep leaves it to this redelivery.
      const done = await this.jobs.apply(job.id, { type: 'redelivered', nextCheckAt: now + graceMs, redelivery }, { seq: job.seq });
      if (!done.applied) continue;
      requeued++;
      this.deps.logger.warn({ jobId: job.id, state: job.state, step: STEP_OF[job.state], overdueSeconds: Math.round((now - (job.nextCheckAt ?? now)) / 1000) }, 'overdue job re-enqueued');
    }
    const settled = await this.deps.store.settleExports(now - graceMs, BATCH);
    await this.deps.relay?.relay(settled.events);
    if (settled.exports > 0) this.deps.logger.warn({ exports: settled.exports }, 'exports settled after their last job\'s instance died');
    // Independent of each other: run together, so the tick (and the next redelivery) is not held up.
    const [events, audit, expiryWarnings, erasures] = await Promise.all([
      this.deps.relay ? this.deps.relay.flush(now - graceMs) : 0,
      // Well after the seals that follow each commit: the sweeper only finishes what they left.
      this.deps.audit ? this.deps.audit.sealPending(now - AUDIT_GRACE_FACTOR * graceMs) : 0,
      this.deps.expiryWarnings ? this.deps.expiryWarnings.run() : 0,
      this.deps.erasures ? this.sweepErasures(now, graceMs, redelivery) : 0,
    ]);
    return {
      overdue: overdue.length,
      requeued,
      settled: settled.exports,
      events,
      ...(this.deps.audit ? { audit } : {}),
      ...(this.deps.expiryWarnings ? { expiryWarnings } : {}),
      ...(this.deps.erasures ? { erasures } : {}),
    };
  }

  private async sweepErasures(now: number, graceMs: number, redelivery: number): Promise<number> {
    const { store, queue } = this.deps.erasures as NonNullable<SweeperDeps['erasures']>;
    const overdue = await store.listOverdue(now - graceMs, BATCH);
    for (const { userKey, record } of overdue) {
      await store.setNextCheck(userKey, record.run, now + graceMs);
      await queue.enqueueErasure({ userKey, run: record.run, delaySeconds: 0, wake: `r${redelivery}` });
      this.deps.logger.warn({ userKey, run: record.run, step: record.step }, 'overdue erasure re-enqueued');
    }
    return overdue.length;
  }
}
