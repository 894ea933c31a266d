/**
 * Apps told by signed webhooks, through the whole local stack: the relay enqueues one Cloud Task
 * per (event, endpoint) on the webhook queue of the Cloud Tasks stand-in, the deliverWebhooks
 * function reads each endpoint's secret from the Secret Manager stand-in through the real client,
 * signs and POSTs; the receivers check every signature with `standardwebhooks`, the
 * specification's own library. One receiver answers at once, one fails twice before it answers
 * (retried with the queue's backoff), one always fails (given up and recorded after the bound),
 * one redirects (refused at once, recorded).
 */
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudTasksQueue, createCloudTasksClient } from '../../functions/src/adapters/cloud-tasks-queue';
import { userIdHash, type PipelineEvent } from '../../functions/src/domain/events';
import type { WebhookDeliveryRecord } from '../../functions/src/domain/ports/webhooks';
import { deliveryId } from '../../functions/src/domain/webhook-message';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import type { ReceivedWebhook } from '../../local-stack/webhook-receiver';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

const projectId = 'demo-e2e-webhooks';
const MAX_ATTEMPTS = 3;
let stack: LocalStack;
let db: Firestore;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId,
    jobDurationMs: 300,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
    webhookMaxAttempts: MAX_ATTEMPTS,
    webhooks: [
      { id: 'app' },
      { id: 'flaky', respond: (n) => (n <= 2 ? 500 : 200) },
      { id: 'down', respond: () => 503 },
      { id: 'moved', respond: () => ({ status: 302, location: 'https://example.com/elsewhere' }) },
    ],
  });
  db = new Firestore({ projectId });
}, 120_000);

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

const receiver = (id: string) => stack.webhooks!.receivers[id]!;

async function until<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 40_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const v = await get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const receivedOf = (id: string, eventIds: string[]): ReceivedWebhook[] => receiver(id).received.filter((w) => eventIds.includes(w.id));

async function record(endpointId: string, eventId: string): Promise<WebhookDeliveryRecord | undefined> {
  const snap = await db.doc(`webhookDeliveries/${deliveryId(eventId, endpointId)}`).get();
  return snap.exists ? (snap.data() as WebhookDeliveryRecord) : undefined;
}

