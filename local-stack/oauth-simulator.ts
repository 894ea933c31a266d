/**
 * A stand-in for Google's OAuth 2.0 side, for tests and the local stack:
 *
 * - `consent(...)` plays the user clicking "Allow" on Google's consent screen and returns the
 *   authorization code Google would append to the redirect URI;
 * - `GET /auth` does the same over HTTP: a browser (Accept: text/html) gets a consent screen
 *   (consent-page.ts: Allow/Deny, partial consent, one-time/30/180 days) whose form posts back to
 *   `POST /auth`; any other caller, or one with `sim_*` knobs, is approved at once;
 * - `POST /token` is Google's token endpoint (`authorization_code` and `refresh_token` grants,
 *   form-encoded, answers and errors shaped as Google's). A code minted with a PKCE challenge
 *   (RFC 7636) is exchanged only with the matching `code_verifier`, else `invalid_grant`;
 * - `GET /jwks`, `issueIdToken(...)` and `POST /id-token` (the web app's local sign-in) stand in
 *   for the identity provider of the frontend's users.
 *
 * All grant/token state lives in the shared `GoogleAccounts`, so the Data Portability API
 * simulator sees the same tokens and can revoke the same grants.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { consentPage, decisionQuery } from './consent-page';
import { GoogleAccounts, type SimAccessType, type SimCode, type SimGrant } from './google-accounts';
import { createLocalOidcIssuer, type LocalOidcIssuer } from './local-oidc-issuer';
import { groupsInScopes, scopeOf } from '../functions/src/domain/resource-groups';

export interface OAuthSimulatorOptions {
  accounts: GoogleAccounts;
  clientId: string;
  clientSecret: string;
  /** Signs the frontend users' ID tokens; one is created when omitted. */
  idIssuer?: LocalOidcIssuer;
  /** `iss` of the issuer created when `idIssuer` is omitted. */
  idTokenIssuer?: string;
  /** Default `aud` of issued ID tokens (default: the client id, as Google Sign-In does). */
  idTokenAudience?: string;
  /** Access token lifetime (default 1 h, as Google's). Small values let tests exercise refresh. */
  accessTokenTtlMs?: number;
  /** Authorization code lifetime (default 10 min). */
  codeTtlMs?: number;
  /** The clock for codes, tokens and grants (default: the accounts' clock). */
  now?: () => number;
}

export interface ConsentInput {
  googleUserId: string;
  /** Resource groups the user grants (fewer than requested = partial consent). */
  resources: string[];
  /** Default ONE_TIME. */
  accessType?: SimAccessType;
  /** Grant lifetime in days (default 7 for one-time, as a "Testing" client's tokens; 30 for time-based). */
  days?: number;
  redirectUri: string;
  /** The PKCE challenge the consent URL carried; the code then needs its verifier. */
  codeChallenge?: string;
  /** Default S256 when a challenge is given (Google's default is `plain`; S256 is what apps send). */
  codeChallengeMethod?: 'S256' | 'plain';
}

export interface IssueIdTokenOptions {
  audience?: string;
  /** Default 3600; negative values give an already expired token. ID tokens use the real clock. */
  ttlSeconds?: number;
  /** Extra claims (e.g. `email`). `sub` and `aud` are set from the arguments. */
  claims?: Record<string, unknown>;
}

/** One request to the token endpoint, as recorded for tests (never a token, code or secret). */
export interface TokenCall {
  grantType: string;
  status: number;
  error?: string;
}

export interface OAuthSimulator {
  /** Base URL, `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  tokenUrl: string;
  jwksUrl: string;
  /** Google's authorization endpoint stand-in (auto-approving); see `handleAuthorize`. */
  authUrl: string;
  /** The web app's local sign-in: `POST {"userId"}` answers `{idToken}`. */
  idTokenUrl: string;
  idIssuer: LocalOidcIssuer;
  /** Default `aud` of `issueIdToken`. */
  idTokenAudience: string;
  consent(input: ConsentInput): string;
  issueIdToken(userId: string, opts?: IssueIdTokenOptions): Promise<string>;
  /** Every token endpoint request, in order. */
  calls: TokenCall[];
  faults: {
    /** The next `count` token endpoint requests answer `status` (e.g. 503) with a Google-style error body. */
    failNextTokenRequests(status: number, count: number): void;
    /** Drops failures that are still pending. */
    reset(): void;
  };
  stop(): Promise<void>;
}

class OAuthError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description);
  }
}

const MAX_BODY_BYTES = 64 * 1024;

