/** The seams to Cloud Tasks: the pipeline's steps of a job, and the runs of a schedule. */

export type TaskStep = 'initiate' | 'check' | 'copy' | 'copy-part';

export interface PipelineTask {
  step: TaskStep;
  jobId: string;
  /** The job's sequence number the task was made for; a task whose seq is stale is dropped. */
  seq: number;
  /** Delay before delivery, seconds (0 = now). */
  delaySeconds: number;
  /** Set by the sweeper when it enqueues a step again (a distinct task name per sweep window). */
  redelivery?: number;
  /** 'copy-part' only: which byte range (0-based) of the archive under way this task copies. */
  part?: number;
}

export interface TaskQueue {
  /** Idempotent: the task name is derived from (jobId, step, seq); a duplicate is ignored. */
  enqueue(task: PipelineTask): Promise<void>;
}


export interface ScheduleRunTask {
  scheduleId: string;
  /** The run number the task claims (the schedule's runCount + 1 when it was enqueued). */
  run: number;
  /** Set when the scheduler enqueues the same run again after its lease ran out (a distinct task name). */
  redelivery?: number;
}

export interface ScheduleRunQueue {
  /** Idempotent per (scheduleId, run, redelivery). */
  enqueueScheduleRun(task: ScheduleRunTask): Promise<void>;
}


export interface ErasureTask {
  /** userDocId of the person (the task names no user id). */
  userKey: string;
  /** The erasure's run (domain/erasure.ts). */
  run: number;
  delaySeconds: number;
  /** Names the task anew: the end of a lease it waits for, or the sweeper's redelivery window. */
  wake?: string;
}

export interface ErasureQueue {
  /** Idempotent per (userKey, run, wake). */
  enqueueErasure(task: ErasureTask): Promise<void>;
}
