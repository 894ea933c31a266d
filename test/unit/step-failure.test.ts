/**
 * How a step's failed Google call ends its job, pure: each class of Data Portability API error
 * becomes the job error a person reads (or the revoked consent), and a transient one is handed back
 * untouched for Cloud Tasks to retry.
 */
import { describe, expect, it } from 'vitest';
import { ConsentRevokedError, PortabilityApiError } from '../../functions/src/domain/errors';
import { errorDetail, StepFailed, toStepFailure } from '../../functions/src/pipeline/step-failure';

const api = (httpStatus: number, status: string, reason?: string, metadata: Record<string, string> = {}) =>
  new PortabilityApiError(httpStatus, status, `HTTP ${httpStatus} ${status}`, reason, metadata);

const jobErrorOf = (err: unknown): unknown => {
  expect(err).toBeInstanceOf(StepFailed);
  const failed = err as StepFailed;
  expect(failed.name).toBe('StepFailed');
  expect(failed.message).toBe(failed.jobError.message);
  return failed.jobError;
};

describe('toStepFailure', () => {
  it('hands a transient error back as it is: Cloud Tasks retries the task', () => {
    const blip = api(503, 'UNAVAILABLE');
    expect(toStepFailure(blip, 'getState')).toBe(blip);
  });

  it('a used one-time consent: the user must consent again', () => {
    expect(jobErrorOf(toStepFailure(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_ONE_TIME'), 'initiate'))).toEqual({
      code: 'ONE_TIME_CONSENT_USED',
      message: 'This one-time authorization was already used for this data: the user must consent again',
    });
  });

  it('Google\u2019s 24-hour cooldown: says when the next export is possible, when Google said', () => {
    const at = '2026-11-23T10:00:00Z';
    expect(jobErrorOf(toStepFailure(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_TIME_BASED', { timestamp_after_24hrs: at }), 'initiate'))).toEqual({
      code: 'TIME_BASED_COOLDOWN',
      message: `Google allows one export of this data per 24 hours; the next is possible after ${at}`,
      retryAt: at,
    });
    expect(jobErrorOf(toStepFailure(api(429, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED_TIME_BASED'), 'initiate'))).toEqual({
      code: 'TIME_BASED_COOLDOWN',
      message: 'Google allows one export of this data per 24 hours',
    });
  });

  it('data the user did not grant, and a revoked consent', () => {
    expect(jobErrorOf(toStepFailure(api(403, 'PERMISSION_DENIED'), 'initiate'))).toEqual({ code: 'RESOURCE_NOT_AUTHORIZED', message: 'The user did not grant access to this data' });
    expect(toStepFailure(api(401, 'UNAUTHENTICATED'), 'initiate')).toBeInstanceOf(ConsentRevokedError);
  });

  it('a refused request names Google\u2019s reason; refused on retry, the archive failed for good', () => {
    const refused = api(400, 'INVALID_ARGUMENT');
    expect(jobErrorOf(toStepFailure(refused, 'initiate'))).toEqual({ code: 'INVALID_REQUEST', message: 'Google refused the request: HTTP 400 INVALID_ARGUMENT' });
    expect(jobErrorOf(toStepFailure(refused))).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(jobErrorOf(toStepFailure(refused, 'retry'))).toEqual({
      code: 'ARCHIVE_FAILED',
      message: 'Google could not prepare the archive and refused another retry: HTTP 400 INVALID_ARGUMENT',
    });
    // An existing job at retry: Google will not retry it again either.
    expect(jobErrorOf(toStepFailure(api(409, 'ALREADY_EXISTS', undefined, { job_id: 'g1' }), 'retry'))).toMatchObject({ code: 'ARCHIVE_FAILED' });
    expect(jobErrorOf(toStepFailure('not an error', 'initiate'))).toEqual({ code: 'INVALID_REQUEST', message: 'Google refused the request: not an error' });
  });
});

describe('errorDetail', () => {
  it('an error\u2019s message, anything else as text', () => {
    expect(errorDetail(new Error('boom'))).toBe('boom');
    expect(errorDetail(42)).toBe('42');
  });
});
