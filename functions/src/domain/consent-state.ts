/**
 * A consent this app started for one of its users (POST /v1/authorizations:start), kept until the
 * user comes back with Google's code. It binds the code to the caller: only the user it was
 * issued to may use it, once, before it expires, and only with the redirect URI and the PKCE
 * verifier it holds.
 */
import type { EncryptedSecret } from './model';

export interface ConsentState {
  userId: string;
  /** The resource groups the consent URL asked for. */
  resources: string[];
  redirectUri: string;
  /** The PKCE code_verifier, encrypted (bound to the user and the state); gone once used. */
  codeVerifier?: EncryptedSecret;
  createdAt: number;
  /** epoch ms */
  expiresAt: number;
  /** epoch ms; set when a code exchange claimed it. */
  usedAt?: number;
}

export type ConsentStateRefusal = 'UNKNOWN' | 'EXPIRED' | 'USED';

/**
 * Whether `userId` may use this state now. Another user's state answers exactly like an unknown
 * one, so a caller learns nothing about states that are not theirs.
 */
export function consentStateUse(state: ConsentState | undefined, userId: string, now: number): { ok: true } | { ok: false; refusal: ConsentStateRefusal } {
  if (!state || state.userId !== userId) return { ok: false, refusal: 'UNKNOWN' };
  if (state.usedAt !== undefined || !state.codeVerifier) return { ok: false, refusal: 'USED' };
  if (state.expiresAt <= now) return { ok: false, refusal: 'EXPIRED' };
  return { ok: true };
}

/** The store of started consents, keyed by the hash of the state (never the state itself). */
export interface ConsentStateStore {
  /** Creates the record; a key collision (never expected: 256 random bits) throws. */
  create(key: string, state: ConsentState): Promise<void>;
  /**
   * In one transaction: reads the state, decides with `consentStateUse`, and when allowed marks it
   * used and drops its verifier. Of any number of concurrent claims, at most one gets `ok`.
   */
  claim(key: string, userId: string, now: number): Promise<{ ok: true; state: ConsentState } | { ok: false; refusal: ConsentStateRefusal }>;
  /** Deletes every consent the user started (on reset: nothing of theirs stays); returns how many. */
  deleteOfUser(userId: string): Promise<number>;
}
