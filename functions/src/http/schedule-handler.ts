/**
 * The private runSchedules function. Two callers, both with an OIDC token for this function's URL
 * from the invoker service account:
 *   Cloud Scheduler, every few minutes, with no body      -> one tick: fan out the due schedules
 *   Cloud Tasks, one task per due schedule, {scheduleId, run} -> start that run (at most once)
 * Answers follow the task handler's table: done or dropped -> 200; a fault -> 500 (retried).
 */
import { z } from 'zod';
import type { Logger } from '../logging';
import { traceFields } from '../logging';
import type { ScheduleService } from '../pipeline/schedule-service';
import { safeInt } from '../zod-helpers';
import { header, refusedAsTooLarge, sendError, type HttpRequest, type HttpResponse } from './http-types';
import type { TaskCallerCheck } from '../domain/ports/caller-identity';

const runBody = z.strictObject({
  scheduleId: z.string().regex(/^[0-9a-f]{20}$/),
  run: safeInt().min(1),
});

export interface ScheduleHandlerDeps {
  schedules: ScheduleService;
  verifier: TaskCallerCheck;
  projectId: string;
  logger: Logger;
}

const isEmpty = (body: unknown): boolean =>
  body === undefined || body === null || body === '' || (Buffer.isBuffer(body) && body.length === 0) || (typeof body === 'object' && Object.keys(body).length === 0);

export function createScheduleHandler(deps: ScheduleHandlerDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  return async (req, res) => {
    if (refusedAsTooLarge(req, res)) return;
    const denied = await deps.verifier.check(header(req, 'authorization'));
    if (denied) return sendError(res, denied.status, denied.status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED', denied.message);
    if (req.method !== 'POST') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'POST only');
    const log = deps.logger.child(traceFields(deps.projectId, header(req, 'x-cloud-trace-context')));
    try {
      if (isEmpty(req.body)) {
        const result = await deps.schedules.tick();
        if (result.due > 0) log.info(result, 'schedule tick done');
        return void res.status(200).json(result);
      }
      const parsed = runBody.safeParse(req.body);
      if (!parsed.success) {
        // A malformed task never succeeds: 2xx so Cloud Tasks drops it.
        log.warn({}, 'dropped a malformed schedule task');
        return sendError(res, 200, 'DROPPED', 'Malformed task dropped');
      }
      const outcome = await deps.schedules.startRun(parsed.data);
      log.info({ scheduleId: parsed.data.scheduleId, run: parsed.data.run, outcome: outcome.kind, detail: outcome.detail }, 'schedule run handled');
      res.status(200).json({ outcome: outcome.kind, detail: outcome.detail });
    } catch (err) {
      log.error({ err }, 'schedule request failed');
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'Internal error');
    }
  };
}
