/** The sweep function Cloud Scheduler calls: the same OIDC check as the task functions, then one sweep. */
import type { TaskCallerCheck } from '../domain/ports/caller-identity';
import type { Logger } from '../logging';
import type { Sweeper } from '../pipeline/sweeper';
import { refusedAsTooLarge, header, sendError, type HttpRequest, type HttpResponse } from './http-types';

export interface SweepHandlerDeps {
  sweeper: Sweeper;
  verifier: TaskCallerCheck;
  logger: Logger;
}

/** Cloud Scheduler's tick: the same OIDC check as the task functions, then one sweep. */
export function createSweepHandler(deps: SweepHandlerDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  return async (req, res) => {
    if (refusedAsTooLarge(req, res)) return;
    const denied = await deps.verifier.check(header(req, 'authorization'));
    if (denied) return sendError(res, denied.status, denied.status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED', denied.message);
    const result = await deps.sweeper.sweep();
    if (result.overdue > 0) deps.logger.info(result, 'sweep done');
    res.status(200).json(result);
  };
}