export async function startOAuthSimulator(opts: OAuthSimulatorOptions): Promise<OAuthSimulator> {
  const { accounts, clientId, clientSecret } = opts;
  const now = opts.now ?? accounts.now;
  const accessTokenTtlMs = opts.accessTokenTtlMs ?? 3_600_000;
  const codeTtlMs = opts.codeTtlMs ?? 600_000;
  const idIssuer = opts.idIssuer ?? (await createLocalOidcIssuer({ issuer: opts.idTokenIssuer }));
  const idTokenAudience = opts.idTokenAudience ?? clientId;
  const calls: TokenCall[] = [];
  const pendingFailures: number[] = [];

  function mintCode(grant: SimGrant, input: ConsentInput): string {
    const code = `4/0sim-${randomBytes(24).toString('base64url')}`;
    const pkce: Pick<SimCode, 'codeChallenge' | 'codeChallengeMethod'> =
      input.codeChallenge !== undefined ? { codeChallenge: input.codeChallenge, codeChallengeMethod: input.codeChallengeMethod ?? 'S256' } : {};
    accounts.codes.set(code, { grantId: grant.grantId, redirectUri: input.redirectUri, clientId, expiresAt: now() + codeTtlMs, used: false, ...pkce });
    return code;
  }

  function consent(input: ConsentInput): string {
    const accessType = input.accessType ?? 'ONE_TIME';
    const grant = accounts.createGrant({
      googleUserId: input.googleUserId,
      resources: input.resources,
      accessType,
      days: input.days ?? (accessType === 'TIME_BASED' ? 30 : 7),
    });
    return mintCode(grant, input);
  }

  function grantedScope(grant: SimGrant): string {
    return grant.resources.map(scopeOf).join(' ');
  }

  function accessTokenResponse(grant: SimGrant): Record<string, unknown> {
    const t = accounts.mintAccessToken(grant.grantId, accessTokenTtlMs);
    return {
      access_token: t.token,
      // gaxios ignores a 0 expires_in, so never answer less than one second.
      expires_in: Math.max(1, Math.ceil(accessTokenTtlMs / 1000)),
      scope: grantedScope(grant),
      token_type: 'Bearer',
    };
  }

  /** Client authentication: client_secret_post or HTTP Basic, as Google accepts both. */
  function checkClient(params: URLSearchParams, authHeader: string | undefined): string {
    let id = params.get('client_id') ?? undefined;
    let secret = params.get('client_secret') ?? undefined;
    if (authHeader?.startsWith('Basic ')) {
      const decoded = Buffer.from(authHeader.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        id = decodeURIComponent(decoded.slice(0, colon));
        secret = decodeURIComponent(decoded.slice(colon + 1));
      }
    }
    if (!id) throw new OAuthError(400, 'invalid_request', 'Could not determine client ID from request.');
    if (id !== clientId) throw new OAuthError(401, 'invalid_client', 'The OAuth client was not found.');
    if (!secret || !safeEqual(secret, clientSecret)) throw new OAuthError(401, 'invalid_client', 'Unauthorized');
    return id;
  }

  function exchangeCode(params: URLSearchParams, callerClientId: string): Record<string, unknown> {
    const code = params.get('code');
    if (!code) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: code');
    const entry = accounts.codes.get(code);
    // Google answers unknown, used and expired codes alike.
    if (!entry || entry.used || entry.expiresAt <= now() || entry.clientId !== callerClientId) {
      throw new OAuthError(400, 'invalid_grant', 'Bad Request');
    }
    if ((params.get('redirect_uri') ?? '') !== entry.redirectUri) {
      throw new OAuthError(400, 'redirect_uri_mismatch', 'Bad Request');
    }
    const verifier = params.get('code_verifier');
    checkCodeVerifier(entry, verifier);
    const grant = accounts.grants.get(entry.grantId);
    if (!grant || grant.revoked || grant.expiresAt <= now()) throw new OAuthError(400, 'invalid_grant', 'Bad Request');
    entry.used = true;
    if (verifier !== null) entry.codeVerifier = verifier;
    const body: Record<string, unknown> = { ...accessTokenResponse(grant), refresh_token: grant.refreshToken };
    // Google sends this only when the user chose time-based access.
    if (grant.accessType === 'TIME_BASED') {
      body.refresh_token_expires_in = Math.max(0, Math.floor((grant.expiresAt - now()) / 1000));
    }
    return body;
  }

  function refresh(params: URLSearchParams): Record<string, unknown> {
    const refreshToken = params.get('refresh_token');
    if (!refreshToken) throw new OAuthError(400, 'invalid_request', 'Missing required parameter: refresh_token');
    const grant = accounts.grantByRefreshToken(refreshToken);
    if (!grant) throw new OAuthError(400, 'invalid_grant', 'Bad Request');
    if (grant.revoked || grant.expiresAt <= now()) {
      throw new OAuthError(400, 'invalid_grant', 'Token has been expired or revoked.');
    }
    return accessTokenResponse(grant);
  }

  async function handleToken(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let grantType = '';
    try {
      const raw = await readBody(req);
      const params = parseParams(raw, req.headers['content-type']);
      grantType = params.get('grant_type') ?? '';
      const failure = pendingFailures.shift();
      if (failure !== undefined) throw new OAuthError(failure, 'internal_failure', 'Backend Error');
      const callerClientId = checkClient(params, req.headers.authorization);
      let body: Record<string, unknown>;
      if (grantType === 'authorization_code') body = exchangeCode(params, callerClientId);
      else if (grantType === 'refresh_token') body = refresh(params);
      else if (!grantType) throw new OAuthError(400, 'unsupported_grant_type', 'Invalid grant_type: ');
      else throw new OAuthError(400, 'unsupported_grant_type', 'Invalid grant_type: ' + grantType.slice(0, 64));
      calls.push({ grantType, status: 200 });
      sendJson(res, 200, body);
    } catch (err) {
      const e = err instanceof OAuthError ? err : new OAuthError(400, 'invalid_request', 'Invalid request');
      calls.push({ grantType, status: e.httpStatus, error: e.error });
      sendJson(res, e.httpStatus, { error: e.error, error_description: e.description });
    }
  }

  /**
   * `GET /auth?client_id&redirect_uri&scope&state[&code_challenge&code_challenge_method]
   * [&login_hint=<googleUserId>]` approves at once and redirects with `code`, `scope` and `state`,
   * as Google's consent screen does after "Allow". Refused as Google refuses them (an error page,
   * no redirect): Data Portability scopes mixed with others, `include_granted_scopes=true`, a
   * `response_type` other than `code`, a malformed PKCE challenge or method.
   * Simulator-only knobs: `sim_access_type=ONE_TIME|TIME_BASED`, `sim_days`, `sim_grant=<groups,
   * comma-separated>` (partial consent: the intersection with the requested scopes), `sim_deny=1`.
   */
  function handleAuthorize(url: URL, res: http.ServerResponse, interactive = false): void {
    const q = url.searchParams;
    const redirectUri = q.get('redirect_uri');
    const refuse = (message: string) => {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(message);
    };
    if (q.get('client_id') !== clientId || !redirectUri) return refuse('Error 401: invalid_client (unknown client_id or missing redirect_uri)');
    const scopes = (q.get('scope') ?? '').split(' ').filter((x) => x !== '');
    const requested = groupsInScopes(scopes.join(' '));
    if (requested.length > 0 && requested.length !== scopes.length) return refuse('Error 400: invalid_scope (Data Portability scopes cannot be mixed with other scopes)');
    if (requested.length > 0 && q.get('include_granted_scopes') === 'true') return refuse('Error 400: invalid_request (Incremental auth is not allowed for the requested scopes)');
    if ((q.get('response_type') ?? 'code') !== 'code') return refuse('Error 400: unsupported_response_type');
    const challenge = q.get('code_challenge') ?? undefined;
    const method = q.get('code_challenge_method') ?? (challenge !== undefined ? 'plain' : undefined);
    if (method !== undefined && (challenge === undefined || (method !== 'S256' && method !== 'plain') || !VERIFIER_SHAPE.test(challenge))) {
      return refuse('Error 400: invalid_request (Invalid code_challenge or code_challenge_method)');
    }
    // A person in a browser gets the consent screen; its form posts the choice back here.
    if (interactive && requested.length > 0 && ![...q.keys()].some((k) => k.startsWith('sim_'))) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(consentPage(q, requested));
      return;
    }
    const target = new URL(redirectUri);
    const state = q.get('state');
    if (state !== null) target.searchParams.set('state', state);
    if (q.get('sim_deny') === '1' || requested.length === 0) {
      target.searchParams.set('error', requested.length === 0 ? 'invalid_scope' : 'access_denied');
    } else {
      const only = q.get('sim_grant')?.split(',').map((s) => s.trim());
      const resources = only ? requested.filter((r) => only.includes(r)) : requested;
      const accessType = q.get('sim_access_type') === 'TIME_BASED' ? 'TIME_BASED' : 'ONE_TIME';
      const days = q.get('sim_days') ? Number(q.get('sim_days')) : undefined;
      const code = consent({
        googleUserId: q.get('login_hint') || 'sim-user-1',
        resources,
        accessType,
        days,
        redirectUri,
        ...(challenge !== undefined ? { codeChallenge: challenge, codeChallengeMethod: method as 'S256' | 'plain' } : {}),
      });
      target.searchParams.set('code', code);
      target.searchParams.set('scope', resources.map(scopeOf).join(' '));
    }
    res.writeHead(302, { location: target.toString(), 'cache-control': 'no-store' });
    res.end();
  }

  /**
   * `POST /id-token {"userId"}`: the local stack's sign-in for the web app (what Firebase
   * Authentication does in production): an ID token of the frontend's issuer for that user. Any
   * page may ask (CORS `*`, no cookies): this issuer is trusted only by the local API.
   */
  async function handleIdToken(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'Content-Type', 'access-control-allow-methods': 'POST' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      res.end();
      return;
    }
    try {
      if (req.method !== 'POST') throw new OAuthError(405, 'invalid_request', 'POST {"userId"}');
      const params = parseParams(await readBody(req), req.headers['content-type']);
      const userId = params.get('userId') ?? '';
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(userId)) throw new OAuthError(400, 'invalid_request', 'userId: letters, digits, _ and - only (1 to 128)');
      const ttlSeconds = 3600;
      sendJson(res, 200, { idToken: await idIssuer.sign({ sub: userId, aud: idTokenAudience }, ttlSeconds), expiresIn: ttlSeconds }, cors);
    } catch (err) {
      const e = err instanceof OAuthError ? err : new OAuthError(400, 'invalid_request', 'Invalid request');
      sendJson(res, e.httpStatus, { error: e.error, error_description: e.description }, cors);
    }
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/token') {
      void handleToken(req, res);
    } else if (req.method === 'GET' && url.pathname === '/jwks') {
      sendJson(res, 200, idIssuer.jwks(), { 'cache-control': 'public, max-age=300' });
    } else if (url.pathname === '/id-token') {
      void handleIdToken(req, res);
    } else if (req.method === 'GET' && url.pathname === '/auth') {
      try {
        handleAuthorize(url, res, /\btext\/html\b/.test(req.headers.accept ?? ''));
      } catch {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'Invalid redirect_uri' });
      }
    } else if (req.method === 'POST' && url.pathname === '/auth') {
      // The consent screen's form: the person's choice becomes the same redirect as the knobs give.
      readBody(req)
        .then((raw) => handleAuthorize(new URL(`/auth?${decisionQuery(new URLSearchParams(raw)).toString()}`, url), res))
        .catch(() => sendJson(res, 400, { error: 'invalid_request', error_description: 'Invalid request' }));
    } else {
      sendJson(res, 404, { error: 'not_found', error_description: 'Not Found' });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: base,
    tokenUrl: `${base}/token`,
    jwksUrl: `${base}/jwks`,
    authUrl: `${base}/auth`,
    idTokenUrl: `${base}/id-token`,
    idIssuer,
    idTokenAudience,
    consent,
    async issueIdToken(userId, o = {}) {
      return idIssuer.sign({ ...o.claims, sub: userId, aud: o.audience ?? idTokenAudience }, o.ttlSeconds ?? 3600);
    },
    calls,
    faults: {
      failNextTokenRequests(status, count) {
        for (let i = 0; i < count; i++) pendingFailures.push(status);
      },
      reset() {
        pendingFailures.length = 0;
      },
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** RFC 7636 §4.1: 43 to 128 unreserved characters (a challenge, S256 or plain, has the same shape). */
const VERIFIER_SHAPE = /^[A-Za-z0-9._~-]{43,128}$/;

/**
 * PKCE as Google checks it: a code minted with a challenge needs the verifier that hashes to it.
 * A verifier sent for a code minted without one is refused too (OAuth 2.1, draft §4.1.3: a
 * downgrade that would let a code from an unbound consent pass as bound).
 */
function checkCodeVerifier(entry: SimCode, verifier: string | null): void {
  if (entry.codeChallenge === undefined) {
    if (verifier !== null) throw new OAuthError(400, 'invalid_grant', 'Invalid code verifier.');
    return;
  }
  if (verifier === null) throw new OAuthError(400, 'invalid_grant', 'Missing code verifier.');
  if (!VERIFIER_SHAPE.test(verifier)) throw new OAuthError(400, 'invalid_grant', 'Invalid code verifier.');
  const expected = entry.codeChallengeMethod === 'plain' ? verifier : createHash('sha256').update(verifier, 'ascii').digest('base64url');
  if (!safeEqual(expected, entry.codeChallenge)) throw new OAuthError(400, 'invalid_grant', 'Invalid code verifier.');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new OAuthError(413, 'invalid_request', 'Request too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Google's token endpoint takes form-encoded bodies; JSON is accepted too. */
function parseParams(raw: string, contentType: string | undefined): URLSearchParams {
  if (contentType?.includes('application/json')) {
    const obj = JSON.parse(raw) as Record<string, unknown>;
    return new URLSearchParams(Object.entries(obj).map(([k, v]): [string, string] => [k, String(v)]));
  }
  return new URLSearchParams(raw);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-cache, no-store, max-age=0, must-revalidate',
    pragma: 'no-cache',
    ...headers,
  });
  res.end(text);
}
