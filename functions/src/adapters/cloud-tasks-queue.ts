/**
 * TaskQueue on Cloud Tasks: each pipeline step becomes an HTTP task that Cloud Tasks POSTs to the
 * step's function with an OIDC token. Task names are derived from (jobId, step, seq), so Cloud
 * Tasks itself deduplicates: a repeated enqueue answers ALREADY_EXISTS, which we treat as success.
 */
import { createHash } from 'node:crypto';
import { CloudTasksClient } from '@google-cloud/tasks';
import { grpcEmulatorOptions } from './grpc-emulator';
import type { ErasureQueue, ErasureTask, PipelineTask, ScheduleRunQueue, ScheduleRunTask, TaskQueue, TaskStep } from '../domain/ports/task-queues';
import type { WebhookDeliveryTask, WebhookQueue } from '../domain/ports/webhooks';
import { deliveryId } from '../domain/webhook-message';

export interface CloudTasksQueueOptions {
  client: CloudTasksClient;
  projectId: string;
  location: string;
  /** Queue for 'initiate' and 'check' (short id, e.g. `portability-check`). */
  checkQueue: string;
  /** Queue for 'copy' and 'copy-part'. */
  copyQueue: string;
  checkUrl: string;
  copyUrl: string;
  /** Whose OIDC token Cloud Tasks attaches; the receiving function verifies it. */
  serviceAccountEmail: string;
  /** The runSchedules function: receives one task per scheduled run (required for enqueueScheduleRun). */
  scheduleUrl?: string;
  /** Queue for scheduled runs (default: the check queue, whose rate limit then spreads the runs). */
  scheduleQueue?: string;
  /** The deliverWebhooks function and its queue (required for enqueueDelivery). */
  webhooks?: { queue: string; url: string };
  /** Epoch ms; injectable so tests control scheduleTime. */
  now?: () => number;
}

/** The body every pipeline task carries. */
export interface PipelineTaskBody {
  jobId: string;
  step: TaskStep;
  seq: number;
  /** 'copy-part' only. */
  part?: number;
  /** A sweeper redelivery's window: the copy step hands it on to the part tasks it enqueues again. */
  redelivery?: number;
}

const ALREADY_EXISTS = 6;

/**
 * A Cloud Tasks client. With `emulatorHost` ('host:port', e.g. CLOUD_TASKS_EMULATOR_HOST) it speaks
 * plaintext gRPC to the local stand-in and sends no credentials; otherwise it uses the defaults
 * (Application Default Credentials, cloudtasks.googleapis.com).
 */
export function createCloudTasksClient(emulatorHost?: string): CloudTasksClient {
  if (!emulatorHost) return new CloudTasksClient();
  return new CloudTasksClient(grpcEmulatorOptions(emulatorHost, 'CLOUD_TASKS_EMULATOR_HOST'));
}

/** `sha256(jobId)` hex, first 24 characters: fixed length, safe in a task id, no raw ids in names. A part task adds its part. */
export function taskIdFor(task: Pick<PipelineTask, 'jobId' | 'step' | 'seq' | 'redelivery' | 'part'>): string {
  const hash = createHash('sha256').update(task.jobId).digest('hex').slice(0, 24);
  return `${hash}-${task.step}-${task.seq}${task.part !== undefined ? `-${task.part}` : ''}${task.redelivery !== undefined ? `-r${task.redelivery}` : ''}`;
}

const onCopyQueue = (step: TaskStep): boolean => step === 'copy' || step === 'copy-part';

/** `sha256(scheduleId)` hex, 24 characters, then the run (and redelivery window): one name per run. */
export function scheduleRunTaskIdFor(task: ScheduleRunTask): string {
  const hash = createHash('sha256').update(task.scheduleId).digest('hex').slice(0, 24);
  return `${hash}-run-${task.run}${task.redelivery !== undefined ? `-r${task.redelivery}` : ''}`;
}

/** `sha256(userKey)` hex, 24 characters, then the run (and what wakes it): one name per delivery the erasure asks for. */
export function erasureTaskIdFor(task: Pick<ErasureTask, 'userKey' | 'run' | 'wake'>): string {
  const hash = createHash('sha256').update(task.userKey).digest('hex').slice(0, 24);
  return `${hash}-erase-${task.run}${task.wake !== undefined ? `-${task.wake}` : ''}`;
}

/** The body of an erasure task (the copy function runs it: its account may delete objects). */
export interface ErasureTaskBody {
  erasure: string;
  run: number;
}

export class CloudTasksQueue implements TaskQueue, ScheduleRunQueue, WebhookQueue, ErasureQueue {
  private readonly now: () => number;

