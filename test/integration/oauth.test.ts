/**
 * The OAuth simulator driven through the real adapters: google-auth-library's OAuth2Client
 * (GoogleOAuthTokenClient) against the simulated token endpoint, and jose's remote JWKS
 * (JwksIdTokenVerifier) against the simulated identity provider.
 */
import http from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SignJWT } from 'jose';
import { GoogleAccounts } from '../../local-stack/google-accounts';
import { createLocalOidcIssuer } from '../../local-stack/local-oidc-issuer';
import { freePort } from '../../local-stack/net-utils';
import { startOAuthSimulator, type OAuthSimulator } from '../../local-stack/oauth-simulator';
import { GoogleOAuthTokenClient, OAuthTokenEndpointError } from '../../functions/src/adapters/google-oauth-token-client';
import { IdTokenKeysUnavailableError, JwksIdTokenVerifier } from '../../functions/src/adapters/id-token-verifier';
import { AuthorizationCodeError, ConsentRevokedError, UnauthenticatedError } from '../../functions/src/domain/errors';
import { scopeOf } from '../../functions/src/domain/resource-groups';
import { pkceChallenge } from '../../functions/src/domain/consent-url';

const CLIENT_ID = 'sim-client.apps.googleusercontent.com';
const CLIENT_SECRET = 'sim-secret';
const REDIRECT = 'http://127.0.0.1/oauth/callback';
const ID_ISSUER = 'https://securetoken.google.com/demo-portability';
const ID_AUDIENCE = 'demo-portability';
/** Every code below is minted under a PKCE challenge, as the API's consent URLs ask for. */
const VERIFIER = 'verifier-of-the-consent-the-code-answers-0123456789';
const PKCE = { codeChallenge: pkceChallenge(VERIFIER) };

let clock = Date.now();
const accounts = new GoogleAccounts(() => clock);
let sim: OAuthSimulator;
let tokens: GoogleOAuthTokenClient;

beforeAll(async () => {
  sim = await startOAuthSimulator({
    accounts,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    idTokenIssuer: ID_ISSUER,
    idTokenAudience: ID_AUDIENCE,
    accessTokenTtlMs: 60_000,
  });
  tokens = new GoogleOAuthTokenClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, tokenUrl: sim.tokenUrl, timeoutMs: 2_000 });
});

afterAll(async () => {
  await sim?.stop();
});

beforeEach(() => {
  clock = Date.now();
});

