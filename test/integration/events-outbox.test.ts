/**
 * Events of finished jobs and exports, at least once, on the real Firestore and Pub/Sub
 * emulators: the transaction that ends a job writes its event (and its export's, when that ended
 * too) to the outbox; the relay publishes them after the commit in CloudEvents form and empties
 * the outbox; a publish that fails leaves them, and the sweeper publishes them later, under the
 * same ids.
 */
import { randomBytes } from 'node:crypto';
import { PubSub, type Message } from '@google-cloud/pubsub';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreEventOutbox } from '../../functions/src/adapters/firestore-outbox';
import { PubSubEventPublisher } from '../../functions/src/adapters/pubsub-event-publisher';
import { userIdHash, type PipelineEvent } from '../../functions/src/domain/events';
import { newJob } from '../../functions/src/domain/job';
import type { Job } from '../../functions/src/domain/model';
import type { EventPublisher } from '../../functions/src/domain/ports/event-publisher';
import { createLogger } from '../../functions/src/logging';
import { EventRelay } from '../../functions/src/pipeline/event-relay';
import { JobTransitions } from '../../functions/src/pipeline/job-transitions';
import { Sweeper } from '../../functions/src/pipeline/sweeper';
import { CloudTasksQueue, createCloudTasksClient } from '../../functions/src/adapters/cloud-tasks-queue';
import { deliveryId } from '../../functions/src/domain/webhook-message';
import { startCloudTasksServer } from '../../local-stack/cloud-tasks-server';
import { createLocalOidcIssuer } from '../../local-stack/local-oidc-issuer';

const projectId = 'demo-events-outbox';
const policy = { initialSeconds: 300, maxSeconds: 3600 };
const logger = createLogger({ level: 'silent' });
let db: Firestore;
let store: FirestoreExportStore;
let pubsub: PubSub;
const topic = `events-${randomBytes(4).toString('hex')}`;
const received: Message[] = [];

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = new Firestore({ projectId });
  store = new FirestoreExportStore(createFirestore({ projectId }), { events: true });
  pubsub = new PubSub({ projectId, apiEndpoint: inject('pubsubEmulatorHost'), emulatorMode: true });
  const [t] = await pubsub.createTopic(topic);
  const [sub] = await t.createSubscription(`${topic}-all`);
  sub.on('message', (m: Message) => {
    received.push(m);
    m.ack();
  });
}, 60_000);

afterAll(async () => {
  await pubsub?.close();
  await db?.terminate();
});

async function exportOf(userId: string, resources: string[]): Promise<Job[]> {
  const exportId = randomBytes(10).toString('hex');
  const jobs = resources.map((resource) => ({ ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId, resource }, Date.now()), state: 'WAITING' as const, seq: 1, archiveJobId: 'g1', archiveJobIds: ['g1'] }));
  await store.createExport({ id: exportId, userId, state: 'RUNNING', resources, createdAt: Date.now(), updatedAt: Date.now() }, jobs);
  return jobs;
}

const outboxIds = async (): Promise<string[]> => (await db.collection('outbox').get()).docs.map((d) => (d.data() as { event: PipelineEvent }).event.id).sort();

