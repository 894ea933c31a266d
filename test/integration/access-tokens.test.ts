/**
 * Access tokens from the stored grant, on the real Firestore store with a controllable clock and a
 * token endpoint that counts its refreshes: a cached token is used until two minutes before it
 * expires, a missing or inactive grant refuses without calling Google, and only invalid_grant
 * (ConsentRevokedError) marks the grant NEEDS_CONSENT.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { ConsentRevokedError } from '../../functions/src/domain/errors';
import type { GrantState } from '../../functions/src/domain/model';
import type { OAuthTokenClient } from '../../functions/src/domain/ports/google-oauth';
import { AccessTokens, quotaUserOf } from '../../functions/src/pipeline/access-tokens';

const T0 = Date.UTC(2100, 0, 1);
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
let store: FirestoreExportStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  store = new FirestoreExportStore(createFirestore({ projectId: 'demo-access-tokens' }));
});

const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;

async function grantFor(userId: string, state: GrantState = 'ACTIVE'): Promise<void> {
  await store.putGrant({ userId, refreshToken: await cipher.encrypt('1//refresh', userId), resources: ['myactivity.search'], oneTimeResources: [], timeBasedResources: [], state, createdAt: T0, updatedAt: T0 });
}

/** A token endpoint that answers `answer` and records the refresh tokens it was sent. */
function endpoint(answer: () => Promise<{ accessToken: string; expiresAt: number }>): OAuthTokenClient & { refreshed: string[] } {
  const refreshed: string[] = [];
  return {
    refreshed,
    exchangeCode: async () => {
      throw new Error('unused');
    },
    refresh: async (token) => {
      refreshed.push(token);
      return answer();
    },
  };
}

describe('quotaUserOf', () => {
  it('is the first 40 hex digits of the sha256 of the user id', () => {
    expect(quotaUserOf('user-1')).toBe('c6c289e49e9c05b2145860387b73bcb18df43fb0');
  });
});

describe('access tokens', () => {
  it('refreshes from the decrypted stored token, then serves the fresh token from memory until two minutes before it expires', async () => {
    const userId = newUser();
    await grantFor(userId);
    const clock = { t: T0 };
    const oauth = endpoint(async () => ({ accessToken: `ya29.at-${clock.t}`, expiresAt: clock.t + 3_600_000 }));
    const tokens = new AccessTokens(store, async () => cipher, async () => oauth, () => clock.t);
    expect(await tokens.forUser(userId)).toBe(`ya29.at-${T0}`);
    expect(oauth.refreshed).toEqual(['1//refresh']);
    clock.t = T0 + 3_600_000 - 120_001;
    expect(await tokens.forUser(userId)).toBe(`ya29.at-${T0}`);
    expect(oauth.refreshed).toHaveLength(1);
    // Exactly two minutes before: refreshed, not served.
    clock.t = T0 + 3_600_000 - 120_000;
    expect(await tokens.forUser(userId)).toBe(`ya29.at-${clock.t}`);
    expect(oauth.refreshed).toHaveLength(2);
  });

  it('serves a remembered token, refreshes one that expires within two minutes, and refreshes again after forget', async () => {
    const userId = newUser();
    await grantFor(userId);
    const clock = { t: T0 };
    const oauth = endpoint(async () => ({ accessToken: 'ya29.fresh', expiresAt: clock.t + 3_600_000 }));
    const tokens = new AccessTokens(store, async () => cipher, async () => oauth, () => clock.t);
    tokens.remember(userId, 'ya29.remembered', T0 + 600_000);
    expect(await tokens.forUser(userId)).toBe('ya29.remembered');
    expect(oauth.refreshed).toEqual([]);
    tokens.remember(userId, 'ya29.soon', T0 + 60_000);
    expect(await tokens.forUser(userId)).toBe('ya29.fresh');
    expect(oauth.refreshed).toHaveLength(1);
    tokens.forget(userId);
    expect(await tokens.forUser(userId)).toBe('ya29.fresh');
    expect(oauth.refreshed).toHaveLength(2);
  });

  it('refuses without calling Google when no grant is stored, or the grant needs consent', async () => {
    const oauth = endpoint(async () => ({ accessToken: 'ya29.x', expiresAt: T0 + 3_600_000 }));
    const tokens = new AccessTokens(store, async () => cipher, async () => oauth, () => T0);
    const none = newUser();
    const missing = await tokens.forUser(none).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConsentRevokedError);
    expect((missing as Error).message).toBe('No Google authorization is stored for this user');
    const revoked = newUser();
    await grantFor(revoked, 'NEEDS_CONSENT');
    await expect(tokens.forUser(revoked)).rejects.toBeInstanceOf(ConsentRevokedError);
    expect(oauth.refreshed).toEqual([]);
  });

  it('marks the grant NEEDS_CONSENT when Google answers invalid_grant, and keeps it ACTIVE on any other failure', async () => {
    const revokedUser = newUser();
    const flakyUser = newUser();
    await grantFor(revokedUser);
    await grantFor(flakyUser);
    const tokens = (err: Error) => new AccessTokens(store, async () => cipher, async () => endpoint(async () => Promise.reject(err)), () => T0);
    await expect(tokens(new ConsentRevokedError()).forUser(revokedUser)).rejects.toBeInstanceOf(ConsentRevokedError);
    expect((await store.getGrant(revokedUser))?.state).toBe('NEEDS_CONSENT');
    await expect(tokens(new Error('socket hang up')).forUser(flakyUser)).rejects.toThrow('socket hang up');
    expect((await store.getGrant(flakyUser))?.state).toBe('ACTIVE');
  });
});
