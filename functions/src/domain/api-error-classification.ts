/**
 * What an error from the Data Portability API means for the pipeline. Pure: no I/O.
 *
 * Classified on `ErrorInfo.reason` first, then the google.rpc status name, then the HTTP code,
 * because the same situation comes back with different codes (practitioners report 400, 409 and
 * 429 for the time-based cooldown) while the reason names it exactly.
 */
import { PortabilityApiError } from './errors';

export type ApiErrorClass =
  /** An identical job is still running: adopt its id (makes initiate idempotent). */
  | { kind: 'already-exists'; jobId: string }
  /** One-time consent already used for these resources: the user must consent again. */
  | { kind: 'one-time-exhausted'; previousJobIds: string[] }
  /** Time-based access, exported within the last 24 h: try again at `retryAt` (RFC 3339) when known. */
  | { kind: 'time-based-cooldown'; retryAt?: string }
  /** The token does not carry the resources' scopes (partial consent). */
  | { kind: 'not-authorized' }
  /** The access token is not (or no longer) valid: refresh it, or the user must consent again. */
  | { kind: 'unauthenticated' }
  /** Back off and try the same call again. */
  | { kind: 'transient'; retryAfterSeconds?: number }
  /** A request the API will never accept as sent: a bug or a rule broken; do not retry. */
  | { kind: 'invalid'; message: string };

/** The API method that failed, when known; it narrows what an ambiguous status can mean. */
export type PortabilityMethod = 'initiate' | 'getState' | 'retry' | 'cancel' | 'resetAuthorization' | 'checkAccessType';

const UNAUTHENTICATED_REASONS = new Set(['ACCESS_TOKEN_EXPIRED', 'ACCESS_TOKEN_TYPE_UNSUPPORTED', 'CREDENTIALS_MISSING', 'ACCOUNT_STATE_INVALID']);
const NOT_AUTHORIZED_REASONS = new Set(['ACCESS_TOKEN_SCOPE_INSUFFICIENT']);
const TRANSIENT_REASONS = new Set(['RATE_LIMIT_EXCEEDED', 'RESOURCE_PROJECT_INVALID_TEMPORARILY', 'BACKEND_UNAVAILABLE']);
const INVALID_REASONS = new Set(['SERVICE_DISABLED', 'API_KEY_INVALID', 'CONSUMER_INVALID', 'USER_PROJECT_DENIED']);
const TRANSIENT_STATUSES = new Set(['RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'INTERNAL', 'DEADLINE_EXCEEDED', 'ABORTED', 'UNKNOWN']);
const INVALID_STATUSES = new Set(['INVALID_ARGUMENT', 'NOT_FOUND', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'CANCELLED', 'DATA_LOSS']);
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/** `metadata.previous_job_ids` as a list, whether sent as `a,b`, `[a, b]` or a JSON array. */
export function parseJobIdList(value: string | undefined): string[] {
  if (!value) return [];
  try {
    const parsed: unknown = JSON.parse(value);
    if (Array.isArray(parsed)) return parsed.map(String).filter((s) => s.length > 0);
  } catch {
    // not JSON: a plain list
  }
  return value
    .replace(/^\s*\[|\]\s*$/g, '')
    .split(/[\s,]+/)
    .map((s) => s.replace(/^["']|["']$/g, ''))
    .filter((s) => s.length > 0);
}

function cooldown(metadata: Record<string, string>): ApiErrorClass {
  const at = metadata.timestamp_after_24hrs;
  return at && RFC3339.test(at) && !Number.isNaN(Date.parse(at)) ? { kind: 'time-based-cooldown', retryAt: at } : { kind: 'time-based-cooldown' };
}

function transient(retryAfterSeconds: number | undefined): ApiErrorClass {
  return retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds) && retryAfterSeconds >= 0
    ? { kind: 'transient', retryAfterSeconds }
    : { kind: 'transient' };
}

function invalid(e: PortabilityApiError): ApiErrorClass {
  return { kind: 'invalid', message: e.message };
}

function classifyApi(e: PortabilityApiError, method: PortabilityMethod | undefined): ApiErrorClass {
  const md = e.metadata ?? {};
  switch (e.reason) {
    case 'ALREADY_EXISTS_ONE_TIME':
    case 'ALREADY_EXISTS_TIME_BASED':
      return md.job_id ? { kind: 'already-exists', jobId: md.job_id } : { kind: 'invalid', message: `${e.reason} without a job_id` };
    case 'RESOURCE_EXHAUSTED_ONE_TIME':
      return { kind: 'one-time-exhausted', previousJobIds: parseJobIdList(md.previous_job_ids) };
    case 'RESOURCE_EXHAUSTED_TIME_BASED':
      return cooldown(md);
  }
  if (e.reason) {
    if (UNAUTHENTICATED_REASONS.has(e.reason)) return { kind: 'unauthenticated' };
    if (NOT_AUTHORIZED_REASONS.has(e.reason)) return { kind: 'not-authorized' };
    if (TRANSIENT_REASONS.has(e.reason)) return transient(e.retryAfterSeconds);
    if (INVALID_REASONS.has(e.reason)) return invalid(e);
  }

  switch (e.status) {
    case 'ALREADY_EXISTS':
      return md.job_id ? { kind: 'already-exists', jobId: md.job_id } : invalid(e);
    case 'UNAUTHENTICATED':
      return { kind: 'unauthenticated' };
    case 'PERMISSION_DENIED':
      return { kind: 'not-authorized' };
    case 'FAILED_PRECONDITION':
      // The reference documents FAILED_PRECONDITION for the time-based cooldown of initiate; on
      // retry/cancel it means "wrong job state", which no waiting fixes.
      return method === undefined || method === 'initiate' ? cooldown(md) : invalid(e);
  }
  if (TRANSIENT_STATUSES.has(e.status)) return transient(e.retryAfterSeconds);
  if (INVALID_STATUSES.has(e.status)) return invalid(e);

  const code = e.httpStatus;
  if (code === 401) return { kind: 'unauthenticated' };
  if (code === 403) return { kind: 'not-authorized' };
  if (code === 408 || code === 409 || code === 425 || code === 429 || code >= 500 || code === 0) return transient(e.retryAfterSeconds);
  return invalid(e);
}

function isNetworkError(err: Error): boolean {
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return true;
  const withCode = (x: unknown): string | undefined =>
    typeof x === 'object' && x !== null && typeof (x as { code?: unknown }).code === 'string' ? (x as { code: string }).code : undefined;
  const code = withCode(err) ?? withCode((err as { cause?: unknown }).cause);
  if (code && NETWORK_CODES.has(code)) return true;
  // undici's fetch rejects with `TypeError: fetch failed` (the cause says why) on any network failure.
  return err.name === 'TypeError' && err.message === 'fetch failed';
}

/**
 * Classifies anything a PortabilityApi call threw. `method` is optional; without it an ambiguous
 * FAILED_PRECONDITION is read as the initiate cooldown (the documented case).
 */
export function classifyApiError(err: unknown, method?: PortabilityMethod): ApiErrorClass {
  if (err instanceof PortabilityApiError || (err instanceof Error && err.name === 'PortabilityApiError' && 'httpStatus' in err)) {
    return classifyApi(err as PortabilityApiError, method);
  }
  if (err instanceof Error) {
    // Raised by the OAuth token client when a refresh answers invalid_grant.
    if (err.name === 'ConsentRevokedError') return { kind: 'unauthenticated' };
    if (isNetworkError(err)) return { kind: 'transient' };
    return { kind: 'invalid', message: err.message };
  }
  return { kind: 'invalid', message: String(err) };
}
