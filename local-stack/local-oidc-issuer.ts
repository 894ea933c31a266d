/**
 * A local OpenID issuer: an RSA key that signs RS256 JWTs and publishes its JWKS. The local stack
 * uses one for the frontend users' ID tokens (standing in for Firebase Authentication) and one for
 * the OIDC tokens Cloud Tasks attaches to its requests (standing in for Google's).
 */
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';

export interface LocalOidcIssuer {
  issuer: string;
  kid: string;
  /** `iat` is now and `exp` now + ttlSeconds unless `claims` names them (undefined leaves one out: forged tokens in tests). */
  sign(claims: Record<string, unknown>, ttlSeconds?: number): Promise<string>;
  jwks(): { keys: JWK[] };
}

export async function createLocalOidcIssuer(opts: { issuer?: string } = {}): Promise<LocalOidcIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const kid = randomBytes(8).toString('hex');
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const issuer = opts.issuer ?? 'https://local-issuer.invalid';
  return {
    issuer,
    kid,
    async sign(claims, ttlSeconds = 3600) {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = { iat: now, exp: now + ttlSeconds, ...claims };
      for (const k of ['iat', 'exp']) if (payload[k] === undefined) delete payload[k];
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .sign(privateKey as KeyLike);
    },
    jwks: () => ({ keys: [publicJwk] }),
  };
}
