/**
 * The cached remote key set behind every token check, against a real HTTP server publishing a
 * JWKS: rotation, the refetch cooldown and maximum age, one fetch at a time, and jose's own errors
 * for a set that cannot be fetched or read.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRemoteKeySet } from '../../functions/src/adapters/remote-key-set';

interface SigningKey {
  kid: string;
  jwk: JWK;
  sign: (claims?: Record<string, unknown>) => Promise<string>;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, jwk, sign: (claims = {}) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).setExpirationTime('5m').sign(privateKey) };
}

let server: http.Server;
let url: URL;
let published: SigningKey[] = [];
let hits = 0;
let answer: 'keys' | 'not-json' | 'error' | 'hang' = 'keys';
let delayMs = 0;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    hits++;
    if (answer === 'hang') return; // never answers
    setTimeout(() => {
      if (answer === 'error') {
        res.writeHead(503).end('unavailable');
        return;
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(answer === 'not-json' ? '{"keys": [' : JSON.stringify({ keys: published.map((k) => k.jwk) }));
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/certs`);
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  hits = 0;
  answer = 'keys';
  delayMs = 0;
});

describe('createRemoteKeySet', () => {
  it('fetches once, verifies, and refetches only when the set is older than its maximum age', async () => {
    const k1 = await signingKey('k1');
    published = [k1];
    let clock = 1_000_000;
    const keys = createRemoteKeySet(url, { maxAgeMs: 60_000, now: () => clock });
    for (let i = 0; i < 3; i++) await jwtVerify(await k1.sign({ i }), keys);
    expect(hits).toBe(1);
    clock += 61_000;
    await jwtVerify(await k1.sign(), keys);
    expect(hits).toBe(2);
  });

  it('follows a key rotation: an unknown kid refetches, but at most once per cooldown', async () => {
    const [k1, k2, k3] = await Promise.all([signingKey('k1'), signingKey('k2'), signingKey('k3')]);
    published = [k1];
    let clock = 5_000_000;
    const keys = createRemoteKeySet(url, { cooldownMs: 30_000, now: () => clock });
    await jwtVerify(await k1.sign(), keys);
    published = [k1, k2];
    // Within the cooldown the new key is not looked for yet.
    await expect(jwtVerify(await k2.sign(), keys)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(hits).toBe(1);
    clock += 30_000;
    await jwtVerify(await k2.sign(), keys);
    expect(hits).toBe(2);
    // A kid nobody publishes costs one fetch per cooldown, not one per token.
    clock += 30_000;
    for (let i = 0; i < 5; i++) await expect(jwtVerify(await k3.sign(), keys)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    expect(hits).toBe(3);
  });

  it('shares one fetch between concurrent verifications', async () => {
    const k1 = await signingKey('k1');
    published = [k1];
    delayMs = 50;
    const keys = createRemoteKeySet(url);
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => k1.sign({ i })));
    await Promise.all(tokens.map((t) => jwtVerify(t, keys)));
    expect(hits).toBe(1);
  });

  it("fails with jose's errors when the set cannot be fetched or read, and recovers on the next call", async () => {
    const k1 = await signingKey('k1');
    published = [k1];
    const token = await k1.sign();
    const keys = createRemoteKeySet(url, { timeoutMs: 200 });
    answer = 'error';
    await expect(jwtVerify(token, keys)).rejects.toMatchObject({ code: 'ERR_JOSE_GENERIC' });
    answer = 'not-json';
    await expect(jwtVerify(token, keys)).rejects.toMatchObject({ code: 'ERR_JOSE_GENERIC', message: expect.stringMatching(/JSON/) });
    answer = 'hang';
    await expect(jwtVerify(token, keys)).rejects.toBeInstanceOf(errors.JWKSTimeout);
    answer = 'keys';
    await expect(jwtVerify(token, keys)).resolves.toMatchObject({ protectedHeader: { kid: 'k1' } });
    expect(hits).toBe(4);
  });

  it('refuses a URL that is not http(s)', async () => {
    const keys = createRemoteKeySet(new URL('file:///etc/passwd'));
    const k1 = await signingKey('k1');
    await expect(jwtVerify(await k1.sign(), keys)).rejects.toThrow('Unsupported URL protocol');
  });
});
