/**
 * Checks that a request to a private function (the task, sweep and schedule functions) comes from
 * Cloud Tasks or Cloud Scheduler: a Google-signed OIDC token for this function's own URL, minted
 * for the configured invoker service account with a verified email.
 */
import type { JWTPayload } from 'jose';
import * as errors from 'jose/errors';
import { jwtVerify } from 'jose/jwt/verify';
import type { CallerRefusal, TaskCallerCheck } from '../domain/ports/caller-identity';
import { createRemoteKeySet, type RemoteKeySet } from './remote-key-set';
import { REQUIRED_TIME_CLAIMS, timeClaimProblem, TOKEN_CLOCK_SKEW_SECONDS } from './token-time-claims';

export interface TaskAuthOptions {
  issuer: string;
  jwksUrl: string;
  /** This function's own URL: the token's audience. */
  audience: string;
  serviceAccountEmail: string;
}

export class TaskCallerVerifier implements TaskCallerCheck {
  private readonly keys: RemoteKeySet;

  constructor(private readonly opts: TaskAuthOptions) {
    this.keys = createRemoteKeySet(new URL(opts.jwksUrl));
  }

  /** Fetches the signing keys ahead of the first token (a cold start overlaps it with loading). */
  warm(): Promise<void> {
    return this.keys.warm();
  }

  /** Returns an error message, or undefined when the caller is the configured invoker. */
  async check(authorization: string | undefined): Promise<CallerRefusal | undefined> {
    const m = authorization?.match(/^Bearer (\S+)$/);
    if (!m) return { status: 401, message: 'An OIDC bearer token is required' };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(m[1] as string, this.keys, {
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        algorithms: ['RS256'],
        clockTolerance: TOKEN_CLOCK_SKEW_SECONDS,
        requiredClaims: REQUIRED_TIME_CLAIMS,
      }));
    } catch (err) {
      if (err instanceof errors.JWTClaimValidationFailed && err.reason === 'missing') return { status: 401, message: `The OIDC token's ${err.claim} claim is missing` };
      return { status: 401, message: 'The OIDC token is not valid for this function' };
    }
    const problem = timeClaimProblem(payload, Math.floor(Date.now() / 1000));
    if (problem) return { status: 401, message: `The OIDC token's ${problem}` };
    if (payload.email !== this.opts.serviceAccountEmail) return { status: 403, message: 'The caller is not the configured task invoker' };
    // Google sets it to the boolean true for a service account; anything else (missing, "true") is refused.
    if (payload.email_verified !== true) return { status: 403, message: "The caller's email is not verified (email_verified must be true)" };
    return undefined;
  }
}
