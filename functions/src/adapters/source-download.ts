/**
 * GETs of an archive's signed URL for the copier, as node:http(s) streams: redirects are never
 * followed, and when private addresses are refused every address the host resolves to is checked
 * at connect time. The address connected to is then the address checked: there is no window for
 * DNS rebinding between a check and the fetch. (`fetch` would also spend about a third more CPU per
 * byte on WHATWG streams, and load undici on a cold start.)
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupAddress } from 'node:dns';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { publicAddresses, type HostLookup } from './address-guard';

/** What the copier reads of an answer. */
export interface SourceResponse {
  status: number;
  header(name: string): string | undefined;
  body: Readable;
  /** Stops reading and releases the connection. */
  discard(): void;
}

export type SourceGet = (url: URL, init: { headers: Record<string, string>; signal: AbortSignal }) => Promise<SourceResponse>;

/** The host resolved, at connect time, to an address a download must not reach. */
export class SourceAddressRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceAddressRefusedError';
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for net.connect that hands over only public addresses (all of them, or refuses). */
export function publicOnlyLookup(lookup: HostLookup) {
  return (hostname: string, options: { all?: boolean }, callback: LookupCallback): void => {
    // A resolver failure stays a network error (retryable); only what it answers can be refused.
    let failed: unknown;
    const resolve: HostLookup = (h) => lookup(h).catch((e: unknown) => Promise.reject((failed = e)));
    publicAddresses(hostname, resolve, (reason) => new SourceAddressRefusedError(reason)).then(
      (addresses) => {
        const first = addresses[0] as { address: string; family: number };
        if (options.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (e: unknown) => {
        const err = failed ?? e;
        callback(err instanceof Error ? err : new Error(String(err)), '');
      },
    );
  };
}

export function nodeSourceGet(opts: { lookup: HostLookup; refusePrivateAddresses: boolean }): SourceGet {
  const lookup = opts.refusePrivateAddresses ? publicOnlyLookup(opts.lookup) : undefined;
  return (url, init) =>
    new Promise<SourceResponse>((resolve, reject) => {
      const get = url.protocol === 'https:' ? https.get : http.get;
      const req = get(url, { headers: init.headers, signal: init.signal, ...(lookup ? { lookup } : {}) }, (res) => {
        resolve({
          status: res.statusCode ?? 0,
          header: (name) => {
            const v = res.headers[name.toLowerCase()];
            return Array.isArray(v) ? v.join(', ') : v;
          },
          body: res,
          discard: () => res.destroy(),
        });
      });
      req.on('error', reject);
    });
}

/** The same over a `fetch` (tests hand one in to count or fake what the network does). */
export function fetchSourceGet(fetchImpl: typeof fetch): SourceGet {
  return async (url, init) => {
    const res = await fetchImpl(url.toString(), { redirect: 'manual', headers: init.headers, signal: init.signal });
    const body = res.body ? Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) : Readable.from([]);
    return {
      status: res.type === 'opaqueredirect' ? 302 : res.status,
      header: (name) => res.headers.get(name) ?? undefined,
      body,
      discard: () => body.destroy(),
    };
  };
}
