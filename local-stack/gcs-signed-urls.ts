/**
 * How the Cloud Storage stand-in checks a V4 signed URL (GOOG4-RSA-SHA256), as Cloud Storage
 * does: the canonical request rebuilt from what arrived, the string to sign over its SHA-256, an
 * RSA-SHA256 signature by a key it trusts for the credential's account, and the validity window
 * (X-Goog-Date + X-Goog-Expires) against its own clock. Pure: the server passes the request in.
 */
import { createHash, createVerify, type KeyObject } from 'node:crypto';

export interface SignedRequest {
  method: string;
  /** The Host header's host name (the signer signs the host without its port). */
  host: string;
  /** The path as it arrived, still percent-encoded. */
  rawPath: string;
  query: URLSearchParams;
}

export type Verdict = { ok: true } | { ok: false; code: 'AccessDenied' | 'ExpiredToken' | 'SignatureDoesNotMatch' | 'AuthorizationQueryParametersError'; message: string };

const REQUIRED = ['X-Goog-Algorithm', 'X-Goog-Credential', 'X-Goog-Date', 'X-Goog-Expires', 'X-Goog-SignedHeaders', 'X-Goog-Signature'] as const;

/** RFC 3986 unreserved characters stay, everything else is %XX: what the signer's canonical query uses. */
const strictEncode = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `20261201T121500Z` as epoch ms, or NaN. */
function parseGoogDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : NaN;
}

export function verifyV4SignedUrl(req: SignedRequest, keys: ReadonlyMap<string, KeyObject>, now: number): Verdict {
  const q = req.query;
  for (const name of REQUIRED) {
    if (q.getAll(name).length !== 1) return { ok: false, code: 'AuthorizationQueryParametersError', message: `Exactly one ${name} is required` };
  }
  const get = (name: (typeof REQUIRED)[number]): string => q.get(name) as string;
  if (get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256') return { ok: false, code: 'AuthorizationQueryParametersError', message: 'Only GOOG4-RSA-SHA256 is supported' };
  const credential = get('X-Goog-Credential').split('/');
  const [email, datestamp, location, service, terminator] = credential;
  if (credential.length !== 5 || location !== 'auto' || service !== 'storage' || terminator !== 'goog4_request') {
    return { ok: false, code: 'AuthorizationQueryParametersError', message: 'X-Goog-Credential must be <email>/<date>/auto/storage/goog4_request' };
  }
  const signedAt = parseGoogDate(get('X-Goog-Date'));
  const expires = /^[1-9]\d{0,6}$/.test(get('X-Goog-Expires')) ? Number(get('X-Goog-Expires')) : NaN;
  if (Number.isNaN(signedAt) || Number.isNaN(expires) || expires > 604_800 || get('X-Goog-Date').slice(0, 8) !== datestamp) {
    return { ok: false, code: 'AuthorizationQueryParametersError', message: 'X-Goog-Date or X-Goog-Expires is malformed' };
  }
  const key = keys.get(email as string);
  if (!key) return { ok: false, code: 'AccessDenied', message: `No key of ${email} is trusted here` };
  const signedHeaders = get('X-Goog-SignedHeaders').split(';');
  if (!signedHeaders.includes('host')) return { ok: false, code: 'AuthorizationQueryParametersError', message: 'The host header must be signed' };
  // Only the host is ever signed by our signer; any other signed header would need its value here.
  if (signedHeaders.length !== 1) return { ok: false, code: 'SignatureDoesNotMatch', message: 'Only the host header may be signed' };
  const query = [...q.entries()]
    .filter(([k]) => k !== 'X-Goog-Signature')
    .map(([k, v]) => [strictEncode(k), strictEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [req.method, req.rawPath, query, `host:${req.host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = ['GOOG4-RSA-SHA256', get('X-Goog-Date'), `${datestamp}/auto/storage/goog4_request`, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const signature = get('X-Goog-Signature');
  const good = /^[0-9a-f]+$/.test(signature) && createVerify('RSA-SHA256').update(stringToSign).verify(key, Buffer.from(signature, 'hex'));
  if (!good) return { ok: false, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided' };
  // Checked after the signature, as Cloud Storage does: an altered expiry is a bad signature, not an expired one.
  if (now < signedAt) return { ok: false, code: 'AccessDenied', message: 'The signed URL is not valid yet' };
  if (now >= signedAt + expires * 1000) return { ok: false, code: 'ExpiredToken', message: 'The provided token has expired' };
  return { ok: true };
}
