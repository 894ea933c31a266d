/** The seam to Google's OAuth token endpoint: code exchange (with PKCE) and refresh. */

export interface ExchangedTokens {
  accessToken: string;
  refreshToken?: string;
  /** epoch ms */
  expiresAt: number;
  /** space-separated granted scopes */
  scope: string;
  /** epoch ms: when the refresh token stops working (Google sends `refresh_token_expires_in` for time-based access only). */
  refreshTokenExpiresAt?: number;
}

export interface OAuthTokenClient {
  /** `codeVerifier`: the PKCE verifier of the consent the code answers (RFC 7636). */
  exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<ExchangedTokens>;
  /** Throws ConsentRevokedError when the token endpoint answers invalid_grant. */
  refresh(refreshToken: string): Promise<{ accessToken: string; expiresAt: number }>;
}

