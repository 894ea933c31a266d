/**
 * One webhook POST under the archive downloads' address rules, against real local servers: the
 * connection's own lookup refuses a host that resolves to a loopback or private address (no
 * request leaves), a redirect is answered as it is (never followed), and an endpoint that never
 * answers ends at the deadline.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostLookup } from '../../functions/src/adapters/address-guard';
import { nodeWebhookPost } from '../../functions/src/adapters/webhook-post';

let server: http.Server;
let port: number;
const seen: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/moved') {
      res.writeHead(307, { location: `http://127.0.0.1:${port}/target` });
      res.end();
    } else if (req.url === '/silent') {
      // Never answers: the deliverer's deadline ends the attempt.
    } else {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(() => r(undefined)));
});

describe('a webhook POST', () => {
  it('refuses at connect time a host that resolves to a non-public address, sending nothing', async () => {
    const rebinding: HostLookup = async () => [{ address: '127.0.0.1', family: 4 }];
    const post = nodeWebhookPost({ timeoutMs: 5_000, refusePrivateAddresses: true, lookup: rebinding });
    const before = seen.length;
    const result = await post(new URL(`http://hooks.example.com:${port}/ok`), {}, '{}');
    expect(result).toEqual({ kind: 'refused', reason: 'the host hooks.example.com resolves to a non-public address (127.0.0.1)' });
    expect(seen.length).toBe(before);
  });

  it('answers a redirect with its status, without following it', async () => {
    const post = nodeWebhookPost({ timeoutMs: 5_000, refusePrivateAddresses: false });
    const before = seen.length;
    expect(await post(new URL(`http://127.0.0.1:${port}/moved`), {}, '{}')).toEqual({ kind: 'answered', status: 307 });
    expect(seen.slice(before)).toEqual(['/moved']);
    expect(await post(new URL(`http://127.0.0.1:${port}/ok`), { 'webhook-id': 'x' }, '{"a":1}')).toEqual({ kind: 'answered', status: 204 });
  });

  it('ends an attempt nobody answers at the deadline, as a failure to retry', async () => {
    const post = nodeWebhookPost({ timeoutMs: 300, refusePrivateAddresses: false });
    expect(await post(new URL(`http://127.0.0.1:${port}/silent`), {}, '{}')).toEqual({ kind: 'failed', reason: 'no answer within 300 ms' });
  });
});