/** Runs `fn`, expects it to throw, and returns the error. */
async function failure(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

async function postForm(url: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('authorization code exchange', () => {
  it('exchanges a code for tokens that carry the granted scopes and work against the shared accounts', async () => {
    const code = sim.consent({ googleUserId: 'u1', resources: ['myactivity.search', 'chrome.history'], redirectUri: REDIRECT, ...PKCE });
    // Date frozen (timers stay real): the expiry the client reports is the token's lifetime from now, exactly.
    const frozen = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: frozen });
    let t: Awaited<ReturnType<typeof tokens.exchangeCode>>;
    try {
      t = await tokens.exchangeCode(code, REDIRECT, VERIFIER);
    } finally {
      vi.useRealTimers();
    }

    expect(t.scope.split(' ').sort()).toEqual([scopeOf('chrome.history'), scopeOf('myactivity.search')]);
    expect(t.refreshToken).toBeTruthy();
    expect(t.expiresAt).toBe(frozen + 60_000);
    const grant = accounts.resolveAccessToken(t.accessToken);
    expect(grant?.googleUserId).toBe('u1');
    expect(grant?.accessType).toBe('ONE_TIME');
    expect(accounts.grantByRefreshToken(t.refreshToken!)?.grantId).toBe(grant?.grantId);
  });

  it('rejects a code used twice, without echoing the code', async () => {
    const code = sim.consent({ googleUserId: 'u2', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    await tokens.exchangeCode(code, REDIRECT, VERIFIER);
    const err = await failure(() => tokens.exchangeCode(code, REDIRECT, VERIFIER));
    expect(err).toBeInstanceOf(AuthorizationCodeError);
    expect(err.message).not.toContain(code);
    expect(JSON.stringify(err)).not.toContain(code);
  });

  it('rejects an unknown code, an expired code and a different redirect URI', async () => {
    expect(await failure(() => tokens.exchangeCode('4/0not-a-code', REDIRECT, VERIFIER))).toBeInstanceOf(AuthorizationCodeError);

    const expiring = sim.consent({ googleUserId: 'u3', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    clock += 11 * 60_000; // codes live 10 minutes
    expect(await failure(() => tokens.exchangeCode(expiring, REDIRECT, VERIFIER))).toBeInstanceOf(AuthorizationCodeError);

    const code = sim.consent({ googleUserId: 'u3', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const err = await failure(() => tokens.exchangeCode(code, 'http://127.0.0.1/elsewhere', VERIFIER));
    expect(err).toBeInstanceOf(AuthorizationCodeError);
    expect(err.message).toMatch(/redirect URI/);
    // The failed attempt did not use the code up.
    await expect(tokens.exchangeCode(code, REDIRECT, VERIFIER)).resolves.toMatchObject({ scope: scopeOf('myactivity.search') });
  });

  it('rejects a wrong client secret as a configuration error, not as a bad code', async () => {
    const code = sim.consent({ googleUserId: 'u4', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const wrong = new GoogleOAuthTokenClient({ clientId: CLIENT_ID, clientSecret: 'nope', tokenUrl: sim.tokenUrl });
    const err = await failure(() => wrong.exchangeCode(code, REDIRECT, VERIFIER));
    expect(err).toBeInstanceOf(OAuthTokenEndpointError);
    expect(err).toMatchObject({ httpStatus: 401, oauthError: 'invalid_client', transient: false });
    expect(err.message).not.toContain('nope');
  });

  it('answers as Google does on the wire (form body, Basic auth, error bodies, time-based lifetime)', async () => {
    const code = sim.consent({ googleUserId: 'u5', resources: ['myactivity.youtube'], accessType: 'TIME_BASED', redirectUri: REDIRECT, ...PKCE });
    const basic = 'Basic ' + Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');
    const ok = await postForm(sim.tokenUrl, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: VERIFIER }, { authorization: basic });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', expires_in: 60, scope: scopeOf('myactivity.youtube') });
    expect(typeof ok.body.access_token).toBe('string');
    expect(typeof ok.body.refresh_token).toBe('string');
    // 30 days by default for time-based access.
    expect(ok.body.refresh_token_expires_in).toBe(30 * 86_400);

    const used = await postForm(sim.tokenUrl, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: VERIFIER, client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    expect(used).toEqual({ status: 400, body: { error: 'invalid_grant', error_description: 'Bad Request' } });

    const odd = await postForm(sim.tokenUrl, { grant_type: 'password', client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    expect(odd.status).toBe(400);
    expect(odd.body.error).toBe('unsupported_grant_type');

    const noClient = await postForm(sim.tokenUrl, { grant_type: 'refresh_token', refresh_token: 'x' });
    expect(noClient.status).toBe(400);
    expect(noClient.body.error).toBe('invalid_request');

    expect(sim.calls.slice(-4).map((c) => [c.grantType, c.status])).toEqual([
      ['authorization_code', 200],
      ['authorization_code', 400],
      ['password', 400],
      ['refresh_token', 400],
    ]);
    expect(JSON.stringify(sim.calls)).not.toContain(code);
  });

  it('GET /auth approves at once and redirects with code, granted scope and state (partial consent)', async () => {
    const url = new URL(sim.authUrl);
    url.search = new URLSearchParams({
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT,
      response_type: 'code',
      access_type: 'offline',
      scope: [scopeOf('myactivity.search'), scopeOf('chrome.history')].join(' '),
      state: 'xyz',
      code_challenge: PKCE.codeChallenge,
      code_challenge_method: 'S256',
      login_hint: 'browser-user',
      sim_grant: 'chrome.history',
      sim_access_type: 'TIME_BASED',
    }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe('xyz');
    expect(location.searchParams.get('scope')).toBe(scopeOf('chrome.history'));
    const t = await tokens.exchangeCode(location.searchParams.get('code')!, REDIRECT, VERIFIER);
    const grant = accounts.resolveAccessToken(t.accessToken)!;
    expect(grant).toMatchObject({ googleUserId: 'browser-user', resources: ['chrome.history'], accessType: 'TIME_BASED' });

    url.searchParams.set('sim_deny', '1');
    const denied = await fetch(url, { redirect: 'manual' });
    expect(new URL(denied.headers.get('location')!).searchParams.get('error')).toBe('access_denied');
  });
});

describe('PKCE (RFC 7636), as Google checks it', () => {
  it('exchanges a code minted under a challenge only with the verifier that hashes to it', async () => {
    const code = sim.consent({ googleUserId: 'p1', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const other = 'another-consents-verifier-0123456789-0123456789';
    for (const wrong of [other, 'short', PKCE.codeChallenge]) {
      expect(await failure(() => tokens.exchangeCode(code, REDIRECT, wrong))).toBeInstanceOf(AuthorizationCodeError);
      expect(sim.calls.at(-1)).toEqual({ grantType: 'authorization_code', status: 400, error: 'invalid_grant' });
    }
    // No verifier at all (the old, unbound exchange).
    const bare = await postForm(sim.tokenUrl, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    expect(bare).toEqual({ status: 400, body: { error: 'invalid_grant', error_description: 'Missing code verifier.' } });
    await expect(tokens.exchangeCode(code, REDIRECT, VERIFIER)).resolves.toHaveProperty('refreshToken');
  });

  it('refuses a verifier for a code minted without a challenge (no downgrade to an unbound consent)', async () => {
    const unbound = sim.consent({ googleUserId: 'p2', resources: ['myactivity.search'], redirectUri: REDIRECT });
    expect(await failure(() => tokens.exchangeCode(unbound, REDIRECT, VERIFIER))).toBeInstanceOf(AuthorizationCodeError);
  });

  it('GET /auth refuses what Google refuses for Data Portability scopes: mixed scopes, include_granted_scopes, a bad challenge', async () => {
    const base = {
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: scopeOf('myactivity.search'),
      state: 'xyz',
      code_challenge: PKCE.codeChallenge,
      code_challenge_method: 'S256',
    };
    const get = async (params: Record<string, string>) => {
      const url = new URL(sim.authUrl);
      url.search = new URLSearchParams(params).toString();
      const res = await fetch(url, { redirect: 'manual' });
      return { status: res.status, text: await res.text() };
    };
    expect((await get(base)).status).toBe(302);
    for (const [params, error] of [
      [{ ...base, scope: `openid ${scopeOf('myactivity.search')}` }, 'invalid_scope'],
      [{ ...base, include_granted_scopes: 'true' }, 'Incremental auth'],
      [{ ...base, code_challenge: 'too-short' }, 'code_challenge'],
      [{ ...base, code_challenge_method: 'S512' }, 'code_challenge'],
      [{ ...base, response_type: 'token' }, 'unsupported_response_type'],
    ] as Array<[Record<string, string>, string]>) {
      const res = await get(params);
      expect(res.status).toBe(400);
      expect(res.text).toContain(error);
    }
  });
});

describe('refresh', () => {
  it('mints a new access token; the old one expires by the clock', async () => {
    const code = sim.consent({ googleUserId: 'r1', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const first = await tokens.exchangeCode(code, REDIRECT, VERIFIER);
    clock += 61_000;
    expect(accounts.resolveAccessToken(first.accessToken)).toBeUndefined();

    const again = await tokens.refresh(first.refreshToken!);
    expect(again.accessToken).not.toBe(first.accessToken);
    expect(accounts.resolveAccessToken(again.accessToken)?.googleUserId).toBe('r1');
    expect(again.expiresAt).toBeGreaterThan(Date.now() + 50_000);

    // Google's endpoint takes JSON bodies too; a refresh answer has no refresh_token.
    const res = await fetch(sim.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: first.refreshToken, client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 60, scope: scopeOf('myactivity.search') });
    expect(body).not.toHaveProperty('refresh_token');
  });

  it('answers invalid_grant after a revoke, after the grant expires and for an unknown token -> ConsentRevokedError', async () => {
    const code = sim.consent({ googleUserId: 'r2', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const t = await tokens.exchangeCode(code, REDIRECT, VERIFIER);
    const grant = accounts.resolveAccessToken(t.accessToken)!;
    accounts.revoke(grant.grantId);
    const err = await failure(() => tokens.refresh(t.refreshToken!));
    expect(err).toBeInstanceOf(ConsentRevokedError);
    expect(err.message).not.toContain(t.refreshToken!);
    expect(sim.calls.at(-1)).toEqual({ grantType: 'refresh_token', status: 400, error: 'invalid_grant' });

    const timed = sim.consent({ googleUserId: 'r3', resources: ['myactivity.search'], accessType: 'TIME_BASED', days: 30, redirectUri: REDIRECT, ...PKCE });
    const t2 = await tokens.exchangeCode(timed, REDIRECT, VERIFIER);
    clock += 29 * 86_400_000;
    await expect(tokens.refresh(t2.refreshToken!)).resolves.toBeTruthy();
    clock += 2 * 86_400_000;
    expect(await failure(() => tokens.refresh(t2.refreshToken!))).toBeInstanceOf(ConsentRevokedError);

    expect(await failure(() => tokens.refresh('1//unknown'))).toBeInstanceOf(ConsentRevokedError);
  });

  it('rides out one 503 (the library retries) and reports a lasting outage as transient', async () => {
    const code = sim.consent({ googleUserId: 'r4', resources: ['myactivity.search'], redirectUri: REDIRECT, ...PKCE });
    const t = await tokens.exchangeCode(code, REDIRECT, VERIFIER);

    sim.faults.failNextTokenRequests(503, 1);
    await expect(tokens.refresh(t.refreshToken!)).resolves.toHaveProperty('accessToken');
    expect(sim.calls.slice(-2).map((c) => c.status)).toEqual([503, 200]);

    sim.faults.failNextTokenRequests(503, 10);
    const err = await failure(() => tokens.refresh(t.refreshToken!));
    expect(err).toBeInstanceOf(OAuthTokenEndpointError);
    expect(err).toMatchObject({ transient: true, httpStatus: 503 });
    // google-auth-library tries a POST to the token endpoint four times in all.
    expect(sim.calls.slice(-5).map((c) => c.status)).toEqual([200, 503, 503, 503, 503]);
    sim.faults.reset();
    await expect(tokens.refresh(t.refreshToken!)).resolves.toHaveProperty('accessToken');
  });

  it('reports an unreachable token endpoint as transient', async () => {
    const port = await freePort();
    const dead = new GoogleOAuthTokenClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, tokenUrl: `http://127.0.0.1:${port}/token`, timeoutMs: 500 });
    const err = await failure(() => dead.refresh('1//whatever'));
    expect(err).toBeInstanceOf(OAuthTokenEndpointError);
    expect(err).toMatchObject({ transient: true });
  });
});

describe('ID tokens', () => {
  function verifier(over: Partial<ConstructorParameters<typeof JwksIdTokenVerifier>[0]> = {}) {
    return new JwksIdTokenVerifier({ issuer: ID_ISSUER, audience: ID_AUDIENCE, jwksUrl: sim.jwksUrl, ...over });
  }

  async function rejection(v: JwksIdTokenVerifier, token: string): Promise<Error> {
    const err = await failure(() => v.verify(token));
    // A safe message: never the token or any of its parts.
    for (const part of token.split('.')) if (part.length > 8) expect(err.message).not.toContain(part);
    return err;
  }

  it('verifies a token of the simulated issuer and returns its subject', async () => {
    const token = await sim.issueIdToken('user-42', { claims: { email: 'u@example.com' } });
    await expect(verifier().verify(token)).resolves.toEqual({ userId: 'user-42' });
    // An audience list is accepted too.
    await expect(verifier({ audience: ['other', ID_AUDIENCE] }).verify(token)).resolves.toEqual({ userId: 'user-42' });
  });

  it('rejects a wrong audience and a wrong issuer', async () => {
    const wrongAud = await sim.issueIdToken('user-1', { audience: 'someone-else' });
    const e1 = await rejection(verifier(), wrongAud);
    expect(e1).toBeInstanceOf(UnauthenticatedError);
    expect(e1.message).toMatch(/audience/);

    const token = await sim.issueIdToken('user-1');
    const e2 = await rejection(verifier({ issuer: 'https://accounts.google.com' }), token);
    expect(e2).toBeInstanceOf(UnauthenticatedError);
    expect(e2.message).toMatch(/issuer/);
  });

  it('rejects an expired token, tolerating 30 s of skew', async () => {
    const expired = await sim.issueIdToken('user-1', { ttlSeconds: -120 });
    const err = await rejection(verifier(), expired);
    expect(err).toBeInstanceOf(UnauthenticatedError);
    expect(err.message).toMatch(/expired/);

    const justExpired = await sim.issueIdToken('user-1', { ttlSeconds: -10 });
    await expect(verifier().verify(justExpired)).resolves.toEqual({ userId: 'user-1' });

    const fresh = await sim.issueIdToken('user-1', { ttlSeconds: 60 });
    const later = verifier({ now: () => Date.now() + 120_000 });
    expect(await rejection(later, fresh)).toBeInstanceOf(UnauthenticatedError);
  });

  it('requires iat and exp, bounds the lifetime to 1 hour and refuses iat or auth_time in the future, each by name', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>): Promise<string> => sim.idIssuer.sign({ sub: 'user-1', aud: ID_AUDIENCE, ...claims });
    const refused: Array<[string, Record<string, unknown>, RegExp]> = [
      ['no iat', { iat: undefined }, /^ID token iat claim is missing$/],
      ['no exp', { exp: undefined }, /^ID token exp claim is missing$/],
      ['iat as a string', { iat: String(now) }, /^ID token iat claim is not valid$/],
      ['iat a year ahead', { iat: now + 365 * 86_400, exp: now + 365 * 86_400 + 3600 }, /^ID token iat claim is in the future$/],
      ['iat 31 s ahead (beyond the 30 s skew)', { iat: now + 31 + 1, exp: now + 3600 }, /^ID token iat claim is in the future$/],
      ['exp = 1e20', { exp: 1e20 }, /^ID token lifetime \(exp - iat\) is longer than 1 hour$/],
      ['a lifetime of 2 hours', { iat: now - 60, exp: now - 60 + 7200 }, /^ID token lifetime \(exp - iat\) is longer than 1 hour$/],
      ['auth_time an hour ahead', { auth_time: now + 3600 }, /^ID token auth_time claim is in the future$/],
      ['auth_time as a string', { auth_time: 'yesterday' }, /^ID token auth_time claim is not a time$/],
    ];
    for (const [what, claims, message] of refused) {
      const err = await rejection(verifier(), await sign(claims));
      expect(err, what).toBeInstanceOf(UnauthenticatedError);
      expect(err.message, what).toMatch(message);
    }
    // Within the skew, and a Firebase token as Firebase issues it (1 hour, signed in earlier), pass.
    for (const claims of [{ iat: now + 20, exp: now + 20 + 3600 }, { iat: now - 600, exp: now - 600 + 3600, auth_time: now - 86_400 }, { auth_time: now + 20 }]) {
      await expect(verifier().verify(await sign(claims)), JSON.stringify(claims)).resolves.toEqual({ userId: 'user-1' });
    }
  });

  it('rejects garbage, a foreign key, another algorithm and a token without subject', async () => {
    const v = verifier();
    for (const junk of ['', 'garbage', 'a.b.c', 'eyJhbGciOiJSUzI1NiJ9.e30.AAAA']) {
      const err = await failure(() => v.verify(junk));
      expect(err).toBeInstanceOf(UnauthenticatedError);
    }

    const stranger = await createLocalOidcIssuer({ issuer: ID_ISSUER });
    const foreign = await stranger.sign({ sub: 'user-1', aud: ID_AUDIENCE });
    const e1 = await rejection(v, foreign);
    expect(e1).toBeInstanceOf(UnauthenticatedError);
    expect(e1.message).toMatch(/known key/);

    const hs = await new SignJWT({ sub: 'user-1', aud: ID_AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', kid: sim.idIssuer.kid })
      .setIssuer(ID_ISSUER)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!'));
    const e2 = await rejection(v, hs);
    expect(e2).toBeInstanceOf(UnauthenticatedError);
    expect(e2.message).toMatch(/algorithm/);

    const noSub = await sim.idIssuer.sign({ aud: ID_AUDIENCE });
    const e3 = await rejection(v, noSub);
    expect(e3).toBeInstanceOf(UnauthenticatedError);
    expect(e3.message).toMatch(/subject/);
  });

  it('reports unreachable or broken signing keys as unavailable, not as the caller\u2019s fault', async () => {
    const token = await sim.issueIdToken('user-1');
    const port = await freePort();
    const unreachable = verifier({ jwksUrl: `http://127.0.0.1:${port}/jwks` });
    expect(await failure(() => unreachable.verify(token))).toBeInstanceOf(IdTokenKeysUnavailableError);

    const broken = http.createServer((_req, res) => {
      res.writeHead(500);
      res.end('oops');
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', () => r()));
    try {
      const { port: p } = broken.address() as { port: number };
      const v = verifier({ jwksUrl: `http://127.0.0.1:${p}/jwks` });
      expect(await failure(() => v.verify(token))).toBeInstanceOf(IdTokenKeysUnavailableError);
    } finally {
      await new Promise<void>((r) => {
        broken.close(() => r());
        broken.closeAllConnections();
      });
    }
  });
});
