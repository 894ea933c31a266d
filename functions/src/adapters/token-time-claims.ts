/**
 * The time claims of the tokens we accept, beyond what jose checks (a signature, `exp` not past):
 * both kinds of token we take, Firebase ID tokens and the OIDC tokens Google signs for Cloud
 * Tasks and Cloud Scheduler, are issued for one hour. So `iat` and `exp` are required, a token may
 * not live longer than an hour, nor be issued (or, for a user, signed in: `auth_time`) later than
 * now. Each allows the same clock skew as `exp`.
 */
import type { JWTPayload } from 'jose';

/** Google's ID tokens, Firebase's included, live one hour. */
export const TOKEN_MAX_LIFETIME_SECONDS = 3600;
/** Clock skew tolerated on every time claim (exp, iat, auth_time). */
export const TOKEN_CLOCK_SKEW_SECONDS = 30;

/** Claims every token must carry (jose's `requiredClaims`). */
export const REQUIRED_TIME_CLAIMS = ['exp', 'iat'];

/** What is wrong with a verified token's time claims, as "<claim> …", or undefined. */
export function timeClaimProblem(payload: JWTPayload, nowSeconds: number, skewSeconds = TOKEN_CLOCK_SKEW_SECONDS): string | undefined {
  const { iat, exp } = payload;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return 'iat claim is missing';
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'exp claim is missing';
  if (iat > nowSeconds + skewSeconds) return 'iat claim is in the future';
  if (exp - iat > TOKEN_MAX_LIFETIME_SECONDS + skewSeconds) return 'lifetime (exp - iat) is longer than 1 hour';
  const authTime = (payload as { auth_time?: unknown }).auth_time;
  if (authTime !== undefined && (typeof authTime !== 'number' || !Number.isFinite(authTime))) return 'auth_time claim is not a time';
  if (typeof authTime === 'number' && authTime > nowSeconds + skewSeconds) return 'auth_time claim is in the future';
  return undefined;
}
