/**
 * The real CloudTasksClient, through CloudTasksQueue, against the local Cloud Tasks stand-in,
 * delivering to a small HTTP receiver. Time is compressed 100x (timeScale 0.01).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { CloudTasksClient } from '@google-cloud/tasks';
import { createLocalOidcIssuer, type LocalOidcIssuer } from '../../local-stack/local-oidc-issuer';
import { startCloudTasksServer, type CloudTasksServer } from '../../local-stack/cloud-tasks-server';
import { CloudTasksQueue, createCloudTasksClient, taskIdFor } from '../../functions/src/adapters/cloud-tasks-queue';
import { parseTaskHeaders } from '../support/task-headers';

const PROJECT = 'demo-cloud-tasks';
const LOCATION = 'europe-west1';
const SA = 'tasks-invoker@demo-cloud-tasks.iam.gserviceaccount.com';
const TIME_SCALE = 0.01;
const MAX_ATTEMPTS = 4;
const parent = `projects/${PROJECT}/locations/${LOCATION}`;
const queuePath = (q: string) => `${parent}/queues/${q}`;

interface Received {
  path: string;
  method: string;
  headers: http.IncomingHttpHeaders;
  body: { jobId: string; step: string; seq: number };
  at: number;
}

/** Answer per jobId and attempt (0-based); default 200. `hold`: answer only once it settles. */
type Behaviour = (attempt: number) => { status: number; headers?: Record<string, string>; hold?: Promise<void> };

let issuer: LocalOidcIssuer;
let tasksServer: CloudTasksServer;
let client: CloudTasksClient;
let receiver: http.Server;
let baseUrl: string;
let queue: CloudTasksQueue;
const received: Received[] = [];
const behaviours = new Map<string, Behaviour>();
let inFlightNow = 0;
let maxInFlight = 0;

const forJob = (jobId: string) => received.filter((r) => r.body.jobId === jobId);

function grpcCode(p: Promise<unknown>): Promise<number | undefined> {
  return p.then(
    () => undefined,
    (e: { code?: number }) => e.code,
  );
}

beforeAll(async () => {
  issuer = await createLocalOidcIssuer({ issuer: 'https://accounts.local.invalid' });
  tasksServer = await startCloudTasksServer({ oidcIssuer: issuer, timeScale: TIME_SCALE, maxAttempts: MAX_ATTEMPTS, minBackoffMs: 1000, maxBackoffMs: 20_000 });
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'];
      const attempt = forJob(body.jobId).length;
      received.push({ path: req.url ?? '', method: req.method ?? '', headers: req.headers, body, at: Date.now() });
      const answer = behaviours.get(body.jobId)?.(attempt) ?? { status: 200 };
      inFlightNow++;
      maxInFlight = Math.max(maxInFlight, inFlightNow);
      void (answer.hold ?? Promise.resolve()).then(() => {
        inFlightNow--;
        res.writeHead(answer.status, { Connection: 'close', ...answer.headers }).end();
      });
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  client = createCloudTasksClient(tasksServer.host);
  queue = new CloudTasksQueue({
    client,
    projectId: PROJECT,
    location: LOCATION,
    checkQueue: 'portability-check',
    copyQueue: 'portability-copy',
    checkUrl: `${baseUrl}/check`,
    copyUrl: `${baseUrl}/copy`,
    serviceAccountEmail: SA,
  });
});

afterAll(async () => {
  await client?.close();
  await tasksServer?.stop();
  await new Promise((r) => receiver?.close(r));
});

