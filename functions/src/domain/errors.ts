/**
 * Errors the use cases raise for their callers. The HTTP layer maps each to one status code;
 * anything else is a server fault (500) and never the client's.
 */
export type RequestErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429;

export class RequestError extends Error {
  constructor(
    readonly status: RequestErrorStatus,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

export const invalid = (field: string, message: string): RequestError => new RequestError(400, 'INVALID_ARGUMENT', message, field);
export const notFound = (what: string): RequestError => new RequestError(404, 'NOT_FOUND', `${what} not found`);
export const conflict = (code: string, message: string): RequestError => new RequestError(409, code, message);

/** A dependency (Google's API, storage) is unavailable for now: the client may try again later. */
export class UnavailableError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds = 30,
  ) {
    super(message);
    this.name = 'UnavailableError';
  }
}

/** An adapter's error that says trying again later may help (`transient: true`, e.g. a token endpoint outage). */
export function isTransientError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { transient?: unknown }).transient === true;
}