async function receivedFor(exportId: string, count: number): Promise<Message[]> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const got = received.filter((m) => m.attributes.exportId === exportId);
    if (got.length >= count) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fewer than ${count} events of export ${exportId} arrived`);
}

describe('events of finished jobs and exports', () => {
  it('are written with the change, published after it in CloudEvents form, and leave the outbox', async () => {
    const [a, b] = await exportOf('eve', ['myactivity.search', 'chrome.history']);
    const relay = new EventRelay({ publisher: async () => new PubSubEventPublisher(pubsub, topic), outbox: new FirestoreEventOutbox(db), logger });
    const jobs = new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy, logger, now: Date.now, relay });
    // The first job to end: only its own event (the export still runs).
    const first = await jobs.apply(a!.id, { type: 'failed', error: { code: 'ARCHIVE_FAILED', message: 'Google could not prepare the archive' } });
    expect(first.applied).toBe(true);
    await jobs.apply(b!.id, { type: 'archive-cancelled' });
    const got = await receivedFor(a!.exportId, 3);
    const byId = Object.fromEntries(got.map((m) => [m.attributes['ce-id'], m]));
    expect(Object.keys(byId).sort()).toEqual([`export/${a!.exportId}/FAILED`, `job/${a!.id}/FAILED`, `job/${b!.id}/CANCELLED`].sort());
    const jobEvent = byId[`job/${a!.id}/FAILED`]!;
    expect(jobEvent.attributes).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'portability.job.finished',
      'ce-source': `exports/${a!.exportId}`,
      'ce-subject': `jobs/${a!.id}`,
      type: 'portability.job.finished',
      userIdHash: userIdHash('eve'),
      exportId: a!.exportId,
      state: 'FAILED',
    });
    expect(JSON.parse(jobEvent.data.toString('utf8'))).toEqual({ exportId: a!.exportId, jobId: a!.id, resource: 'myactivity.search', state: 'FAILED', error: { code: 'ARCHIVE_FAILED', message: 'Google could not prepare the archive' } });
    expect(JSON.parse(byId[`export/${a!.exportId}/FAILED`]!.data.toString('utf8'))).toEqual({ exportId: a!.exportId, state: 'FAILED', resources: ['myactivity.search', 'chrome.history'] });
    // No user id, token or URL travels: only the hash.
    expect(got.map((m) => m.data.toString('utf8') + JSON.stringify(m.attributes)).join('')).not.toContain('"eve"');
    expect((await outboxIds()).filter((id) => id.includes(a!.exportId) || id.includes(a!.id) || id.includes(b!.id))).toEqual([]);
  });

  it('survive a publish that fails: kept in the outbox, published by the sweeper under the same ids, once per event', async () => {
    const [job] = await exportOf('fay', ['myactivity.search']);
    let down = true;
    const real = new PubSubEventPublisher(pubsub, topic);
    const flaky: EventPublisher = { publish: async (events) => (down ? Promise.reject(new Error('Pub/Sub unavailable')) : real.publish(events)) };
    const relay = new EventRelay({ publisher: async () => flaky, outbox: new FirestoreEventOutbox(db), logger });
    const jobs = new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy, logger, now: Date.now, relay });
    const applied = await jobs.apply(job!.id, { type: 'failed', error: { code: 'COPY_FAILED', message: 'x' } });
    // The job's own change is committed whatever happened to the publish.
    expect(applied.applied).toBe(true);
    expect(await store.getJob(job!.id)).toMatchObject({ state: 'FAILED' });
    const ids = [`export/${job!.exportId}/FAILED`, `job/${job!.id}/FAILED`];
    expect((await outboxIds()).filter((id) => ids.includes(id))).toEqual(ids);
    expect(received.filter((m) => m.attributes.exportId === job!.exportId)).toEqual([]);
    down = false;
    const clock = { t: Date.now() + 60_000 };
    const sweeper = new Sweeper({ store, queue: { enqueue: async () => undefined }, policy, graceSeconds: 30, logger, now: () => clock.t, relay });
    const swept = await sweeper.sweep();
    expect(swept.events).toBeGreaterThanOrEqual(2);
    const got = await receivedFor(job!.exportId, 2);
    expect(got.map((m) => m.attributes['ce-id']).sort()).toEqual(ids);
    expect((await outboxIds()).filter((id) => ids.includes(id))).toEqual([]);
    // A second sweep finds nothing left to publish for this export.
    await sweeper.sweep();
    await new Promise((r) => setTimeout(r, 500));
    expect(received.filter((m) => m.attributes.exportId === job!.exportId)).toHaveLength(2);
  });

  it('leave the outbox only when the publish and every webhook enqueue succeeded; the sweeper enqueues what is left under the same task names', async () => {
    const oidcIssuer = await createLocalOidcIssuer({ issuer: 'https://accounts.google.com' });
    const tasks = await startCloudTasksServer({ oidcIssuer });
    try {
      const webhookQueue = 'webhooks-outbox-test';
      const queue = new CloudTasksQueue({
        client: createCloudTasksClient(tasks.host),
        projectId,
        location: 'local',
        checkQueue: 'unused',
        copyQueue: 'unused',
        checkUrl: 'http://127.0.0.1:9/',
        copyUrl: 'http://127.0.0.1:9/',
        serviceAccountEmail: 'tasks@demo.iam.gserviceaccount.com',
        webhooks: { queue: webhookQueue, url: 'http://127.0.0.1:9/' },
      });
      const relay = new EventRelay({ publisher: async () => new PubSubEventPublisher(pubsub, topic), webhooks: { endpointIds: ['app', 'crm'], queue: async () => queue }, outbox: new FirestoreEventOutbox(db), logger });
      const [job] = await exportOf('hal', ['myactivity.search']);
      const jobs = new JobTransitions({ store, queue: async () => ({ enqueue: async () => undefined }), policy, logger, now: Date.now, relay });
      // The webhook queue does not exist yet: Cloud Tasks answers NOT_FOUND, the topic took the events.
      await jobs.apply(job!.id, { type: 'failed', error: { code: 'COPY_FAILED', message: 'x' } });
      const ids = [`export/${job!.exportId}/FAILED`, `job/${job!.id}/FAILED`];
      await receivedFor(job!.exportId, 2);
      expect((await outboxIds()).filter((id) => ids.includes(id))).toEqual(ids);
      tasks.pause();
      tasks.ensureQueue(`projects/${projectId}/locations/local/queues/${webhookQueue}`);
      const sweeper = new Sweeper({ store, queue: { enqueue: async () => undefined }, policy, graceSeconds: 30, logger, now: () => Date.now() + 60_000, relay });
      await sweeper.sweep();
      expect((await outboxIds()).filter((id) => ids.includes(id))).toEqual([]);
      const names = tasks.tasks().map((t) => t.name.split('/').pop()).sort();
      expect(names).toEqual(ids.flatMap((e) => ['app', 'crm'].map((endpointId) => `wh-${deliveryId(e, endpointId)}`)).sort());
      // Sent again (a removal lost): the same names, no second task.
      await relay.relay(ids.map((id) => ({ id }) as PipelineEvent));
      expect(tasks.tasks()).toHaveLength(4);
    } finally {
      await tasks.stop();
    }
  });

  it('are not written when events are off', async () => {
    const plain = new FirestoreExportStore(createFirestore({ projectId }));
    const exportId = randomBytes(10).toString('hex');
    const job = { ...newJob({ id: randomBytes(10).toString('hex'), exportId, userId: 'gus', resource: 'myactivity.search' }, Date.now()), state: 'WAITING' as const, seq: 1 };
    await plain.createExport({ id: exportId, userId: 'gus', state: 'RUNNING', resources: ['myactivity.search'], createdAt: Date.now(), updatedAt: Date.now() }, [job]);
    const update = await plain.updateJob(job.id, (j) => ({ ...j, state: 'CANCELLED', seq: j.seq + 1, finishedAt: Date.now() }));
    expect(update?.events).toEqual([]);
    expect((await outboxIds()).filter((id) => id.includes(exportId) || id.includes(job.id))).toEqual([]);
  });
});
