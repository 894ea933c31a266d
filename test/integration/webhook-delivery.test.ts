/**
 * One webhook delivery attempt against a real local endpoint, with its record on the Firestore
 * emulator: a 2xx is delivered (signed so that `standardwebhooks` accepts it); a redirect or a
 * refused address is given up at once; another status, a network failure or an unreadable secret
 * is retried until the bounded number of attempts, then given up. Only the end is recorded.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Firestore } from '@google-cloud/firestore';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreWebhookDeliveryLog, WEBHOOK_DELIVERIES } from '../../functions/src/adapters/firestore-webhook-deliveries';
import { nodeWebhookPost } from '../../functions/src/adapters/webhook-post';
import type { PipelineEvent } from '../../functions/src/domain/events';
import type { SecretSource, WebhookDeliveryRecord, WebhookEndpoint } from '../../functions/src/domain/ports/webhooks';
import { deliveryId } from '../../functions/src/domain/webhook-message';
import { createLogger } from '../../functions/src/logging';
import { WebhookDelivery } from '../../functions/src/pipeline/webhook-delivery';

const MAX_ATTEMPTS = 3;
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SECRET_NAME = 'projects/p/secrets/hook/versions/1';

interface Seen {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let db: Firestore;
let server: http.Server;
let base: string;
const seen: Seen[] = [];
/** What the deliverer logged, parsed. */
const logs: Array<Record<string, unknown>> = [];
const logger = createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(JSON.parse(l) as Record<string, unknown>), true) } });
const logsOf = (e: PipelineEvent) => logs.filter((l) => l.eventId === e.id).map(({ severity, message, endpointId, attempt, status, reason }) => ({ severity, message, endpointId, attempt, status, reason }));

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-webhook-delivery' });
  // Answers the status the path names: /s/204, /s/307, /s/500 …
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = Number(/^\/s\/(\d+)/.exec(req.url ?? '')?.[1] ?? 204);
      res.writeHead(status, status >= 300 && status < 400 ? { location: `${base}/s/204` } : {}).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(() => r(undefined)));
  await db?.terminate();
});

const event = (): PipelineEvent => {
  const exportId = randomBytes(8).toString('hex');
  return {
    id: `export/${exportId}/SUCCEEDED`,
    type: 'portability.export.finished',
    source: `exports/${exportId}`,
    time: new Date().toISOString(),
    attributes: { type: 'portability.export.finished', userIdHash: 'h', exportId, state: 'SUCCEEDED' },
    data: { exportId, state: 'SUCCEEDED', resources: [] } as unknown as PipelineEvent['data'],
  };
};

const secrets: SecretSource = { access: async (name) => (name === SECRET_NAME ? SECRET : Promise.reject(new Error('PERMISSION_DENIED'))) };

function delivery(endpoints: WebhookEndpoint[], over: { refusePrivateAddresses?: boolean; now?: number } = {}) {
  const refuse = over.refusePrivateAddresses ?? false;
  const post = nodeWebhookPost({ timeoutMs: 5_000, refusePrivateAddresses: refuse, ...(refuse ? { lookup: async () => [{ address: '127.0.0.1', family: 4 }] } : {}) });
  const now = over.now ?? Date.now();
  return new WebhookDelivery({ endpoints, secrets: async () => secrets, post, log: new FirestoreWebhookDeliveryLog(db), maxAttempts: MAX_ATTEMPTS, logger, now: () => now });
}

const endpoint = (path: string, over: Partial<WebhookEndpoint> = {}): WebhookEndpoint => ({ id: `ep-${randomBytes(4).toString('hex')}`, url: `${base}${path}`, secret: SECRET_NAME, ...over });

const recordOf = async (e: PipelineEvent, ep: WebhookEndpoint): Promise<WebhookDeliveryRecord | undefined> =>
  (await db.doc(`${WEBHOOK_DELIVERIES}/${deliveryId(e.id, ep.id)}`).get()).data() as WebhookDeliveryRecord | undefined;

