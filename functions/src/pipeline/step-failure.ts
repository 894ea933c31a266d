/**
 * How a step's failures end a job: `StepFailed` carries the terminal job error a step decided on,
 * and `toStepFailure` maps a Data Portability API error to one (or leaves a transient error as it
 * is, for Cloud Tasks to retry the task).
 */
import { classifyApiError, type PortabilityMethod } from '../domain/api-error-classification';
import { ConsentRevokedError } from '../domain/errors';
import type { JobError } from '../domain/model';

export class StepFailed extends Error {
  constructor(readonly jobError: JobError) {
    super(jobError.message);
    this.name = 'StepFailed';
  }
}

export function errorDetail(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Maps an API error to a terminal job error (StepFailed, or ConsentRevokedError), or returns it when it is transient. */
export function toStepFailure(err: unknown, method?: PortabilityMethod): unknown {
  const cls = classifyApiError(err, method);
  switch (cls.kind) {
    case 'transient':
      return err;
    case 'one-time-exhausted':
      return new StepFailed({ code: 'ONE_TIME_CONSENT_USED', message: 'This one-time authorization was already used for this data: the user must consent again' });
    case 'time-based-cooldown':
      return new StepFailed({
        code: 'TIME_BASED_COOLDOWN',
        message: `Google allows one export of this data per 24 hours${cls.retryAt ? `; the next is possible after ${cls.retryAt}` : ''}`,
        ...(cls.retryAt ? { retryAt: cls.retryAt } : {}),
      });
    case 'not-authorized':
      return new StepFailed({ code: 'RESOURCE_NOT_AUTHORIZED', message: 'The user did not grant access to this data' });
    case 'unauthenticated':
      return new ConsentRevokedError();
    case 'already-exists':
    case 'invalid':
      if (method === 'retry') {
        // Google will not retry this job again (its retries are used up, or it is no longer FAILED).
        return new StepFailed({ code: 'ARCHIVE_FAILED', message: `Google could not prepare the archive and refused another retry: ${errorDetail(err)}` });
      }
      return new StepFailed({ code: 'INVALID_REQUEST', message: `Google refused the request: ${errorDetail(err)}` });
  }
}
