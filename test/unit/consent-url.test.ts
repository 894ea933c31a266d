import { describe, expect, it } from 'vitest';
import { consentStateUse, type ConsentState } from '../../functions/src/domain/consent-state';
import { consentUrl, MAX_AUTHORIZATION_URL_LENGTH, pkceChallenge, randomToken, stateKey } from '../../functions/src/domain/consent-url';
import { RESOURCE_GROUPS } from '../../functions/src/domain/resource-groups';

describe('PKCE and the consent URL', () => {
  it('computes the S256 challenge of RFC 7636 appendix B', () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('makes verifiers and states of 43 unreserved characters, each different, and keys states by a hash', () => {
    const tokens = new Set(Array.from({ length: 50 }, randomToken));
    expect(tokens.size).toBe(50);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const a = randomToken();
    expect(stateKey(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(stateKey(a)).toBe(stateKey(a));
  });

  it('puts only Data Portability scopes in the URL, never include_granted_scopes; all groups at once exceed the length limit', () => {
    const base = { authUrl: 'https://accounts.google.com/o/oauth2/v2/auth', clientId: 'c', redirectUri: 'https://app.example/cb', state: randomToken(), codeChallenge: pkceChallenge(randomToken()) };
    const url = new URL(consentUrl({ ...base, resources: ['myactivity.search'] }));
    expect(url.searchParams.get('scope')).toBe('https://www.googleapis.com/auth/dataportability.myactivity.search');
    expect(url.searchParams.has('include_granted_scopes')).toBe(false);
    expect(consentUrl({ ...base, resources: [...RESOURCE_GROUPS] }).length).toBeGreaterThan(MAX_AUTHORIZATION_URL_LENGTH);
  });
});

describe('consentStateUse', () => {
  const state: ConsentState = {
    userId: 'u1',
    resources: ['myactivity.search'],
    redirectUri: 'https://app.example/cb',
    codeVerifier: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' },
    createdAt: 1_000,
    expiresAt: 601_000,
  };

  it('allows the user it was issued to, once, before it expires', () => {
    expect(consentStateUse(state, 'u1', 600_999)).toEqual({ ok: true });
    expect(consentStateUse(state, 'u1', 601_000)).toEqual({ ok: false, refusal: 'EXPIRED' });
    expect(consentStateUse({ ...state, usedAt: 2_000, codeVerifier: undefined }, 'u1', 2_001)).toEqual({ ok: false, refusal: 'USED' });
  });

  it("answers another user's state exactly as an unknown one, used or expired", () => {
    for (const s of [state, { ...state, usedAt: 2_000 }, { ...state, expiresAt: 0 }]) expect(consentStateUse(s, 'u2', 2_000)).toEqual({ ok: false, refusal: 'UNKNOWN' });
    expect(consentStateUse(undefined, 'u1', 2_000)).toEqual({ ok: false, refusal: 'UNKNOWN' });
  });
});
