/**
 * The Cloud Storage stand-in's V4 signed-URL check, against URLs the real storage client signs
 * with a generated key: a good one passes inside its window, and every alteration, another key,
 * a time before or after the window, and malformed parameters are refused.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyV4SignedUrl, type Verdict } from '../../local-stack/gcs-signed-urls';

const EMAIL = 'signer@demo.iam.gserviceaccount.com';
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
const keys = new Map([[EMAIL, createPublicKey(key)]]);
/** Whole seconds, as the signature carries them (the client refuses an expiry already past, so near now). */
const ISSUED = Math.floor(Date.now() / 1000) * 1000;
let signed: URL;
const googDate = (ms: number): string => new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');

beforeAll(async () => {
  const storage = new Storage({ projectId: 'demo', apiEndpoint: 'http://127.0.0.1:4443', credentials: { client_email: EMAIL, private_key: key } });
  const [url] = await storage.bucket('local-archives').file("u/e1/my activity/archive (1) ü.zip").getSignedUrl({ version: 'v4', action: 'read', accessibleAt: ISSUED, expires: ISSUED + 600_000 });
  signed = new URL(url);
});

const check = (url: URL, now = ISSUED + 1000, method = 'GET', host = url.hostname, k = keys): Verdict =>
  verifyV4SignedUrl({ method, host, rawPath: url.pathname, query: url.searchParams }, k, now);

const withParam = (name: string, value: string): URL => {
  const u = new URL(signed);
  u.searchParams.set(name, value);
  return u;
};

describe('verifyV4SignedUrl', () => {
  it('accepts what the storage client signed, from its X-Goog-Date to just before its expiry', () => {
    expect(signed.pathname).toBe('/local-archives/u/e1/my%20activity/archive%20%281%29%20%C3%BC.zip');
    expect(check(signed, ISSUED)).toEqual({ ok: true });
    expect(check(signed, ISSUED + 599_999)).toEqual({ ok: true });
  });

  it('refuses it before and after its window', () => {
    expect(check(signed, ISSUED + 600_000)).toMatchObject({ ok: false, code: 'ExpiredToken' });
    expect(check(signed, ISSUED - 1000)).toMatchObject({ ok: false, code: 'AccessDenied' });
  });

  it('refuses any alteration: signature, path, expiry, date, an added parameter, method, host', () => {
    const sig = signed.searchParams.get('X-Goog-Signature') ?? '';
    const flipped = (sig[10] === '0' ? '1' : '0');
    expect(check(withParam('X-Goog-Signature', sig.slice(0, 10) + flipped + sig.slice(11)))).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    const other = new URL(signed);
    other.pathname = '/local-archives/u/e2/archive.zip';
    expect(check(other)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(check(withParam('X-Goog-Expires', '3600'))).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    // (SignatureDoesNotMatch, or a malformed credential date should the minute cross midnight UTC)
    expect(check(withParam('X-Goog-Date', googDate(ISSUED + 60_000)))).toMatchObject({ ok: false });
    expect(check(withParam('response-content-type', 'text/html'))).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(check(signed, ISSUED + 1000, 'DELETE')).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(check(signed, ISSUED + 1000, 'GET', 'evil.example')).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
  });

  it('refuses a signature by a key not trusted for the account, and an unknown account', () => {
    expect(check(signed, ISSUED + 1000, 'GET', signed.hostname, new Map([[EMAIL, otherKey]]))).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(check(signed, ISSUED + 1000, 'GET', signed.hostname, new Map())).toMatchObject({ ok: false, code: 'AccessDenied' });
  });

  it('refuses malformed or missing parameters', () => {
    for (const [name, value] of [
      ['X-Goog-Algorithm', 'GOOG4-HMAC-SHA256'],
      ['X-Goog-Expires', '0'],
      ['X-Goog-Expires', '604801'],
      ['X-Goog-Date', new Date(ISSUED).toISOString()],
      ['X-Goog-Credential', `${EMAIL}/${googDate(ISSUED).slice(0, 8)}/auto/storage`],
      ['X-Goog-SignedHeaders', 'content-type'],
    ] as const) {
      expect(check(withParam(name, value)), `${name}=${value}`).toMatchObject({ ok: false, code: 'AuthorizationQueryParametersError' });
    }
    const missing = new URL(signed);
    missing.searchParams.delete('X-Goog-Signature');
    expect(check(missing)).toMatchObject({ ok: false, code: 'AuthorizationQueryParametersError' });
    const twice = new URL(signed);
    twice.searchParams.append('X-Goog-Expires', '600');
    expect(check(twice)).toMatchObject({ ok: false, code: 'AuthorizationQueryParametersError' });
  });
});