describe('Cloud Tasks stand-in through the real client', () => {
  it('creates, gets and lists queues; duplicate and unknown queues answer like Cloud Tasks', async () => {
    for (const q of ['portability-check', 'portability-copy']) {
      const [created] = await client.createQueue({ parent, queue: { name: queuePath(q) } });
      expect(created.name).toBe(queuePath(q));
    }
    const [got] = await client.getQueue({ name: queuePath('portability-check') });
    expect(got.name).toBe(queuePath('portability-check'));
    expect(got.state).toBe('RUNNING');
    expect(got.retryConfig?.maxAttempts).toBe(MAX_ATTEMPTS);
    expect(await grpcCode(client.createQueue({ parent, queue: { name: queuePath('portability-check') } }))).toBe(6);
    expect(await grpcCode(client.getQueue({ name: queuePath('nope') }))).toBe(5);
    const [queues] = await client.listQueues({ parent });
    expect(queues.map((q) => q.name)).toEqual([queuePath('portability-check'), queuePath('portability-copy')]);
    // Not implemented methods say so rather than pretending.
    expect(await grpcCode(client.pauseQueue({ name: queuePath('portability-check') }))).toBe(12);
  });

  it('delivers an enqueued task with the JSON body, X-CloudTasks-* headers and a verifiable OIDC token', async () => {
    await queue.enqueue({ step: 'check', jobId: 'job-deliver', seq: 3, delaySeconds: 0 });
    await queue.enqueue({ step: 'copy', jobId: 'job-deliver-copy', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();

    const [got] = forJob('job-deliver');
    expect(forJob('job-deliver')).toHaveLength(1);
    expect(got.path).toBe('/check');
    expect(got.method).toBe('POST');
    expect(got.body).toEqual({ jobId: 'job-deliver', step: 'check', seq: 3 });
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['user-agent']).toBe('Google-Cloud-Tasks');
    expect(got.headers['x-cloudtasks-queuename']).toBe('portability-check');
    const taskId = taskIdFor({ jobId: 'job-deliver', step: 'check', seq: 3 });
    expect(taskId).toMatch(/^[0-9a-f]{24}-check-3$/);
    expect(got.headers['x-cloudtasks-taskname']).toBe(taskId);
    expect(parseTaskHeaders(got.headers)).toEqual({ queueName: 'portability-check', taskName: taskId, retryCount: 0, executionCount: 0 });
    // Without a delay the task is due when created, so its ETA is not after its delivery.
    const eta = Number(got.headers['x-cloudtasks-tasketa']) * 1000;
    expect(Number.isFinite(eta)).toBe(true);
    expect(eta).toBeLessThanOrEqual(got.at);

    const auth = got.headers.authorization ?? '';
    expect(auth).toMatch(/^Bearer /);
    const { payload } = await jwtVerify(auth.slice(7), createLocalJWKSet(issuer.jwks()), {
      issuer: issuer.issuer,
      audience: `${baseUrl}/check`,
    });
    expect(payload.email).toBe(SA);
    expect(payload.email_verified).toBe(true);
    expect(payload.sub).toMatch(/^\d+$/);

    const [copy] = forJob('job-deliver-copy');
    expect(copy.path).toBe('/copy');
    expect(copy.headers['x-cloudtasks-queuename']).toBe('portability-copy');
    // A token minted for the check function must not be accepted by the copy function.
    await expect(
      jwtVerify((copy.headers.authorization ?? '').slice(7), createLocalJWKSet(issuer.jwks()), { issuer: issuer.issuer, audience: `${baseUrl}/check` }),
    ).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
  });

  it('treats a duplicate enqueue as a no-op, before and after delivery', async () => {
    tasksServer.pause();
    try {
      await queue.enqueue({ step: 'check', jobId: 'job-dup', seq: 1, delaySeconds: 0 });
      await queue.enqueue({ step: 'check', jobId: 'job-dup', seq: 1, delaySeconds: 0 });
      expect(tasksServer.tasks().filter((t) => t.name === queue.taskName({ jobId: 'job-dup', step: 'check', seq: 1 }))).toHaveLength(1);
    } finally {
      tasksServer.resume();
    }
    await tasksServer.idle();
    // Executed names stay reserved, as in Cloud Tasks.
    await queue.enqueue({ step: 'check', jobId: 'job-dup', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    expect(forJob('job-dup')).toHaveLength(1);
    // A new seq is a new task.
    await queue.enqueue({ step: 'check', jobId: 'job-dup', seq: 2, delaySeconds: 0 });
    await tasksServer.idle();
    expect(forJob('job-dup').map((r) => r.body.seq)).toEqual([1, 2]);
  });

  it('honours the delay, scaled by timeScale, and reports the unscaled ETA', async () => {
    // Held while enqueued, so the schedule the server made can be read before anything is due.
    tasksServer.pause();
    try {
      await queue.enqueue({ step: 'check', jobId: 'job-later', seq: 1, delaySeconds: 40 }); // 400 ms scaled
      await queue.enqueue({ step: 'check', jobId: 'job-now', seq: 1, delaySeconds: 0 });
    } finally {
      tasksServer.resume();
    }
    const snapshot = (id: string) => tasksServer.tasks().find((t) => t.name.endsWith(taskIdFor({ jobId: id, step: 'check', seq: 1 })));
    const laterTask = snapshot('job-later');
    const nowTask = snapshot('job-now');
    // The wait to the requested schedule (40 s from the client's enqueue) is what gets scaled.
    const wait = (laterTask?.scheduleTime ?? 0) - (laterTask?.createTime ?? 0);
    expect(wait).toBeGreaterThan(0);
    expect((laterTask?.dueAt ?? 0) - (laterTask?.createTime ?? 0)).toBeCloseTo(wait * TIME_SCALE, 2);
    expect(nowTask?.dueAt).toBe(nowTask?.createTime);
    await tasksServer.idle();
    const [now] = forJob('job-now');
    const [later] = forJob('job-later');
    // In order of due time, whatever the machine's speed; the ETA header is the unscaled schedule.
    expect(received.indexOf(later)).toBeGreaterThan(received.indexOf(now));
    expect(Number(later.headers['x-cloudtasks-tasketa']) * 1000).toBeCloseTo(laterTask?.scheduleTime ?? 0, 0);
  });

  it('retries non-2xx answers with growing backoff and counts retries and executions', async () => {
    behaviours.set('job-flaky', (n) => ({ status: [500, 404, 500][n] ?? 200 }));
    await queue.enqueue({ step: 'check', jobId: 'job-flaky', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    const got = forJob('job-flaky');
    expect(got).toHaveLength(4);
    expect(got.map((r) => parseTaskHeaders(r.headers).retryCount)).toEqual([0, 1, 2, 3]);
    // 5xx answers do not count as executions; the 404 does.
    expect(got.map((r) => parseTaskHeaders(r.headers).executionCount)).toEqual([0, 0, 1, 1]);
    expect(got.map((r) => r.headers['x-cloudtasks-taskpreviousresponse'])).toEqual([undefined, '500', '404', '500']);
    const log = tasksServer.deliveries.filter((d) => d.taskName.endsWith(taskIdFor({ jobId: 'job-flaky', step: 'check', seq: 1 })));
    expect(log.map((d) => [d.status, d.outcome])).toEqual([
      [500, 'retry'],
      [404, 'retry'],
      [500, 'retry'],
      [200, 'done'],
    ]);
    // minBackoff 1 s doubling, scaled 100x: 10, 20, 40 ms.
    expect(log.slice(0, 3).map((d) => d.nextDelayMs)).toEqual([10, 20, 40]);
  });

  it('respects Retry-After on 503 and 429', async () => {
    behaviours.set('job-throttled', (n) => (n === 0 ? { status: 503, headers: { 'Retry-After': '30' } } : n === 1 ? { status: 429, headers: { 'Retry-After': '20' } } : { status: 204 }));
    await queue.enqueue({ step: 'check', jobId: 'job-throttled', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    const got = forJob('job-throttled');
    expect(got).toHaveLength(3);
    // The waits the server chose: 30 s and 20 s scaled to 300 and 200 ms, not the 10/20 ms backoff.
    const log = tasksServer.deliveries.filter((d) => d.taskName.endsWith(taskIdFor({ jobId: 'job-throttled', step: 'check', seq: 1 })));
    expect(log.map((d) => [d.status, d.outcome, d.nextDelayMs])).toEqual([
      [503, 'retry', 300],
      [429, 'retry', 200],
      [204, 'done', undefined],
    ]);
  });

  it('gives up after maxAttempts', async () => {
    behaviours.set('job-broken', () => ({ status: 500 }));
    await queue.enqueue({ step: 'copy', jobId: 'job-broken', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    expect(forJob('job-broken')).toHaveLength(MAX_ATTEMPTS);
    expect(tasksServer.deliveries.filter((d) => d.outcome === 'gave-up')).toHaveLength(1);
    expect(tasksServer.pendingCount()).toBe(0);
  });

  it('gets, lists and deletes tasks; names tasks that have none; unknown queues propagate NOT_FOUND', async () => {
    tasksServer.pause();
    try {
      await queue.enqueue({ step: 'check', jobId: 'job-keep', seq: 1, delaySeconds: 0 });
      await queue.enqueue({ step: 'check', jobId: 'job-delete', seq: 1, delaySeconds: 0 });
      const [unnamed] = await client.createTask({
        parent: queuePath('portability-copy'),
        task: { httpRequest: { url: `${baseUrl}/copy`, body: Buffer.from(JSON.stringify({ jobId: 'job-unnamed', step: 'copy', seq: 0 })) } },
      });
      expect(unnamed.name).toMatch(new RegExp(`^${queuePath('portability-copy')}/tasks/\\d+$`));

      const [listed] = await client.listTasks({ parent: queuePath('portability-check') });
      expect(listed.map((t) => t.name).sort()).toEqual(
        [queue.taskName({ jobId: 'job-keep', step: 'check', seq: 1 }), queue.taskName({ jobId: 'job-delete', step: 'check', seq: 1 })].sort(),
      );
      const doomed = queue.taskName({ jobId: 'job-delete', step: 'check', seq: 1 });
      const [full] = await client.getTask({ name: doomed, responseView: 'FULL' });
      expect(JSON.parse(Buffer.from(full.httpRequest?.body as Uint8Array).toString())).toEqual({ jobId: 'job-delete', step: 'check', seq: 1 });
      expect(full.httpRequest?.oidcToken?.serviceAccountEmail).toBe(SA);

      await client.deleteTask({ name: doomed });
      expect(await grpcCode(client.deleteTask({ name: doomed }))).toBe(5);
      expect(await grpcCode(client.getTask({ name: doomed }))).toBe(5);
      const [after] = await client.listTasks({ parent: queuePath('portability-check') });
      expect(after.map((t) => t.name)).toEqual([queue.taskName({ jobId: 'job-keep', step: 'check', seq: 1 })]);
      // A deleted name stays reserved too: re-enqueueing is a quiet no-op.
      await queue.enqueue({ step: 'check', jobId: 'job-delete', seq: 1, delaySeconds: 0 });
      expect(tasksServer.pendingCount()).toBe(2);

      const lost = new CloudTasksQueue({ client, projectId: PROJECT, location: LOCATION, checkQueue: 'no-such-queue', copyQueue: 'no-such-queue', checkUrl: `${baseUrl}/check`, copyUrl: `${baseUrl}/copy`, serviceAccountEmail: SA });
      await expect(lost.enqueue({ step: 'check', jobId: 'job-lost', seq: 1, delaySeconds: 0 })).rejects.toMatchObject({ code: 5 });
    } finally {
      tasksServer.resume();
    }
    await tasksServer.idle();
    expect(forJob('job-keep')).toHaveLength(1);
    expect(forJob('job-unnamed')).toHaveLength(1);
    expect(forJob('job-delete')).toHaveLength(0);
  });

  it('delivers several tasks at once, up to the concurrency limit', async () => {
    const jobs = Array.from({ length: 14 }, (_, i) => `job-parallel-${i}`);
    // Every answer waits until ten requests are in: the stand-in's limit, reached for certain.
    let release!: () => void;
    const tenIn = new Promise<void>((r) => (release = r));
    for (const j of jobs) behaviours.set(j, () => ({ status: 200, hold: inFlightNow + 1 >= 10 ? (release(), tenIn) : tenIn }));
    maxInFlight = 0;
    tasksServer.pause();
    try {
      for (const j of jobs) await queue.enqueue({ step: 'copy', jobId: j, seq: 1, delaySeconds: 0 });
    } finally {
      tasksServer.resume();
    }
    // resume() starts every due task the limit allows, synchronously.
    expect(tasksServer.inFlightCount()).toBe(10);
    await tasksServer.idle();
    expect(jobs.every((j) => forJob(j).length === 1)).toBe(true);
    expect(maxInFlight).toBe(10);
  });

  it("uses the queue's own retryConfig over the server defaults", async () => {
    await client.createQueue({ parent, queue: { name: queuePath('two-tries'), retryConfig: { maxAttempts: 2, minBackoff: { seconds: 5 } } } });
    behaviours.set('job-two-tries', () => ({ status: 500 }));
    await client.createTask({
      parent: queuePath('two-tries'),
      task: { httpRequest: { url: `${baseUrl}/check`, httpMethod: 'PUT', body: Buffer.from(JSON.stringify({ jobId: 'job-two-tries', step: 'check', seq: 1 })) } },
    });
    await tasksServer.idle();
    const got = forJob('job-two-tries');
    expect(got).toHaveLength(2);
    expect(got[0].method).toBe('PUT');
    // No Content-Type on the task: Cloud Tasks sends application/octet-stream.
    expect(got[0].headers['content-type']).toBe('application/octet-stream');
    // minBackoff 5 s, scaled: 50 ms.
    const log = tasksServer.deliveries.filter((d) => d.url.endsWith('/check') && d.queue === queuePath('two-tries'));
    expect(log.map((d) => [d.status, d.outcome, d.nextDelayMs])).toEqual([
      [500, 'retry', 50],
      [500, 'gave-up', undefined],
    ]);
  });

  it('dropNext loses tasks without delivering them', async () => {
    tasksServer.dropNext(1);
    await queue.enqueue({ step: 'check', jobId: 'job-dropped', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    await queue.enqueue({ step: 'check', jobId: 'job-after-drop', seq: 1, delaySeconds: 0 });
    await tasksServer.idle();
    expect(forJob('job-dropped')).toHaveLength(0);
    expect(forJob('job-after-drop')).toHaveLength(1);
    expect(tasksServer.deliveries.filter((d) => d.outcome === 'dropped').map((d) => d.taskName)).toEqual([
      queue.taskName({ jobId: 'job-dropped', step: 'check', seq: 1 }),
    ]);
  });

  it('parseTaskHeaders reads Node and fetch headers and tolerates missing ones', () => {
    expect(parseTaskHeaders({})).toEqual({ queueName: undefined, taskName: undefined, retryCount: 0, executionCount: 0 });
    const h = new Headers({ 'X-CloudTasks-QueueName': 'q', 'X-CloudTasks-TaskName': 't', 'X-CloudTasks-TaskRetryCount': '7', 'X-CloudTasks-TaskExecutionCount': 'x' });
    expect(parseTaskHeaders(h)).toEqual({ queueName: 'q', taskName: 't', retryCount: 7, executionCount: 0 });
  });

  it('createCloudTasksClient rejects a malformed emulator host', () => {
    expect(() => createCloudTasksClient('localhost')).toThrow(/host:port/);
    expect(() => createCloudTasksClient('127.0.0.1:x')).toThrow(/host:port/);
  });

  it('stop() clears its timers, in-flight deliveries and idle waiters', async () => {
    const resourcesBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const server = await startCloudTasksServer({ oidcIssuer: issuer });
    const c = createCloudTasksClient(server.host);
    const q = new CloudTasksQueue({ client: c, projectId: PROJECT, location: LOCATION, checkQueue: 'c', copyQueue: 'c', checkUrl: `${baseUrl}/check`, copyUrl: `${baseUrl}/copy`, serviceAccountEmail: SA });
    server.ensureQueue(queuePath('c'));
    await q.enqueue({ step: 'check', jobId: 'job-never', seq: 1, delaySeconds: 3600 });
    expect(server.pendingCount()).toBe(1);
    // Observe the outcome at once so the rejection on stop() is never unhandled.
    const idle = server.idle().then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    await c.close();
    await server.stop();
    expect(await idle).toMatch(/stopped/);
    // grpc-js settles its own shutdown timers soon after: no timer of the server outlives it.
    await expect.poll(() => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(resourcesBefore);
    expect(forJob('job-never')).toHaveLength(0);
  });
});
