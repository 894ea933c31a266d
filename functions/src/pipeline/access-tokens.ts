/**
 * Fresh Google access tokens for a user, from their stored (encrypted) refresh token. Access
 * tokens live only in this instance's memory, never in Firestore or logs.
 */
import { createHash } from 'node:crypto';
import { consentRevoked } from '../domain/audit-drafts';
import { ConsentRevokedError } from '../domain/errors';
import type { ExportStore } from '../domain/ports/export-store';
import type { OAuthTokenClient } from '../domain/ports/google-oauth';
import type { SecretCipher } from '../domain/ports/secret-cipher';

const EARLY_REFRESH_MS = 120_000;

/** The `quotaUser` sent with every API call: attributes quota to one end user without naming them. */
export function quotaUserOf(userId: string): string {
  return createHash('sha256').update(userId).digest('hex').slice(0, 40);
}

export class AccessTokens {
  private readonly cache = new Map<string, { token: string; expiresAt: number }>();

  constructor(
    private readonly store: Pick<ExportStore, 'getGrant' | 'setGrantState'>,
    /** Made on first use: a cached token needs neither. */
    private readonly cipher: () => Promise<SecretCipher>,
    private readonly oauth: () => Promise<OAuthTokenClient>,
    private readonly now: () => number = Date.now,
  ) {}

  remember(userId: string, token: string, expiresAt: number): void {
    this.cache.set(userId, { token, expiresAt });
  }

  forget(userId: string): void {
    this.cache.delete(userId);
  }

  /** Throws ConsentRevokedError when there is no usable grant (and marks the grant so). */
  async forUser(userId: string): Promise<string> {
    const cached = this.cache.get(userId);
    if (cached && cached.expiresAt - EARLY_REFRESH_MS > this.now()) return cached.token;
    const grant = await this.store.getGrant(userId);
    if (!grant) throw new ConsentRevokedError('No Google authorization is stored for this user');
    if (grant.state !== 'ACTIVE') throw new ConsentRevokedError();
    const refreshToken = await (await this.cipher()).decrypt(grant.refreshToken, userId);
    try {
      const fresh = await (await this.oauth()).refresh(refreshToken);
      this.remember(userId, fresh.accessToken, fresh.expiresAt);
      return fresh.accessToken;
    } catch (err) {
      if (err instanceof ConsentRevokedError) {
        this.forget(userId);
        // Google ended the access (expired, or revoked at Google): recorded with the change.
        await this.store.setGrantState(userId, 'ACTIVE', 'NEEDS_CONSENT', (g) => [consentRevoked(g, this.now(), 'google')]);
      }
      throw err;
    }
  }
}
