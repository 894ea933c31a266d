/**
 * A JSON Web Key Set fetched from an issuer's URL and cached, for jose's `jwtVerify`: what jose's
 * `createRemoteJWKSet` does (refetch after `maxAgeMs`, or on an unknown `kid` at most every
 * `cooldownMs`; one fetch at a time), over node:http(s) alone. jose's version builds a WHATWG
 * `Headers`, which makes Node load its fetch implementation: about 8 ms of every cold start.
 * Failures are jose's own errors, so callers tell a bad token from keys that could not be fetched.
 */
import http from 'node:http';
import https from 'node:https';
import { JOSEError, JWKSNoMatchingKey, JWKSTimeout } from 'jose/errors';
import { createLocalJWKSet } from 'jose/jwks/local';
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose/jwt/verify';

export interface RemoteKeySetOptions {
  timeoutMs?: number;
  /** Refetch a set older than this (jose's default: 10 minutes). */
  maxAgeMs?: number;
  /** An unknown `kid` refetches the set at most this often (jose's default: 30 s). */
  cooldownMs?: number;
  now?: () => number;
}

/** A key set for jwtVerify, and `warm()` to fetch it ahead of the first token (at a cold start). */
export type RemoteKeySet = JWTVerifyGetKey & { warm(): Promise<void> };

export function createRemoteKeySet(url: URL, opts: RemoteKeySetOptions = {}): RemoteKeySet {
  const now = opts.now ?? Date.now;
  const maxAgeMs = opts.maxAgeMs ?? 600_000;
  const cooldownMs = opts.cooldownMs ?? 30_000;
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  let pending: Promise<ReturnType<typeof createLocalJWKSet>> | undefined;
  const reload = () =>
    (pending ??= fetchKeySet(url, opts.timeoutMs ?? 5_000)
      .then((set) => {
        keys = createLocalJWKSet(set);
        fetchedAt = now();
        return keys;
      })
      .finally(() => (pending = undefined)));
  const fresh = async () => (keys && now() - fetchedAt < maxAgeMs ? keys : reload());
  const getKey: JWTVerifyGetKey = async (header, token) => {
    const current = await fresh();
    try {
      return await current(header, token);
    } catch (err) {
      // A key the issuer added since we fetched: look again, unless we just did.
      if (err instanceof JWKSNoMatchingKey && now() - fetchedAt >= cooldownMs) return (await reload())(header, token);
      throw err;
    }
  };
  return Object.assign(getKey, { warm: async () => void (await fresh()) });
}

function fetchKeySet(url: URL, timeoutMs: number): Promise<JSONWebKeySet> {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return Promise.reject(new TypeError('Unsupported URL protocol.'));
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise<JSONWebKeySet>((resolve, reject) => {
    const req = get(url, { timeout: timeoutMs, headers: { Accept: 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new JOSEError('Expected 200 OK from the JSON Web Key Set HTTP response'));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as JSONWebKeySet);
        } catch {
          reject(new JOSEError('Failed to parse the JSON Web Key Set HTTP response as JSON'));
        }
      });
    });
    req.on('timeout', () => {
      req.destroy();
      reject(new JWKSTimeout());
    });
    req.on('error', reject);
  });
}
