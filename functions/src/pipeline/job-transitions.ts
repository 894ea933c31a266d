/**
 * Commits the state machine's decisions: the one place a job is written after it is created.
 * `apply` runs `transition` inside the store's compare-and-set (so the decision sees the job as it
 * is in the transaction), then carries out the effects (next tasks) once the change has committed,
 * and tells the schedule side when a job ended. The job runner, the cancel and the reset of the
 * export service and the sweeper all write through here.
 */
import { applies, isTerminal, transition, type JobEvent } from '../domain/job';
import type { Job } from '../domain/model';
import type { PollingPolicy } from '../domain/polling-policy';
import type { ExportStore } from '../domain/ports/export-store';
import type { TaskQueue } from '../domain/ports/task-queues';
import type { Logger } from '../logging';
import type { AuditTrail } from './audit-trail';
import type { EventRelay } from './event-relay';

export interface JobTransitionsDeps {
  store: Pick<ExportStore, 'updateJob'>;
  /** Made on first use: a cancel that only records a flag enqueues nothing. */
  queue: () => Promise<TaskQueue>;
  policy: PollingPolicy;
  logger: Logger;
  now: () => number;
  /** Told after a job reached a terminal state (scheduled runs fold the outcome into their schedule). Failures are logged, not raised. */
  onJobFinished?: (job: Job) => Promise<void>;
  /** Publishes the events a change wrote to the outbox (when apps are told by Pub/Sub). */
  relay?: EventRelay;
  /** Seals the audit drafts a change wrote (after its commit; never throws). */
  audit?: Pick<AuditTrail, 'sealAfterCommit'>;
}

/** What `apply` did: the job before and after, or (not applied) the job as it was found, if it exists. */
export type Applied = { applied: true; before: Job; job: Job } | { applied: false; current?: Job };

export class JobTransitions {
  constructor(private readonly deps: JobTransitionsDeps) {}

  /**
   * Applies `event` if it applies to the job as stored (and the job is still at `seq`, when given:
   * a step's own events; a user's cancel or reset applies at any seq). `redelivery` names the
   * 'copy-part' tasks it enqueues anew (a sweep's redelivery of a lost part).
   */
  async apply(jobId: string, event: JobEvent, opts: { seq?: number; redelivery?: number } = {}): Promise<Applied> {
    let decided: ReturnType<typeof transition> | undefined;
    let found: Job | undefined;
    const updated = await this.deps.store.updateJob(jobId, (current) => {
      found = current;
      decided = undefined;
      const now = this.deps.now();
      if ((opts.seq !== undefined && current.seq !== opts.seq) || !applies(current, event, now)) return undefined;
      decided = transition(current, event, now, this.deps.policy);
      return decided.job;
    });
    if (!updated || !decided) return found ? { applied: false, current: found } : { applied: false };
    const { before, after } = updated;
    const queue = decided.effects.length > 0 ? await this.deps.queue() : undefined;
    for (const effect of decided.effects) {
      const [part, redelivery] = effect.step === 'copy-part' ? [effect.part, opts.redelivery] : [undefined, effect.redelivery];
      await queue?.enqueue({ step: effect.step, jobId, seq: after.seq, delaySeconds: effect.delaySeconds, part, redelivery });
    }
    if (after.seq !== before.seq || after.state !== before.state) {
      this.deps.logger.info({ jobId, exportId: after.exportId, resource: after.resource, event: event.type, state: after.state }, 'job state changed');
    }
    if (this.deps.relay) await this.deps.relay.relay(updated.events);
    // Not awaited: the drafts are committed with the change, and the step's answer (and so the
    // pipeline's pace) need not wait for the chain; a seal cut short is the sweeper's to finish.
    if (updated.audited && this.deps.audit) void this.deps.audit.sealAfterCommit(after.userId);
    if (isTerminal(after.state) && !isTerminal(before.state) && this.deps.onJobFinished) {
      // The job's own outcome is committed; a failed notification is repaired when the next run reads the job.
      await this.deps.onJobFinished(after).catch((err: unknown) => this.deps.logger.warn({ jobId, err }, 'could not report the finished job to its schedule'));
    }
    return { applied: true, before, job: after };
  }
}
