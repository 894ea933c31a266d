/**
 * The signed archive URL as a source of bytes: which URLs may be fetched at all (scheme, user
 * info, host allow-list, public addresses), the GET itself, the one mapping from its HTTP status
 * to an error, and what its headers declare about the archive.
 */
import { ArchiveRejectedError, ArchiveUrlExpiredError } from '../domain/errors';
import type { ArchiveFacts } from '../domain/ports/archive-copier';
import { assertPublicHost, defaultLookup, type HostLookup } from './address-guard';
import { fetchSourceGet, nodeSourceGet, SourceAddressRefusedError, type SourceGet, type SourceResponse } from './source-download';

export type { SourceResponse } from './source-download';

export interface SignedUrlSourceOptions {
  /** Hosts the signed URLs may point at: a hostname (`storage.googleapis.com`) or `host:port`. */
  allowedHosts: string[];
  /** Local stack only: production signed URLs are https. */
  allowHttp: boolean;
  /** Refuse hosts that resolve to non-public addresses (default: on unless `allowHttp`). */
  refusePrivateAddresses?: boolean;
  /** DNS resolution used by that check (all addresses); tests hand in their own. */
  lookup?: HostLookup;
  /** Tests: download through this `fetch` instead of node:http(s). */
  fetchImpl?: typeof fetch;
}

/** A URL safe to put in logs and errors: the query string of a signed URL is a credential. */
export function describe(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * The one reading of a source's answer that is not the bytes asked for. `what` names the request
 * (`Archive download`); `unexpected` replaces `${what} answered ${status}` for a status that says
 * nothing more (a 200 where a range was asked, a 404).
 */
export function sourceStatusError(status: number, what: string, where: string, unexpected = `${what} answered ${status}`): Error {
  if (status >= 300 && status < 400) {
    return new ArchiveRejectedError(`Archive URL answered a redirect (${status}); redirects are not followed (${where})`);
  }
  if (status === 400 || status === 401 || status === 403) return new ArchiveUrlExpiredError(`The signed archive URL was refused with ${status} (expired?) (${where})`);
  if (status === 429 || status >= 500) return new Error(`${what} answered ${status}; try again later (${where})`);
  return new ArchiveRejectedError(`${unexpected} (${where})`);
}

/** Parses `x-goog-hash: crc32c=…,md5=…` (it may also arrive as two headers, joined by fetch). */
export function parseGoogHash(value: string | null | undefined): { crc32c?: string; md5?: string } {
  const out: { crc32c?: string; md5?: string } = {};
  if (!value) return out;
  for (const part of value.split(',')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const key = part.slice(0, i).trim().toLowerCase();
    const v = part.slice(i + 1).trim();
    if (key === 'crc32c') out.crc32c = v;
    if (key === 'md5') out.md5 = v;
  }
  return out;
}

/**
 * What an answer declares about the whole archive. `x-goog-hash` describes the whole object, also
 * on a 206, whose total size is in `Content-Range` (`bytes a-b/TOTAL`).
 */
export function declaredFacts(res: SourceResponse): ArchiveFacts {
  const total = res.status === 206 ? /\/(\d+)$/.exec(res.header('content-range') ?? '')?.[1] : res.header('content-length');
  return {
    size: total !== undefined && /^\d+$/.test(total) ? Number(total) : undefined,
    ...parseGoogHash(res.header('x-goog-hash')),
    contentType: res.header('content-type') ?? 'application/zip',
  };
}

/** A network error's message can quote the request; keep only its code. */
export function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && code !== 'ABORT_ERR') return code;
  if (e instanceof Error && e.name === 'AbortError') return 'aborted';
  return e instanceof Error ? e.name : 'unknown error';
}

export class SignedUrlSource {
  private readonly allowedHosts: Set<string>;
  private readonly allowHttp: boolean;
  private readonly refusePrivateAddresses: boolean;
  private readonly lookup: HostLookup;
  private readonly get: SourceGet;

  constructor(opts: SignedUrlSourceOptions) {
    this.allowedHosts = new Set(opts.allowedHosts.map((h) => h.trim().toLowerCase()).filter((h) => h.length > 0));
    this.allowHttp = opts.allowHttp;
    this.refusePrivateAddresses = opts.refusePrivateAddresses ?? !opts.allowHttp;
    this.lookup = opts.lookup ?? defaultLookup;
    this.get = opts.fetchImpl ? fetchSourceGet(opts.fetchImpl) : nodeSourceGet({ lookup: this.lookup, refusePrivateAddresses: this.refusePrivateAddresses });
  }

  /**
   * Refuses what is not an allowed signed URL before any byte is requested: the allow-list, then
   * (when private addresses are refused) every address the host resolves to must be public. The
   * address check fails early with a clear message; the download checks again what it connects to.
   */
  async check(url: string): Promise<URL> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ArchiveRejectedError('The archive URL is not a valid URL');
    }
    const where = describe(u);
    if (!(u.protocol === 'https:' || (this.allowHttp && u.protocol === 'http:'))) {
      throw new ArchiveRejectedError(`Archive URL scheme ${u.protocol} is not allowed (${where})`);
    }
    if (u.username || u.password) throw new ArchiveRejectedError(`Archive URL must not carry user info (${u.protocol}//${u.hostname})`);
    if (!this.allowedHosts.has(u.hostname.toLowerCase()) && !this.allowedHosts.has(u.host.toLowerCase())) {
      throw new ArchiveRejectedError(`Archive host ${u.host} is not in the allowed hosts (${where})`);
    }
    if (this.refusePrivateAddresses) {
      await assertPublicHost(u.hostname, this.lookup, (reason) => new ArchiveRejectedError(`Archive URL refused: ${reason} (${where})`));
    }
    return u;
  }

  /**
   * GETs a checked URL without following redirects (a signed URL answers directly; a redirect could
   * lead anywhere) and without content coding. A request that got no answer becomes `ownFailure()`
   * (the caller's own reason to abort, a stall or a stop) if there is one; else a refusal at connect
   * time (permanent) or a network failure named by its code (retryable).
   */
  async fetch(u: URL, what: string, init: { range?: string; signal: AbortSignal }, ownFailure: () => Error | undefined = () => undefined): Promise<SourceResponse> {
    try {
      return await this.get(u, { signal: init.signal, headers: { 'accept-encoding': 'identity', ...(init.range ? { range: init.range } : {}) } });
    } catch (e) {
      const own = ownFailure();
      if (own) throw own;
      if (e instanceof SourceAddressRefusedError) throw new ArchiveRejectedError(`Archive URL refused: ${e.message} (${describe(u)})`);
      throw new Error(`${what} failed (${networkReason(e)}) for ${describe(u)}`);
    }
  }
}
