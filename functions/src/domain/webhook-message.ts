/**
 * What a webhook endpoint receives, as the Standard Webhooks specification says: the event as a
 * structured-mode CloudEvent (JSON body), `webhook-id` = the event's stable id (so a receiver
 * drops a repeated delivery), `webhook-timestamp` = the attempt's time in seconds, and
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the endpoint's
 * secret (`whsec_<base64 key>`). Pure: the deliverer adds the clock and the network.
 */
import { createHash, createHmac } from 'node:crypto';
import type { PipelineEvent } from './events';

const SECRET_PREFIX = 'whsec_';

/** The event in the CloudEvents JSON format (structured mode); its Pub/Sub attributes become lowercase extensions. */
export function cloudEventBody(e: PipelineEvent): string {
  const extensions = Object.fromEntries(
    Object.entries(e.attributes)
      .filter(([k]) => k !== 'type')
      .map(([k, v]) => [k.toLowerCase(), v]),
  );
  return JSON.stringify({
    specversion: '1.0',
    id: e.id,
    type: e.type,
    source: e.source,
    ...(e.subject ? { subject: e.subject } : {}),
    time: e.time,
    datacontenttype: 'application/json',
    ...extensions,
    data: e.data,
  });
}

/** The key of a `whsec_<base64>` secret; throws (without quoting it) when the secret is not one. */
export function webhookKey(secret: string): Buffer {
  const b64 = secret.trim().startsWith(SECRET_PREFIX) ? secret.trim().slice(SECRET_PREFIX.length) : '';
  const key = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.length < 24 || key.length > 64) {
    throw new Error('A webhook secret must be whsec_ followed by the base64 of 24 to 64 random bytes');
  }
  return key;
}

export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The three headers of one attempt to deliver `body` (the event `id`) at `nowMs`. */
export function signWebhook(key: Buffer, id: string, nowMs: number, body: string): WebhookHeaders {
  const timestamp = String(Math.floor(nowMs / 1000));
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
}

/** One name per (event, endpoint): the task of a delivery, and its record. Hex, 32 characters. */
export function deliveryId(eventId: string, endpointId: string): string {
  return createHash('sha256').update(`${endpointId}\n${eventId}`).digest('hex').slice(0, 32);
}
