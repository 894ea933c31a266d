/**
 * Google's OAuth token endpoint through google-auth-library's OAuth2Client: exchanges the
 * authorization code of a consent and refreshes access tokens. Errors are mapped to the domain's
 * error types; no message ever carries a code, a token or the client secret, and the library's
 * error (whose request config holds them) is never attached as a cause.
 */
import { OAuth2Client } from 'google-auth-library';
import { z } from 'zod';
import { AuthorizationCodeError, ConsentRevokedError } from '../domain/errors';
import type { ExchangedTokens, OAuthTokenClient } from '../domain/ports/google-oauth';

export interface GoogleOAuthTokenClientOptions {
  clientId: string;
  clientSecret: string;
  /** Google's is `https://oauth2.googleapis.com/token`; the local stack points it at the simulator. */
  tokenUrl: string;
  /** Per-request timeout (default 10 s). The library retries 5xx/429/network errors a few times on its own. */
  timeoutMs?: number;
  /** Clock for `refreshTokenExpiresAt` (epoch ms; default Date.now). */
  now?: () => number;
}

/**
 * The token endpoint failed for a reason that is not the user's consent or code: a client
 * misconfiguration (`invalid_client`), a malformed answer, or an outage. `transient` says whether
 * trying again later may help.
 */
export class OAuthTokenEndpointError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly httpStatus?: number,
    /** The OAuth `error` code, e.g. `invalid_client`. */
    readonly oauthError?: string,
  ) {
    super(message);
    this.name = 'OAuthTokenEndpointError';
  }
}

const tokenResponse = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).nullish(),
  expiry_date: z.number().nullish(),
  scope: z.string().nullish(),
  /** Seconds; Google sends it when the user chose time-based access (the grant's remaining days). */
  refresh_token_expires_in: z.number().nonnegative().nullish(),
});

const errorBody = z.object({ error: z.string(), error_description: z.string().optional() });

/** Google's access tokens live one hour; assumed when an answer leaves the expiry out. */
const DEFAULT_TTL_MS = 3_600_000;

export class GoogleOAuthTokenClient implements OAuthTokenClient {
  private readonly client: OAuth2Client;

  constructor(private readonly opts: GoogleOAuthTokenClientOptions) {
    this.client = this.newClient();
  }

  async exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<ExchangedTokens> {
    let data: unknown;
    try {
      data = (await this.client.getToken({ code, redirect_uri: redirectUri, codeVerifier })).tokens;
    } catch (err) {
      throw mapError(err, 'exchange');
    }
    const t = parse(data);
    return {
      accessToken: t.access_token,
      refreshToken: t.refresh_token ?? undefined,
      expiresAt: t.expiry_date ?? Date.now() + DEFAULT_TTL_MS,
      scope: t.scope ?? '',
      ...(t.refresh_token_expires_in != null ? { refreshTokenExpiresAt: (this.opts.now ?? Date.now)() + t.refresh_token_expires_in * 1000 } : {}),
    };
  }

  async refresh(refreshToken: string): Promise<{ accessToken: string; expiresAt: number }> {
    // A client per call: refreshAccessToken works on the client's own credentials, and one shared
    // client would mix up concurrent refreshes of different users.
    const client = this.newClient();
    client.setCredentials({ refresh_token: refreshToken });
    let data: unknown;
    try {
      data = (await client.refreshAccessToken()).credentials;
    } catch (err) {
      throw mapError(err, 'refresh');
    }
    const t = parse(data);
    return { accessToken: t.access_token, expiresAt: t.expiry_date ?? Date.now() + DEFAULT_TTL_MS };
  }

  private newClient(): OAuth2Client {
    return new OAuth2Client({
      clientId: this.opts.clientId,
      clientSecret: this.opts.clientSecret,
      endpoints: { oauth2TokenUrl: this.opts.tokenUrl },
      transporterOptions: { timeout: this.opts.timeoutMs ?? 10_000 },
    });
  }
}

function parse(data: unknown): z.output<typeof tokenResponse> {
  const r = tokenResponse.safeParse(data);
  if (!r.success) throw new OAuthTokenEndpointError('The token endpoint answered without a usable access token', false);
  return r.data;
}

function mapError(err: unknown, op: 'exchange' | 'refresh'): Error {
  const response = (err as { response?: { status?: unknown; data?: unknown } } | null)?.response;
  const status = typeof response?.status === 'number' ? response.status : undefined;
  if (status === undefined) {
    // No answer at all: connection refused, reset or timed out.
    return new OAuthTokenEndpointError(`The token endpoint could not be reached (${op})`, true);
  }
  const body = errorBody.safeParse(response?.data);
  const oauthError = body.success ? body.data.error : undefined;
  if (oauthError === 'invalid_grant') {
    return op === 'refresh'
      ? new ConsentRevokedError()
      : new AuthorizationCodeError('The authorization code is invalid, expired, already used, or not from the consent this user started');
  }
  if (op === 'exchange' && oauthError === 'redirect_uri_mismatch') {
    return new AuthorizationCodeError('The redirect URI does not match the one used for the consent');
  }
  if (op === 'exchange' && oauthError === 'invalid_request' && status === 400) {
    return new AuthorizationCodeError('The token endpoint rejected the code exchange request (invalid_request)');
  }
  const transient = status === 408 || status === 429 || status >= 500;
  return new OAuthTokenEndpointError(
    `The token endpoint answered HTTP ${status}${oauthError ? ` (${oauthError.slice(0, 64)})` : ''} to a ${op}`,
    transient,
    status,
    oauthError,
  );
}
