/**
 * Every error class of the domain, in one place. First those the use cases raise for their
 * callers: the HTTP layer maps each to one status code, and anything else is a server fault (500),
 * never the client's. Then those adapters raise and the pipeline understands.
 */
import type { PartedSource } from './ports/archive-copier';

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

// ---------- Raised by adapters, understood by the pipeline ----------

/**
 * A non-2xx answer of the Data Portability API, parsed from Google's error body
 * `{error: {code, message, status, details: [{'@type': '...ErrorInfo', reason, metadata}]}}`.
 * `message` never contains a token or a signed URL.
 */
export class PortabilityApiError extends Error {
  constructor(
    readonly httpStatus: number,
    /** google.rpc status name, e.g. `FAILED_PRECONDITION`; '' when the body had none. */
    readonly status: string,
    message: string,
    /** `ErrorInfo.reason`, e.g. `ALREADY_EXISTS_ONE_TIME`. */
    readonly reason?: string,
    readonly metadata: Record<string, string> = {},
    /** Seconds from a `Retry-After` header, when sent. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'PortabilityApiError';
  }
}

// ---------- OAuth (Google's token endpoint) ----------

/** The refresh token no longer works (revoked, expired, `invalid_grant`): the user must consent again. */
export class ConsentRevokedError extends Error {
  constructor(message = 'The stored Google authorization is no longer valid; the user must consent again') {
    super(message);
    this.name = 'ConsentRevokedError';
  }
}

/** The code could not be exchanged (bad, used or expired code, wrong redirect URI or PKCE verifier). */
export class AuthorizationCodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthorizationCodeError';
  }
}

// ---------- Caller identity (ID tokens of the frontend's users) ----------

export class UnauthenticatedError extends Error {
  constructor(message = 'A valid ID token is required') {
    super(message);
    this.name = 'UnauthenticatedError';
  }
}

// ---------- Cloud Tasks ----------

/** The signed URL answered 400/403 (expired): fetch fresh URLs and try again. */
export class ArchiveUrlExpiredError extends Error {
  constructor(message = 'The signed archive URL has expired') {
    super(message);
    this.name = 'ArchiveUrlExpiredError';
  }
}

/** The URL is not allowed (scheme, host) or the bytes did not match: retrying the same URL will not help. */
export class ArchiveRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveRejectedError';
  }
}

export class ArchiveNeedsPartsError extends Error {
  constructor(readonly source: PartedSource) {
    super(`The archive is ${source.size} bytes: copy it in parts`);
    this.name = 'ArchiveNeedsPartsError';
  }
}

/** Some part objects are not (or no longer) there to compose: copy these parts (0-based) again. */
export class ArchivePartsMissingError extends Error {
  constructor(readonly missing: number[]) {
    super(`Archive parts missing: ${missing.map((i) => i + 1).join(', ')}`);
    this.name = 'ArchivePartsMissingError';
  }
}

/** The copy was stopped on purpose (deadline) or died part-way; its checkpoint can resume it. */
export class CopyInterruptedError extends Error {
  constructor(message = 'The archive copy was interrupted') {
    super(message);
    this.name = 'CopyInterruptedError';
  }
}


/** The event does not apply to the job's current state (a stale or duplicate delivery). */
export class InvalidTransitionError extends Error {
  constructor(state: string, event: string) {
    super(`Event ${event} does not apply to a job in state ${state}`);
    this.name = 'InvalidTransitionError';
  }
}

/** An archive is not a zip, or its central directory is damaged: the copy stands, the manifest becomes a warning. */
export class ArchiveFormatError extends Error {
  constructor(
    readonly kind: 'NOT_ZIP' | 'DAMAGED',
    message: string,
  ) {
    super(message);
    this.name = 'ArchiveFormatError';
  }
}
