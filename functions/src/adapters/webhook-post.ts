/**
 * One POST of a signed event to a webhook endpoint, with the archive downloads' address rules:
 * when private addresses are refused, the connection's own DNS lookup hands over only public
 * addresses (no window for DNS rebinding between a check and the request); redirects are never
 * followed (node:http does not); the whole request has a deadline. Only the status is read.
 */
import http from 'node:http';
import https from 'node:https';
import type { WebhookPost, WebhookPostResult } from '../domain/ports/webhooks';
import { defaultLookup, type HostLookup } from './address-guard';
import { networkReason } from './signed-url-source';
import { publicOnlyLookup, SourceAddressRefusedError } from './source-download';

export interface WebhookPostOptions {
  timeoutMs: number;
  /** Off only in the local stack (WEBHOOK_ALLOW_LOCAL_HTTP), whose receivers are on 127.0.0.1. */
  refusePrivateAddresses: boolean;
  lookup?: HostLookup;
}

export function nodeWebhookPost(opts: WebhookPostOptions): WebhookPost {
  const lookup = opts.refusePrivateAddresses ? publicOnlyLookup(opts.lookup ?? defaultLookup) : undefined;
  return (url, headers, body) =>
    new Promise<WebhookPostResult>((resolve) => {
      const signal = AbortSignal.timeout(opts.timeoutMs);
      const request = url.protocol === 'https:' ? https.request : http.request;
      const req = request(
        url,
        { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, signal, ...(lookup ? { lookup } : {}) },
        (res) => {
          // The status is the answer; the body is not read (it could be anything, of any size).
          res.destroy();
          resolve({ kind: 'answered', status: res.statusCode ?? 0 });
        },
      );
      req.on('error', (e) => {
        if (e instanceof SourceAddressRefusedError) resolve({ kind: 'refused', reason: e.message });
        else resolve({ kind: 'failed', reason: signal.aborted ? `no answer within ${opts.timeoutMs} ms` : networkReason(e) });
      });
      req.end(body);
    });
}
