/**
 * The private functions Cloud Tasks calls. Each request must carry a Google-signed OIDC token for
 * this function's URL from the configured service account; then one table maps the step's
 * outcome to the answer Cloud Tasks understands:
 *   done or dropped (stale, duplicate, recorded failure) -> 200
 *   throttled                                            -> 503 + Retry-After
 *   failed transiently                                   -> 500 (Cloud Tasks retries)
 * and once a task's retry budget is spent, the failure is recorded on the job and answered 200.
 */
import { z } from 'zod';
import type { TaskStep } from '../domain/ports/task-queues';
import { type Logger, traceFields } from '../logging';
import type { ErasureWorker } from '../pipeline/erasure-worker';
import type { JobRunner } from '../pipeline/job-runner';
import type { TaskOutcome } from '../pipeline/task-outcome';
import type { TaskCallerCheck } from '../domain/ports/caller-identity';
import { safeInt } from '../zod-helpers';
import { header, refusedAsTooLarge, sendError, type HttpRequest, type HttpResponse } from './http-types';

const taskBody = z
  .strictObject({
    jobId: z.string().regex(/^[0-9a-f]{20}$/),
    step: z.enum(['initiate', 'check', 'copy', 'copy-part']),
    seq: safeInt().min(0),
    /** 'copy-part' only: which range of the archive (compose takes at most 32 parts). */
    part: z.number().int().min(0).max(31).optional(),
    /** Set on a sweeper redelivery: part tasks enqueued again get names of their own. */
    redelivery: safeInt().min(0).optional(),
  })
  .refine((t) => (t.step === 'copy-part') === (t.part !== undefined), { message: 'part is required by copy-part and allowed nowhere else', path: ['part'] });

/** An erasure's delivery (adapters/cloud-tasks-queue.ts ErasureTaskBody). */
const erasureTaskBody = z.strictObject({ erasure: z.string().regex(/^[0-9a-f]{64}$/), run: safeInt().min(1) });

export interface TaskHandlerDeps {
  runner: JobRunner;
  verifier: TaskCallerCheck;
  steps: readonly TaskStep[];
  retryBudget: number;
  /** Runs erasure tasks (the copy function); without it they are dropped as malformed. */
  erasures?: Pick<ErasureWorker, 'run'>;
  projectId: string;
  logger: Logger;
}

export function statusFor(outcome: TaskOutcome): { status: number; retryAfter?: number } {
  switch (outcome.kind) {
    case 'done':
    case 'dropped':
      return { status: 200 };
    case 'throttle':
      return { status: 503, retryAfter: outcome.retryAfterSeconds };
    case 'retry':
      return { status: 500 };
  }
}

export function createTaskHandler(deps: TaskHandlerDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  return async (req, res) => {
    if (refusedAsTooLarge(req, res)) return;
    const denied = await deps.verifier.check(header(req, 'authorization'));
    if (denied) return sendError(res, denied.status, denied.status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED', denied.message);
    if (req.method !== 'POST') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Tasks are POSTed');
    const erasure = deps.erasures ? erasureTaskBody.safeParse(req.body) : undefined;
    if (erasure?.success && deps.erasures) return runErasure(deps.erasures, erasure.data, deps, req, res);
    const parsed = taskBody.safeParse(req.body);
    if (!parsed.success || !deps.steps.includes(parsed.data.step)) {
      // A malformed task will never succeed: answer 2xx so Cloud Tasks drops it.
      deps.logger.warn({ steps: deps.steps }, 'dropped a malformed task');
      return sendError(res, 200, 'DROPPED', 'Malformed task dropped');
    }
    const task = parsed.data;
    const retryCount = Number(header(req, 'x-cloudtasks-taskretrycount') ?? '0') || 0;
    const log = deps.logger.child({ jobId: task.jobId, step: task.step, seq: task.seq, part: task.part, retryCount, ...traceFields(deps.projectId, header(req, 'x-cloud-trace-context')) });
    let outcome: TaskOutcome;
    try {
      outcome = await deps.runner.run({ ...task, delaySeconds: 0 });
    } catch (err) {
      log.error({ err }, 'task step failed');
      outcome = { kind: 'retry', detail: err instanceof Error ? err.message : String(err) };
    }
    if (outcome.kind !== 'done' && outcome.kind !== 'dropped' && retryCount + 1 >= deps.retryBudget) {
      await deps.runner.failById(task.jobId, {
        code: 'RETRY_BUDGET_EXHAUSTED',
        message: `The ${task.step} step kept failing after ${retryCount + 1} attempts: ${outcome.detail}`.slice(0, 500),
      });
      log.error({ detail: outcome.detail }, 'retry budget spent; job failed');
      return void res.status(200).json({ outcome: 'failed', detail: 'retry budget spent' });
    }
    const { status, retryAfter } = statusFor(outcome);
    if (retryAfter !== undefined) res.set('Retry-After', String(retryAfter));
    if (outcome.kind === 'retry') log.warn({ detail: outcome.detail }, 'task will be retried');
    else log.info({ outcome: outcome.kind, detail: outcome.detail }, 'task handled');
    res.status(status).json({ outcome: outcome.kind, detail: outcome.detail });
  };
}

/**
 * An erasure never spends a retry budget: it is retried until it finishes (a step that keeps
 * failing shows in the logs, and the sweeper sends it again should Cloud Tasks give up).
 */
async function runErasure(worker: Pick<ErasureWorker, 'run'>, task: { erasure: string; run: number }, deps: TaskHandlerDeps, req: HttpRequest, res: HttpResponse): Promise<void> {
  const log = deps.logger.child({ userKey: task.erasure, run: task.run, ...traceFields(deps.projectId, header(req, 'x-cloud-trace-context')) });
  let outcome: TaskOutcome;
  try {
    outcome = await worker.run({ userKey: task.erasure, run: task.run });
  } catch (err) {
    log.error({ err }, 'erasure step failed');
    outcome = { kind: 'retry', detail: err instanceof Error ? err.message : String(err) };
  }
  const { status, retryAfter } = statusFor(outcome);
  if (retryAfter !== undefined) res.set('Retry-After', String(retryAfter));
  if (outcome.kind !== 'retry') log.info({ outcome: outcome.kind, detail: outcome.detail }, 'erasure task handled');
  res.status(status).json({ outcome: outcome.kind, detail: outcome.detail });
}