  constructor(private readonly opts: CloudTasksQueueOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Full queue resource name for a step. */
  queuePath(step: TaskStep): string {
    const queue = onCopyQueue(step) ? this.opts.copyQueue : this.opts.checkQueue;
    return `projects/${this.opts.projectId}/locations/${this.opts.location}/queues/${queue}`;
  }

  /** Full task resource name for a task. */
  taskName(task: Pick<PipelineTask, 'jobId' | 'step' | 'seq' | 'redelivery' | 'part'>): string {
    return `${this.queuePath(task.step)}/tasks/${taskIdFor(task)}`;
  }

  /** One run of a schedule, POSTed to the runSchedules function as `{scheduleId, run}`. */
  async enqueueScheduleRun(task: ScheduleRunTask): Promise<void> {
    if (!this.opts.scheduleUrl) throw new Error('CloudTasksQueue: scheduleUrl is not configured');
    if (!Number.isInteger(task.run) || task.run < 1) throw new RangeError(`run must be a positive integer, got ${task.run}`);
    const parent = `projects/${this.opts.projectId}/locations/${this.opts.location}/queues/${this.opts.scheduleQueue ?? this.opts.checkQueue}`;
    await this.createHttpTask({ name: `${parent}/tasks/${scheduleRunTaskIdFor(task)}`, url: this.opts.scheduleUrl, body: { scheduleId: task.scheduleId, run: task.run }, delaySeconds: 0, deadlineSeconds: 300 });
  }

  /** One delivery of an event to an endpoint, POSTed to deliverWebhooks as `{endpointId, event}`; the queue's retry config is the backoff. */
  async enqueueDelivery(task: WebhookDeliveryTask): Promise<void> {
    const webhooks = this.opts.webhooks;
    if (!webhooks) throw new Error('CloudTasksQueue: the webhook queue is not configured');
    const parent = `projects/${this.opts.projectId}/locations/${this.opts.location}/queues/${webhooks.queue}`;
    await this.createHttpTask({ name: `${parent}/tasks/wh-${deliveryId(task.event.id, task.endpointId)}`, url: webhooks.url, body: { endpointId: task.endpointId, event: task.event }, delaySeconds: 0, deadlineSeconds: 60 });
  }

  /** An erasure's delivery, on the copy queue to the copy function (whose account deletes objects). */
  async enqueueErasure(task: ErasureTask): Promise<void> {
    if (!Number.isInteger(task.run) || task.run < 1) throw new RangeError(`run must be a positive integer, got ${task.run}`);
    const body: ErasureTaskBody = { erasure: task.userKey, run: task.run };
    await this.createHttpTask({ name: `${this.queuePath('copy')}/tasks/${erasureTaskIdFor(task)}`, url: this.opts.copyUrl, body, delaySeconds: task.delaySeconds, deadlineSeconds: 1800 });
  }

  async enqueue(task: PipelineTask): Promise<void> {
    if (!Number.isInteger(task.seq) || task.seq < 0) throw new RangeError(`seq must be a non-negative integer, got ${task.seq}`);
    if (!Number.isFinite(task.delaySeconds) || task.delaySeconds < 0) throw new RangeError(`delaySeconds must be >= 0, got ${task.delaySeconds}`);
    if (task.step === 'copy-part' && (!Number.isInteger(task.part) || (task.part as number) < 0)) throw new RangeError(`a copy-part task needs a part, got ${String(task.part)}`);
    const body: PipelineTaskBody = {
      jobId: task.jobId,
      step: task.step,
      seq: task.seq,
      ...(task.step === 'copy-part' ? { part: task.part } : {}),
      ...(task.redelivery !== undefined ? { redelivery: task.redelivery } : {}),
    };
    await this.createHttpTask({
      name: this.taskName(task),
      url: onCopyQueue(task.step) ? this.opts.copyUrl : this.opts.checkUrl,
      body,
      delaySeconds: task.delaySeconds,
      // Cloud Tasks waits at most 30 minutes for an HTTP target; a longer copy resumes in a new delivery.
      deadlineSeconds: onCopyQueue(task.step) ? 1800 : 300,
    });
  }

  /** An HTTP task POSTing `body` as JSON with an OIDC token for `url`; a name already taken is success (the idempotency we want). */
  private async createHttpTask(t: { name: string; url: string; body: object; delaySeconds: number; deadlineSeconds: number }): Promise<void> {
    const at = this.now() + Math.round(t.delaySeconds * 1000);
    try {
      await this.opts.client.createTask({
        parent: t.name.slice(0, t.name.indexOf('/tasks/')),
        task: {
          name: t.name,
          scheduleTime: { seconds: Math.floor(at / 1000), nanos: (at % 1000) * 1e6 },
          dispatchDeadline: { seconds: t.deadlineSeconds },
          httpRequest: {
            url: t.url,
            httpMethod: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: Buffer.from(JSON.stringify(t.body)),
            oidcToken: { serviceAccountEmail: this.opts.serviceAccountEmail, audience: t.url },
          },
        },
      });
    } catch (e) {
      if ((e as { code?: unknown }).code === ALREADY_EXISTS) return;
      throw e;
    }
  }
}