describe('signed webhooks', () => {
  let exportId: string;
  let eventIds: string[];
  /** The export's event as the relay hands it to the queue. */
  const exportEvent = (): PipelineEvent => ({
    id: `export/${exportId}/SUCCEEDED`,
    type: 'portability.export.finished',
    source: `exports/${exportId}`,
    time: new Date().toISOString(),
    attributes: { type: 'portability.export.finished', userIdHash: userIdHash('wendy'), exportId, state: 'SUCCEEDED' },
    data: { exportId, state: 'SUCCEEDED', resources: [] },
  });

  beforeAll(async () => {
    const { token } = await authorizedUser(stack, 'wendy', ['myactivity.search', 'chrome.history']);
    const res = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(res.status).toBe(202);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    exportId = res.body.exportId;
    eventIds = [`export/${exportId}/SUCCEEDED`, ...done.jobs.map((j) => `job/${j.jobId}/SUCCEEDED`)].sort();
  }, 120_000);

  it('deliver every terminal job and the export, signed as Standard Webhooks says, with the event id as webhook-id', async () => {
    const got = await until('three deliveries', () => {
      const r = receivedOf('app', eventIds);
      return r.length >= 3 ? r : undefined;
    });
    expect(got.map((w) => w.id).sort()).toEqual(eventIds);
    for (const w of got) {
      expect(w.verified).toBe(true);
      expect(w.event?.id).toBe(w.id);
      expect(w.event?.specversion).toBe('1.0');
      expect(w.event?.useridhash).toBe(userIdHash('wendy'));
      expect(w.event?.data.exportId).toBe(exportId);
    }
    for (const id of eventIds) expect(await until(`record of ${id}`, () => record('app', id))).toMatchObject({ state: 'DELIVERED', attempts: 1, lastStatus: 204 });
    // The outbox entries left only once the publish (none here) and every enqueue succeeded.
    expect((await db.collection('outbox').get()).size).toBe(0);
  });

  it('retry a failing receiver with the queue backoff until it answers', async () => {
    const got = await until('the flaky receiver to accept all three', () => {
      const ok = receivedOf('flaky', eventIds).filter((w) => w.status === 200);
      return ok.length >= 3 ? ok : undefined;
    });
    expect(got.map((w) => w.id).sort()).toEqual(eventIds);
    for (const id of eventIds) {
      const attempts = receivedOf('flaky', [id]);
      expect(attempts.map((w) => w.status)).toEqual([500, 500, 200]);
      // Signed again at each attempt, and each signature verifies.
      expect(attempts.every((w) => w.verified)).toBe(true);
      expect(await until(`record of ${id}`, () => record('flaky', id))).toMatchObject({ state: 'DELIVERED', attempts: 3, lastStatus: 200 });
    }
    const retries = stack.tasks.deliveries.filter((d) => d.outcome === 'retry' && d.queue.endsWith('/queues/portability-webhooks'));
    expect(retries.length).toBeGreaterThan(0);
    expect(retries.every((d) => (d.nextDelayMs ?? 0) > 0)).toBe(true);
  });

  it('give up on a receiver that always fails after the bounded attempts, and record it without secrets or body', async () => {
    for (const id of eventIds) {
      const r = await until(`the give-up of ${id}`, () => record('down', id));
      expect(r).toEqual({ endpointId: 'down', eventId: id, eventType: id.startsWith('job/') ? 'portability.job.finished' : 'portability.export.finished', state: 'GAVE_UP', attempts: MAX_ATTEMPTS, lastStatus: 503, lastError: 'answered 503', at: expect.any(Number) });
      expect(receivedOf('down', [id])).toHaveLength(MAX_ATTEMPTS);
    }
    const stored = JSON.stringify((await db.collection('webhookDeliveries').get()).docs.map((d) => d.data()));
    expect(stored).not.toContain('whsec_');
    expect(stored).not.toContain(receiver('down').url);
  });

  it('refuse a redirect at once: one attempt, given up and recorded', async () => {
    for (const id of eventIds) {
      expect(await until(`the refusal of ${id}`, () => record('moved', id))).toMatchObject({ state: 'GAVE_UP', attempts: 1, lastStatus: 302, lastError: 'answered 302: redirects are not followed' });
    }
    await stack.tasks.idle();
    expect(receivedOf('moved', eventIds)).toHaveLength(3);
  });

  it('deliver a duplicate with the same webhook-id, and dedupe a repeated enqueue by its task name', async () => {
    await stack.tasks.idle();
    const before = receivedOf('app', eventIds).length;
    // The relay sends the same event again (the sweeper after a lost removal): same task name, no new delivery.
    const queue = new CloudTasksQueue({
      client: createCloudTasksClient(stack.tasks.host),
      projectId,
      location: stack.config.tasks.location,
      checkQueue: 'unused',
      copyQueue: 'unused',
      checkUrl: stack.config.tasks.checkUrl,
      copyUrl: stack.config.tasks.copyUrl,
      serviceAccountEmail: stack.config.tasks.serviceAccount,
      webhooks: { queue: stack.config.webhooks.queue, url: stack.config.webhooks.functionUrl! },
    });
    const sent = exportEvent();
    await queue.enqueueDelivery({ endpointId: 'app', event: sent });
    await stack.tasks.idle();
    expect(receivedOf('app', eventIds)).toHaveLength(before);

    // Cloud Tasks itself delivers at least once: a task delivered twice reaches the app twice under one webhook-id.
    const { token } = await authorizedUser(stack, 'dupe', ['myactivity.search']);
    stack.tasks.setDispatchFault((t) => (t.queue.endsWith('/queues/portability-webhooks') && t.body.toString().includes('"endpointId":"app"') ? 'duplicate-after' : undefined));
    const res = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    await waitForExport(stack, token, res.body.exportId);
    const id = `export/${res.body.exportId}/SUCCEEDED`;
    const twice = await until('two deliveries of one event', () => {
      const r = receivedOf('app', [id]);
      return r.length >= 2 ? r : undefined;
    });
    stack.tasks.setDispatchFault(undefined);
    expect(twice.every((w) => w.verified && w.id === id)).toBe(true);
    expect(twice[0]!.event).toEqual(twice[1]!.event);
  });

  it('the deliverer answers a caller without the invoker\'s token 401, and drops a malformed or unknown task with 200 JSON', async () => {
    const url = stack.config.webhooks.functionUrl!;
    const anonymous = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    const token = await stack.tasksOidcIssuer.sign({ aud: url, email: stack.config.tasks.serviceAccount, email_verified: true, sub: '1000' }, 300);
    const post = async (body: unknown) => {
      const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const before = receiver('app').received.length;
    expect(await post({ endpointId: 'app' })).toMatchObject({ status: 200, body: { error: { code: 'DROPPED' } } });
    expect(await post({ endpointId: 'app', event: { id: 'x' } })).toMatchObject({ status: 200, body: { error: { code: 'DROPPED' } } });
    const event = exportEvent();
    expect(await post({ endpointId: 'gone', event })).toMatchObject({ status: 200, body: { outcome: 'dropped' } });
    expect(receiver('app').received.length).toBe(before);
  });
});