const postsTo = (ep: WebhookEndpoint): Seen[] => seen.filter((s) => `${base}${s.path}` === ep.url);

describe('a webhook delivery', () => {
  it('delivers on a 2xx, signed at the attempt\'s time as Standard Webhooks says, and records it', async () => {
    const at = Date.now() - 60_000;
    for (const status of [200, 204, 299]) {
      const ep = endpoint(`/s/${status}?ep=${randomBytes(3).toString('hex')}`);
      const e = event();
      expect(await delivery([endpoint('/s/500'), ep], { now: at }).deliver({ endpointId: ep.id, event: e }, 2)).toEqual({ kind: 'done', detail: `delivered (${status})` });
      const [post] = postsTo(ep);
      expect(post?.headers).toMatchObject({ 'content-type': 'application/cloudevents+json; charset=utf-8', 'user-agent': 'portability-pipeline-webhooks', 'webhook-id': e.id, 'webhook-timestamp': String(Math.floor(at / 1000)) });
      const verified = new Webhook(SECRET).verify(post?.body ?? '', post?.headers as Record<string, string>) as { id: string; type: string };
      expect(verified).toMatchObject({ id: e.id, type: e.type });
      expect(await recordOf(e, ep)).toEqual({ endpointId: ep.id, eventId: e.id, eventType: e.type, state: 'DELIVERED', attempts: 2, lastStatus: status, at });
      expect(logsOf(e)).toEqual([{ severity: 'INFO', message: 'webhook delivered', endpointId: ep.id, attempt: 2, status, reason: undefined }]);
    }
  });

  it('gives up a redirect at once, without following it', async () => {
    for (const status of [300, 307, 399]) {
      const ep = endpoint(`/s/${status}`, { id: `ep-${randomBytes(4).toString('hex')}` });
      const e = event();
      const before = seen.length;
      expect(await delivery([ep]).deliver({ endpointId: ep.id, event: e }, 1)).toEqual({ kind: 'done', detail: `given up after 1 attempts: answered ${status}: redirects are not followed` });
      expect(seen.slice(before).map((s) => s.path)).toEqual([`/s/${status}`]);
      expect(await recordOf(e, ep)).toMatchObject({ state: 'GAVE_UP', attempts: 1, lastStatus: status, lastError: `answered ${status}: redirects are not followed` });
      expect(logsOf(e)).toEqual([{ severity: 'ERROR', message: 'webhook delivery given up', endpointId: ep.id, attempt: 1, status, reason: `answered ${status}: redirects are not followed` }]);
    }
  });

  it('gives up an address it may not reach at once, sending nothing', async () => {
    const ep = endpoint('/s/204', { url: `${base.replace('127.0.0.1', 'hooks.example.com')}/s/204` });
    const e = event();
    const before = seen.length;
    const out = await delivery([ep], { refusePrivateAddresses: true }).deliver({ endpointId: ep.id, event: e }, 1);
    const refused = 'the host hooks.example.com resolves to a non-public address (127.0.0.1)';
    expect(out).toEqual({ kind: 'done', detail: `given up after 1 attempts: ${refused}` });
    expect(seen.length).toBe(before);
    const rec = await recordOf(e, ep);
    expect(rec).toMatchObject({ state: 'GAVE_UP', attempts: 1 });
    expect(rec?.lastStatus).toBeUndefined();
    expect(rec?.lastError).toBe(refused);
  });

  it('retries another status or a network failure, recording nothing, until the last attempt gives up', async () => {
    for (const path of ['/s/500', '/s/400', '/s/404']) {
      const ep = endpoint(path);
      const e = event();
      const status = Number(path.slice(3));
      for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
        expect(await delivery([ep]).deliver({ endpointId: ep.id, event: e }, attempt)).toEqual({ kind: 'retry', detail: `answered ${status}` });
        expect(await recordOf(e, ep)).toBeUndefined();
      }
      expect(await delivery([ep]).deliver({ endpointId: ep.id, event: e }, MAX_ATTEMPTS)).toEqual({ kind: 'done', detail: `given up after ${MAX_ATTEMPTS} attempts: answered ${status}` });
      expect(await recordOf(e, ep)).toMatchObject({ state: 'GAVE_UP', attempts: MAX_ATTEMPTS, lastStatus: status, lastError: `answered ${status}` });
      const retried = { message: 'webhook delivery failed; Cloud Tasks retries it', endpointId: ep.id, status, reason: `answered ${status}` };
      expect(logsOf(e)).toEqual([
        { severity: 'WARNING', ...retried, attempt: 1 },
        { severity: 'WARNING', ...retried, attempt: 2 },
        { severity: 'ERROR', ...retried, message: 'webhook delivery given up', attempt: MAX_ATTEMPTS },
      ]);
    }
    // Nobody listens on the port: a network failure, retried the same way.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(() => r(undefined)));
    const ep = endpoint('/', { url: `http://127.0.0.1:${port}/` });
    const e = event();
    expect(await delivery([ep]).deliver({ endpointId: ep.id, event: e }, 1)).toMatchObject({ kind: 'retry' });
    expect(await recordOf(e, ep)).toBeUndefined();
    expect(await delivery([ep]).deliver({ endpointId: ep.id, event: e }, MAX_ATTEMPTS + 1)).toMatchObject({ kind: 'done', detail: expect.stringMatching(/^given up after 4 attempts: /) });
    expect((await recordOf(e, ep))?.lastStatus).toBeUndefined();
  });

  it('fails an attempt whose secret cannot be read like a network error, posting nothing', async () => {
    for (const secret of ['projects/p/secrets/missing/versions/1', SECRET_NAME]) {
      const ep = endpoint('/s/204', { secret });
      const e = event();
      const posted = seen.length;
      const src: SecretSource = secret === SECRET_NAME ? { access: async () => 'not-a-whsec-secret' } : secrets;
      const d = new WebhookDelivery({ endpoints: [ep], secrets: async () => src, post: nodeWebhookPost({ timeoutMs: 5_000, refusePrivateAddresses: false }), log: new FirestoreWebhookDeliveryLog(db), maxAttempts: MAX_ATTEMPTS, logger, now: Date.now });
      const before = logs.length;
      expect(await d.deliver({ endpointId: ep.id, event: e }, 1)).toEqual({ kind: 'retry', detail: 'the endpoint secret could not be read' });
      expect(await d.deliver({ endpointId: ep.id, event: e }, MAX_ATTEMPTS)).toEqual({ kind: 'done', detail: `given up after ${MAX_ATTEMPTS} attempts: the endpoint secret could not be read` });
      expect(seen.length).toBe(posted);
      expect(await recordOf(e, ep)).toMatchObject({ state: 'GAVE_UP', lastError: 'the endpoint secret could not be read' });
      // The operator is told which endpoint's secret, never the secret.
      const unavailable = logs.slice(before).filter((l) => l.message === 'webhook secret unavailable');
      expect(unavailable).toHaveLength(2);
      expect(unavailable[0]).toMatchObject({ severity: 'ERROR', endpointId: ep.id });
      expect(JSON.stringify(logs.slice(before))).not.toContain(SECRET);
    }
  });

  it('drops a task for an endpoint no longer configured, posting and recording nothing', async () => {
    const ep = endpoint('/s/204');
    const e = event();
    const before = seen.length;
    expect(await delivery([endpoint('/s/204')]).deliver({ endpointId: ep.id, event: e }, 1)).toEqual({ kind: 'dropped', detail: `no endpoint ${ep.id} is configured any more` });
    expect(seen.length).toBe(before);
    expect(await recordOf(e, ep)).toBeUndefined();
  });
});
