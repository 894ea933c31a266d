/**
 * The private deliverWebhooks function: Cloud Tasks POSTs one `{endpointId, event}` per delivery,
 * with an OIDC token for this function's URL from the invoker service account. The answers follow
 * the task handler's table (statusFor): delivered, given up or dropped -> 200; retry -> 500, and
 * the queue's backoff decides when the next attempt comes.
 */
import { z } from 'zod';
import { EVENT_TYPES, type PipelineEvent } from '../domain/events';
import type { TaskCallerCheck } from '../domain/ports/caller-identity';
import { type Logger, traceFields } from '../logging';
import type { WebhookDelivery } from '../pipeline/webhook-delivery';
import type { TaskOutcome } from '../pipeline/task-outcome';
import { header, refusedAsTooLarge, sendError, type HttpRequest, type HttpResponse } from './http-types';
import { statusFor } from './task-handler';

const deliveryBody = z.strictObject({
  endpointId: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  event: z.strictObject({
    id: z.string().min(1).max(200),
    type: z.enum(EVENT_TYPES),
    source: z.string().min(1).max(200),
    subject: z.string().min(1).max(200).optional(),
    time: z.string().datetime({ offset: true }),
    attributes: z.strictObject({ type: z.enum(EVENT_TYPES), userIdHash: z.string().regex(/^[0-9a-f]{64}$/), exportId: z.string().optional(), scheduleId: z.string().optional(), state: z.string().regex(/^[A-Z_]+$/) }),
    data: z.record(z.unknown()),
  }),
});

export interface WebhookTaskHandlerDeps {
  delivery: () => Promise<WebhookDelivery>;
  verifier: TaskCallerCheck;
  projectId: string;
  logger: Logger;
}

export function createWebhookTaskHandler(deps: WebhookTaskHandlerDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  return async (req, res) => {
    if (refusedAsTooLarge(req, res)) return;
    const denied = await deps.verifier.check(header(req, 'authorization'));
    if (denied) return sendError(res, denied.status, denied.status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED', denied.message);
    if (req.method !== 'POST') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'Tasks are POSTed');
    // The relay wrote the event; the schema checks its shape, not each state's spelling.
    const parsed = deliveryBody.safeParse(req.body);
    if (!parsed.success) {
      // A malformed task will never succeed: answer 2xx so Cloud Tasks drops it.
      deps.logger.warn({}, 'dropped a malformed webhook task');
      return sendError(res, 200, 'DROPPED', 'Malformed task dropped');
    }
    const attempt = (Number(header(req, 'x-cloudtasks-taskretrycount') ?? '0') || 0) + 1;
    const log = deps.logger.child({ endpointId: parsed.data.endpointId, eventId: parsed.data.event.id, attempt, ...traceFields(deps.projectId, header(req, 'x-cloud-trace-context')) });
    let outcome: TaskOutcome;
    try {
      outcome = await (await deps.delivery()).deliver({ endpointId: parsed.data.endpointId, event: parsed.data.event as unknown as PipelineEvent }, attempt);
    } catch (err) {
      log.error({ err }, 'webhook delivery step failed');
      outcome = { kind: 'retry', detail: err instanceof Error ? err.message : String(err) };
    }
    const { status } = statusFor(outcome);
    res.status(status).json({ outcome: outcome.kind, detail: outcome.detail });
  };
}
