/**
 * The simulated Google side's shared memory: which Google user granted which Data Portability
 * scopes to our OAuth client, for how long, and which tokens stand for that grant. The OAuth
 * simulator writes it (consent, code exchange, refresh); the Data Portability API simulator reads
 * it (every call's bearer token) and revokes it (authorization.reset).
 */
import { randomBytes } from 'node:crypto';

export type SimAccessType = 'ONE_TIME' | 'TIME_BASED';

export interface SimGrant {
  grantId: string;
  googleUserId: string;
  /** Resource groups granted (partial consent: may be fewer than requested). */
  resources: string[];
  accessType: SimAccessType;
  /** epoch ms; time-based grants expire, one-time grants too (after 7 days as a test-mode client would) */
  expiresAt: number;
  revoked: boolean;
  refreshToken: string;
}

/** An authorization code, with the PKCE challenge of the consent that minted it (if it had one). */
export interface SimCode {
  grantId: string;
  redirectUri: string;
  clientId: string;
  expiresAt: number;
  used: boolean;
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  /** The verifier the code was exchanged with (kept, as Google's side would, for tests to look for in logs). */
  codeVerifier?: string;
}

export interface SimAccessToken {
  token: string;
  grantId: string;
  expiresAt: number;
}

export class GoogleAccounts {
  readonly grants = new Map<string, SimGrant>();
  readonly accessTokens = new Map<string, SimAccessToken>();
  readonly codes = new Map<string, SimCode>();

  constructor(readonly now: () => number = Date.now) {}

  /** A user consents; returns the grant. The caller then mints a code for it. */
  createGrant(input: { googleUserId: string; resources: string[]; accessType?: SimAccessType; days?: number }): SimGrant {
    const grant: SimGrant = {
      grantId: randomBytes(8).toString('hex'),
      googleUserId: input.googleUserId,
      resources: [...input.resources],
      accessType: input.accessType ?? 'ONE_TIME',
      expiresAt: this.now() + (input.days ?? 7) * 86_400_000,
      revoked: false,
      refreshToken: `1//sim-refresh-${randomBytes(24).toString('base64url')}`,
    };
    this.grants.set(grant.grantId, grant);
    return grant;
  }

  mintAccessToken(grantId: string, ttlMs = 3_600_000): SimAccessToken {
    const t: SimAccessToken = { token: `ya29.sim-${randomBytes(24).toString('base64url')}`, grantId, expiresAt: this.now() + ttlMs };
    this.accessTokens.set(t.token, t);
    return t;
  }

  /** The live grant behind a bearer token, or undefined when the token is unknown, expired or revoked. */
  resolveAccessToken(token: string): SimGrant | undefined {
    const t = this.accessTokens.get(token);
    if (!t || t.expiresAt <= this.now()) return undefined;
    const g = this.grants.get(t.grantId);
    if (!g || g.revoked || g.expiresAt <= this.now()) return undefined;
    return g;
  }

  grantByRefreshToken(refreshToken: string): SimGrant | undefined {
    for (const g of this.grants.values()) if (g.refreshToken === refreshToken) return g;
    return undefined;
  }

  revoke(grantId: string): void {
    const g = this.grants.get(grantId);
    if (g) g.revoked = true;
  }
}
