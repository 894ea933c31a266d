/**
 * Verifies the frontend users' ID tokens (Firebase Authentication / Identity Platform in
 * production, the local OIDC issuer in the local stack) against the issuer's published JWKS.
 * Only RS256 is accepted, so a token cannot pick a weaker algorithm (`none`, HS256 keyed with the
 * public key). Error messages name what was wrong, never the token.
 */
import type { JWTPayload } from 'jose';
import * as errors from 'jose/errors';
import { jwtVerify } from 'jose/jwt/verify';
import { UnauthenticatedError, UnavailableError } from '../domain/errors';
import type { IdTokenVerifier } from '../domain/ports/caller-identity';
import { createRemoteKeySet, type RemoteKeySet } from './remote-key-set';
import { REQUIRED_TIME_CLAIMS, timeClaimProblem, TOKEN_CLOCK_SKEW_SECONDS } from './token-time-claims';

export interface JwksIdTokenVerifierOptions {
  issuer: string;
  /** Firebase: the project id. */
  audience: string | string[];
  jwksUrl: string;
  /** Seconds of clock skew tolerated on exp/nbf/iat/auth_time (default 30). */
  clockToleranceSeconds?: number;
  /** The clock tokens are checked against (default Date.now); tests move it. */
  now?: () => number;
  /** Timeout of one JWKS fetch (default 5 s). */
  jwksTimeoutMs?: number;
}

/**
 * The signing keys could not be fetched: a fault on our or the issuer's side, not the caller's.
 * Answer 503 rather than 401 so the frontend does not sign the user out for it.
 */
export class IdTokenKeysUnavailableError extends UnavailableError {
  constructor(message = 'The ID token signing keys could not be fetched') {
    super(message, 10);
    this.name = 'IdTokenKeysUnavailableError';
  }
}

/** jose error codes that mean the key set could not be fetched or read, not that the token is bad. */
const KEY_FETCH_FAILURES = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);

export class JwksIdTokenVerifier implements IdTokenVerifier {
  private readonly jwks: RemoteKeySet;

  constructor(private readonly opts: JwksIdTokenVerifierOptions) {
    // The key set is cached and refetched on an unknown `kid` (at most every 30 s), so key rotation works.
    this.jwks = createRemoteKeySet(new URL(opts.jwksUrl), { timeoutMs: opts.jwksTimeoutMs ?? 5_000 });
  }

  warm(): Promise<void> {
    return this.jwks.warm();
  }

  async verify(idToken: string): Promise<{ userId: string }> {
    if (typeof idToken !== 'string' || idToken.length === 0 || idToken.length > 16_384) {
      throw new UnauthenticatedError('ID token is missing or malformed');
    }
    let payload: JWTPayload;
    const now = this.opts.now?.() ?? Date.now();
    const skew = this.opts.clockToleranceSeconds ?? TOKEN_CLOCK_SKEW_SECONDS;
    try {
      ({ payload } = await jwtVerify(idToken, this.jwks, {
        algorithms: ['RS256'],
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        clockTolerance: skew,
        requiredClaims: ['sub', ...REQUIRED_TIME_CLAIMS],
        currentDate: new Date(now),
      }));
    } catch (err) {
      throw toSafeError(err);
    }
    const problem = timeClaimProblem(payload, Math.floor(now / 1000), skew);
    if (problem) throw new UnauthenticatedError(`ID token ${problem}`);
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 128) {
      throw new UnauthenticatedError('ID token has no valid subject');
    }
    return { userId: payload.sub };
  }
}

function toSafeError(err: unknown): Error {
  if (err instanceof errors.JWTExpired) return new UnauthenticatedError('ID token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (claim === 'iss') return new UnauthenticatedError('ID token issuer is not accepted');
    if (claim === 'aud') return new UnauthenticatedError('ID token audience is not accepted');
    if (claim === 'sub') return new UnauthenticatedError('ID token has no subject');
    if (err.reason === 'missing') return new UnauthenticatedError(`ID token ${claim} claim is missing`);
    if (err.reason === 'invalid') return new UnauthenticatedError(`ID token ${claim} claim is not valid`);
    if (claim === 'nbf' || claim === 'iat') return new UnauthenticatedError('ID token is not valid yet');
    return new UnauthenticatedError('ID token claims are not valid');
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return new UnauthenticatedError('ID token algorithm is not accepted');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new UnauthenticatedError('ID token signature is not valid');
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return new UnauthenticatedError('ID token was not signed by a known key');
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return new UnauthenticatedError('ID token is malformed');
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof errors.JOSEError) || (typeof code === 'string' && KEY_FETCH_FAILURES.has(code))) {
    // A network error (ECONNREFUSED, ...) or an unreadable key set answer.
    return new IdTokenKeysUnavailableError();
  }
  return new UnauthenticatedError('ID token could not be verified');
}
