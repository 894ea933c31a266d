/**
 * Finds jobs whose next step is overdue (a task lost, a copy that died with its instance) and
 * enqueues that step again. Runs on a Cloud Scheduler tick; reads through the nextCheckAt index,
 * never scanning every job. Redelivery is safe: every step is idempotent and checks the job's seq.
 */
import type { JobState } from '../domain/job';
import type { ExportStore, TaskQueue, TaskStep } from '../domain/ports';
import type { Logger } from '../logging';

const STEP_OF: Partial<Record<JobState, TaskStep>> = { INITIATING: 'initiate', WAITING: 'check', COPYING: 'copy' };
const BATCH = 500;

export interface SweepResult {
  overdue: number;
  requeued: number;
}

export class Sweeper {
  constructor(
    private readonly deps: { store: ExportStore; queue: TaskQueue; graceSeconds: number; logger: Logger; now?: () => number },
  ) {}

  async sweep(): Promise<SweepResult> {
    const now = (this.deps.now ?? Date.now)();
    const graceMs = this.deps.graceSeconds * 1000;
    const overdue = await this.deps.store.listOverdueJobs(now - graceMs, BATCH);
    // One redelivery name per grace window: two sweeps in the same window enqueue one task.
    const window = Math.floor(now / graceMs);
    let requeued = 0;
    for (const job of overdue) {
      const step = STEP_OF[job.state];
      if (!step) continue;
      if (!(await this.deps.store.postponeJob(job.id, job.seq, now + graceMs))) continue;
      await this.deps.queue.enqueue({ step, jobId: job.id, seq: job.seq, delaySeconds: 0, redelivery: window });
      requeued++;
      this.deps.logger.warn({ jobId: job.id, state: job.state, step, overdueSeconds: Math.round((now - (job.nextCheckAt ?? now)) / 1000) }, 'overdue job re-enqueued');
    }
    return { overdue: overdue.length, requeued };
  }
}

