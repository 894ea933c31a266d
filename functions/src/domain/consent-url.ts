/**
 * Google's consent URL for Data Portability scopes, with the PKCE challenge (RFC 7636, S256) that
 * ties the code Google returns to the verifier only this app holds.
 *
 * Google's rules for these scopes: no other scope in the same consent (not even `openid`), no
 * `include_granted_scopes`; `access_type=offline` and `prompt=consent` get a refresh token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { scopeOf } from './resource-groups';

/**
 * The longest consent URL we hand out. Google documents no number; it answers 400 to a consent
 * URL carrying too many scopes. 2,048 characters is the length every browser, proxy and
 * redirect carries: about 20 resource groups. More groups take more than one consent.
 */
export const MAX_AUTHORIZATION_URL_LENGTH = 2048;

export interface ConsentUrlInput {
  /** Google's authorization endpoint, `https://accounts.google.com/o/oauth2/v2/auth`. */
  authUrl: string;
  clientId: string;
  redirectUri: string;
  resources: string[];
  state: string;
  codeChallenge: string;
}

export function consentUrl(input: ConsentUrlInput): string {
  const url = new URL(input.authUrl);
  const params: Array<[string, string]> = [
    ['client_id', input.clientId],
    ['redirect_uri', input.redirectUri],
    ['response_type', 'code'],
    ['scope', input.resources.map(scopeOf).join(' ')],
    ['access_type', 'offline'],
    ['prompt', 'consent'],
    ['state', input.state],
    ['code_challenge', input.codeChallenge],
    ['code_challenge_method', 'S256'],
  ];
  for (const [k, v] of params) url.searchParams.set(k, v);
  return url.toString();
}

/** A random, URL-safe secret of 32 bytes (43 characters): a `state` or a PKCE `code_verifier`. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** RFC 7636 §4.2, S256: BASE64URL(SHA256(ASCII(code_verifier))). */
export function pkceChallenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url');
}

/** Where a state is kept: its hash, so a reader of the database cannot use a state it sees. */
export function stateKey(state: string): string {
  return createHash('sha256').update(state, 'utf8').digest('hex');
}
