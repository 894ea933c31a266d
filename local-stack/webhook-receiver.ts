/**
 * An app's webhook endpoint on 127.0.0.1: every POST is checked with `standardwebhooks` (the
 * Standard Webhooks specification's own library, independent of the code that signs) and kept,
 * verified or not. `respond` decides each answer (a test makes it fail a few times, always, or
 * redirect); by default every delivery is answered 204. Used by `npm start` and the tests.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedWebhook {
  /** `webhook-id`: the event's stable id. */
  id: string;
  timestamp: string;
  /** The signature checked out with the endpoint's secret (and the timestamp is recent). */
  verified: boolean;
  /** The CloudEvent, as parsed by the verifier (undefined when it refused). */
  event?: { id: string; type: string; source: string; subject?: string; time: string; data: Record<string, unknown>; [k: string]: unknown };
  /** What the receiver answered. */
  status: number;
}

export type WebhookAnswer = number | { status: number; location: string };

export interface WebhookReceiver {
  url: string;
  /** `whsec_<base64>`: what Secret Manager holds for this endpoint. */
  secret: string;
  received: ReceivedWebhook[];
  /** The n-th POST (1-based) of the event `id` is answered with this. */
  respond: (n: number, id: string) => WebhookAnswer;
  stop(): Promise<void>;
}

export async function startWebhookReceiver(opts: { respond?: WebhookReceiver['respond']; onReceived?: (w: ReceivedWebhook) => void } = {}): Promise<WebhookReceiver> {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const verifier = new Webhook(secret);
  const received: ReceivedWebhook[] = [];
  const counts = new Map<string, number>();
  const receiver: WebhookReceiver = { url: '', secret, received, respond: opts.respond ?? (() => 204), stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      let event: ReceivedWebhook['event'];
      try {
        event = verifier.verify(body, headers) as ReceivedWebhook['event'];
      } catch {
        event = undefined;
      }
      const id = headers['webhook-id'] ?? '';
      const n = (counts.get(id) ?? 0) + 1;
      counts.set(id, n);
      const answer = receiver.respond(n, id);
      const status = typeof answer === 'number' ? answer : answer.status;
      const got: ReceivedWebhook = { id, timestamp: headers['webhook-timestamp'] ?? '', verified: event !== undefined, ...(event ? { event } : {}), status };
      received.push(got);
      opts.onReceived?.(got);
      res.writeHead(status, typeof answer === 'number' ? {} : { location: answer.location });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`;
  receiver.stop = () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); });
  return receiver;
}
