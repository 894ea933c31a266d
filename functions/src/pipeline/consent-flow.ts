/**
 * Consent bound to the caller. `start` builds Google's consent URL for exactly the groups asked
 * for, with a `state` that belongs to this user and a PKCE challenge; `claim` takes that state
 * back once, for that user only, before it expires, and gives the redirect URI and the verifier
 * the code exchange must send. A code minted under someone else's consent cannot be exchanged:
 * its state is not the caller's, and its challenge does not match the caller's verifier.
 */
import { consentUrl, MAX_AUTHORIZATION_URL_LENGTH, pkceChallenge, randomToken, stateKey } from '../domain/consent-url';
import type { ConsentStateRefusal, ConsentStateStore } from '../domain/consent-state';
import { RequestError } from '../domain/errors';
import type { SecretCipher } from '../domain/ports/secret-cipher';

export interface ConsentFlowOptions {
  store: ConsentStateStore;
  /** Made on first use. */
  cipher: () => Promise<SecretCipher>;
  /** Google's authorization endpoint. */
  authUrl: string;
  clientId: string;
  /** The redirect URIs a consent may return to (exact match, as Google matches them). */
  redirectUris: string[];
  /** How long a started consent may take. */
  stateTtlSeconds: number;
  now?: () => number;
}

export interface StartedConsent {
  authorizationUrl: string;
  state: string;
  /** RFC 3339 */
  expiresAt: string;
}

export interface ClaimedConsent {
  redirectUri: string;
  codeVerifier: string;
  resources: string[];
}

/** States this flow issues: 32 random bytes, base64url. Anything else was never issued. */
const STATE_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** The verifier is bound to the user and the state: moved to another record, it does not decrypt. */
const verifierContext = (userId: string, key: string): string => `consent-state:${key}:${userId}`;

const REFUSALS: Record<ConsentStateRefusal, (ttlSeconds: number) => RequestError> = {
  UNKNOWN: () => new RequestError(400, 'INVALID_STATE', 'This state was not issued to you: start the consent with POST /v1/authorizations:start', 'state'),
  EXPIRED: (ttl) => new RequestError(400, 'STATE_EXPIRED', `The consent was not completed within ${ttl} seconds: start it again`, 'state'),
  USED: () => new RequestError(400, 'STATE_ALREADY_USED', 'This state was already used: start a new consent', 'state'),
};

export class ConsentFlow {
  private readonly now: () => number;

  constructor(private readonly opts: ConsentFlowOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(userId: string, input: { resources: string[]; redirectUri: string }): Promise<StartedConsent> {
    if (!this.opts.redirectUris.includes(input.redirectUri)) {
      throw new RequestError(400, 'REDIRECT_URI_NOT_ALLOWED', 'redirectUri: is not one of the redirect URIs this API is configured with', 'redirectUri');
    }
    const resources = [...new Set(input.resources)].sort();
    const state = randomToken();
    const codeVerifier = randomToken();
    const authorizationUrl = consentUrl({
      authUrl: this.opts.authUrl,
      clientId: this.opts.clientId,
      redirectUri: input.redirectUri,
      resources,
      state,
      codeChallenge: pkceChallenge(codeVerifier),
    });
    if (authorizationUrl.length > MAX_AUTHORIZATION_URL_LENGTH) {
      throw new RequestError(
        400,
        'TOO_MANY_RESOURCES',
        `resources: the consent URL for ${resources.length} groups would be ${authorizationUrl.length} characters, more than the ${MAX_AUTHORIZATION_URL_LENGTH} Google's consent screen reliably takes: ask for fewer groups per consent`,
        'resources',
      );
    }
    const now = this.now();
    const key = stateKey(state);
    const expiresAt = now + this.opts.stateTtlSeconds * 1000;
    await this.opts.store.create(key, {
      userId,
      resources,
      redirectUri: input.redirectUri,
      codeVerifier: await (await this.opts.cipher()).encrypt(codeVerifier, verifierContext(userId, key)),
      createdAt: now,
      expiresAt,
    });
    return { authorizationUrl, state, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Single use: of concurrent claims of one state, one succeeds and the others are refused. */
  async claim(userId: string, state: string): Promise<ClaimedConsent> {
    if (!STATE_SHAPE.test(state)) throw REFUSALS.UNKNOWN(this.opts.stateTtlSeconds);
    const key = stateKey(state);
    const claimed = await this.opts.store.claim(key, userId, this.now());
    if (!claimed.ok) throw REFUSALS[claimed.refusal](this.opts.stateTtlSeconds);
    const { codeVerifier, redirectUri, resources } = claimed.state;
    if (!codeVerifier) throw REFUSALS.USED(this.opts.stateTtlSeconds);
    return { redirectUri, resources, codeVerifier: await (await this.opts.cipher()).decrypt(codeVerifier, verifierContext(userId, key)) };
  }

  /** Forgets every consent the user started (after a reset nothing of theirs stays). */
  async forget(userId: string): Promise<void> {
    await this.opts.store.deleteOfUser(userId);
  }
}
