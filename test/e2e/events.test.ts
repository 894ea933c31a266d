/**
 * Apps learn of finished exports without polling: through the whole local stack with the real
 * Pub/Sub emulator, an export of two groups produces one event per
 * job and one for the export, each once, with the archives of the copied job; a cancel ends
 * jobs through the same state machine, so it is told too.
 */
import type { Message } from '@google-cloud/pubsub';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { userIdHash } from '../../functions/src/domain/events';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, authorizedUser, waitForExport, type ExportBody } from '../support/api-client';

let stack: LocalStack;
const received: Message[] = [];

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    events: inject('pubsubEmulatorHost'),
    projectId: 'demo-e2e-events',
    jobDurationMs: 300,
    archiveBytes: 50_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
  });
  const events = stack.events!;
  const [sub] = await events.pubsub.topic(events.topic).createSubscription('app-e2e');
  sub.on('message', (m: Message) => {
    received.push(m);
    m.ack();
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

async function eventsOf(exportId: string, count: number): Promise<Message[]> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const got = received.filter((m) => m.attributes.exportId === exportId);
    if (got.length >= count) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fewer than ${count} events of ${exportId}`);
}

describe('events on Pub/Sub', () => {
  it('tell of every job and of the export when it ends, once each, with what was copied', async () => {
    const { token } = await authorizedUser(stack, 'ivy', ['myactivity.search', 'chrome.history']);
    const res = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(res.status).toBe(202);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.state).toBe('SUCCEEDED');
    const got = await eventsOf(res.body.exportId, 3);
    // Let duplicates, if any, arrive before counting.
    await new Promise((r) => setTimeout(r, 1000));
    const all = received.filter((m) => m.attributes.exportId === res.body.exportId);
    expect(all.map((m) => m.attributes['ce-id']).sort()).toEqual(
      [`export/${res.body.exportId}/SUCCEEDED`, ...done.jobs.map((j) => `job/${j.jobId}/SUCCEEDED`)].sort(),
    );
    for (const m of got) expect(m.attributes.userIdHash).toBe(userIdHash('ivy'));
    const jobEvent = got.find((m) => m.attributes.type === 'portability.job.finished');
    const data = JSON.parse(jobEvent!.data.toString('utf8')) as { archives: Array<{ name: string; size: number; crc32c: string }> };
    const view = done.jobs.find((j) => j.jobId === JSON.parse(jobEvent!.data.toString('utf8')).jobId);
    expect(data.archives).toEqual((view?.archives ?? []).map((a) => ({ name: a.name, size: a.size, crc32c: a.crc32c })));
  });

  it('tell of a cancelled export too', async () => {
    stack.portability.faults.jobDuration('myactivity.search', 60_000);
    const { token } = await authorizedUser(stack, 'jo', ['myactivity.search']);
    const res = await api<ExportBody>(stack, token, 'POST', '/v1/exports', {});
    expect(res.status).toBe(202);
    await waitForExport(stack, token, res.body.exportId, (e) => e.jobs.every((j) => j.state === 'WAITING'));
    expect((await api(stack, token, 'POST', `/v1/exports/${res.body.exportId}:cancel`)).status).toBe(200);
    const got = await eventsOf(res.body.exportId, 2);
    expect(got.map((m) => [m.attributes.type, m.attributes.state]).sort()).toEqual([
      ['portability.export.finished', 'CANCELLED'],
      ['portability.job.finished', 'CANCELLED'],
    ]);
  });
});
