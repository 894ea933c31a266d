/**
 * Scheduled incremental exports on a controllable clock: the real Firestore emulator (export and
 * schedule stores), the simulated Google side through the real clients (Data Portability API over
 * HTTP, OAuth token endpoint through google-auth-library), the GCS stand-in through the real
 * archive copier. Cloud Tasks is replaced by an in-memory queue that this test drains in due-time
 * order, moving the clock to each task's time: thirty days run in seconds. Changes of schedules
 * (a run started, a cooldown, an end needing consent) are told on the real Pub/Sub emulator.
 */
import { randomBytes } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { PubSub, type Message } from '@google-cloud/pubsub';
import { FirestoreEventOutbox } from '../../functions/src/adapters/firestore-outbox';
import { PubSubEventPublisher } from '../../functions/src/adapters/pubsub-event-publisher';
import { userIdHash } from '../../functions/src/domain/events';
import { EventRelay } from '../../functions/src/pipeline/event-relay';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreScheduleStore } from '../../functions/src/adapters/firestore-schedule-store';
import { GoogleOAuthTokenClient } from '../../functions/src/adapters/google-oauth-token-client';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { PortabilityApiClient } from '../../functions/src/adapters/portability-api-client';
import type { Job } from '../../functions/src/domain/model';
import type { PipelineTask, ScheduleRunQueue, ScheduleRunTask, TaskQueue } from '../../functions/src/domain/ports/task-queues';
import { DAY_MS, HOUR_MS } from '../../functions/src/domain/schedule';
import { createLogger } from '../../functions/src/logging';
import { AccessTokens, quotaUserOf } from '../../functions/src/pipeline/access-tokens';
import { ExportService } from '../../functions/src/pipeline/export-service';
import { ConsentFlow } from '../../functions/src/pipeline/consent-flow';
import { FirestoreConsentStateStore } from '../../functions/src/adapters/firestore-consent-state-store';
import { JobRunner } from '../../functions/src/pipeline/job-runner';
import { ScheduleService } from '../../functions/src/pipeline/schedule-service';
import { startGcsServer, type GcsServer } from '../../local-stack/gcs-server';
import { GoogleAccounts } from '../../local-stack/google-accounts';
import { startOAuthSimulator, type OAuthSimulator } from '../../local-stack/oauth-simulator';
import { startPortabilityApiSimulator, type PortabilityApiSimulator } from '../../local-stack/portability-api-simulator';

const PROJECT = 'demo-scheduled-exports';
const REDIRECT = 'http://localhost:5173/oauth/callback';
const BUCKET = 'scheduled-archives';

type Queued = { due: number; task: { kind: 'pipeline'; task: PipelineTask } | { kind: 'run'; task: ScheduleRunTask } };

/** Cloud Tasks as a list ordered by due time; drained by the test. Duplicate names are refused, as Cloud Tasks does. */
class ManualQueue implements TaskQueue, ScheduleRunQueue {
  readonly pending: Queued[] = [];
  private readonly names = new Set<string>();
  constructor(private readonly clock: () => number) {}
  async enqueue(task: PipelineTask): Promise<void> {
    const name = `${task.jobId}-${task.step}-${task.seq}-${task.redelivery ?? ''}`;
    if (this.names.has(name)) return;
    this.names.add(name);
    this.pending.push({ due: this.clock() + task.delaySeconds * 1000, task: { kind: 'pipeline', task } });
  }
  async enqueueScheduleRun(task: ScheduleRunTask): Promise<void> {
    const name = `${task.scheduleId}-run-${task.run}-${task.redelivery ?? ''}`;
    if (this.names.has(name)) return;
    this.names.add(name);
    this.pending.push({ due: this.clock(), task: { kind: 'run', task } });
  }
}

let t = Date.now();
const clock = (): number => t;
let accounts: GoogleAccounts;
let oauthSim: OAuthSimulator;
let sim: PortabilityApiSimulator;
let gcs: GcsServer;
let queue: ManualQueue;
let store: FirestoreExportStore;
let scheduleStore: FirestoreScheduleStore;
let exportsSvc: ExportService;
let schedules: ScheduleService;
let runner: JobRunner;
let tokens: AccessTokens;
let db: ReturnType<typeof createFirestore>;
let pubsub: PubSub;
const told: Message[] = [];

beforeAll(async () => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  accounts = new GoogleAccounts(clock);
  oauthSim = await startOAuthSimulator({ accounts, clientId: 'cid', clientSecret: 'secret' });
  sim = await startPortabilityApiSimulator({ accounts, jobDurationMs: 120_000, archiveBytes: 4_000 });
  gcs = await startGcsServer();
  const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: PROJECT });
  await storage.bucket(BUCKET).create();
  db = createFirestore({ projectId: PROJECT });
  store = new FirestoreExportStore(db, { events: true });
  scheduleStore = new FirestoreScheduleStore(db, { events: true });
  const logger = createLogger({ level: 'silent' });
  pubsub = new PubSub({ projectId: PROJECT, apiEndpoint: inject('pubsubEmulatorHost'), emulatorMode: true });
  const [topic] = await pubsub.createTopic(`schedule-events-${randomBytes(4).toString('hex')}`);
  const [sub] = await topic.createSubscription(`${topic.name.split('/').pop()}-all`);
  sub.on('message', (m: Message) => {
    told.push(m);
    m.ack();
  });
  const relay = new EventRelay({ publisher: async () => new PubSubEventPublisher(pubsub, topic.name.split('/').pop() as string), outbox: new FirestoreEventOutbox(db), logger });
  const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
  const oauth = new GoogleOAuthTokenClient({ clientId: 'cid', clientSecret: 'secret', tokenUrl: oauthSim.tokenUrl, now: clock });
  const api = new PortabilityApiClient({ apiRoot: sim.apiRoot });
  queue = new ManualQueue(clock);
  tokens = new AccessTokens(store, async () => cipher, async () => oauth, clock);
  const consent = new ConsentFlow({
    store: new FirestoreConsentStateStore(db),
    cipher: async () => cipher,
    authUrl: oauthSim.authUrl,
    clientId: 'cid',
    redirectUris: [REDIRECT],
    stateTtlSeconds: 600,
    now: clock,
  });
  exportsSvc = new ExportService({ consent, store, api: async () => api, oauth: async () => oauth, tokens, cipher: async () => cipher, queue: async () => queue, logger, policy: { initialSeconds: 300, maxSeconds: 3600 }, now: clock, onJobFinished: (job) => schedules.jobFinished(job) });
  schedules = new ScheduleService({ schedules: scheduleStore, store, queue: async () => queue, runQueue: async () => queue, logger, now: clock, relay });
  runner = new JobRunner({
    store,
    api,
    tokens,
    queue,
    copier: async () => new CloudStorageArchiveCopier({ storage, bucket: BUCKET, allowedHosts: [sim.archiveHost], allowHttp: true }),
    policy: { initialSeconds: 300, maxSeconds: 3600, copyLeaseSeconds: 600 },
    maxArchiveRetries: 3,
    cipher,
    copySliceSeconds: 600,
    copyChunkBytes: 262_144,
    logger,
    now: clock,
    onJobFinished: (job) => schedules.jobFinished(job),
    relay,
  });
}, 30_000);

afterAll(async () => {
  await pubsub?.close();
  await db?.terminate();
  await Promise.all([oauthSim?.stop(), sim?.stop(), gcs?.stop()]);
});

/** Runs every queued task due before `until`, in due order, moving the clock forward to each. */
async function drain(until = Number.POSITIVE_INFINITY): Promise<void> {
  for (let steps = 0; ; steps++) {
    if (steps > 2000) throw new Error('queue does not drain');
    queue.pending.sort((a, b) => a.due - b.due);
    const next = queue.pending[0];
    if (!next || next.due > until) return;
    queue.pending.shift();
    t = Math.max(t, next.due);
    const outcome = next.task.kind === 'run' ? await schedules.startRun(next.task.task) : await runner.run(next.task.task);
    if (outcome.kind === 'retry' || outcome.kind === 'throttle') throw new Error(`task failed: ${JSON.stringify(next.task)} ${outcome.detail}`);
  }
}

async function authorize(userId: string, resources: string[], days: number): Promise<{ googleUserId: string }> {
  const googleUserId = `google-${userId}`;
  const { authorizationUrl, state } = await exportsSvc.startAuthorization(userId, { resources, redirectUri: REDIRECT });
  const codeChallenge = new URL(authorizationUrl).searchParams.get('code_challenge') ?? '';
  const code = oauthSim.consent({ googleUserId, resources, redirectUri: REDIRECT, accessType: 'TIME_BASED', days, codeChallenge });
  await exportsSvc.authorize(userId, code, state);
  return { googleUserId };
}

/** The schedule's own events told so far (ids), waiting until `count` arrived. */
async function scheduleEvents(scheduleId: string, count: number): Promise<Message[]> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    const got = told.filter((m) => m.attributes.scheduleId === scheduleId && m.attributes.type?.startsWith('portability.schedule.'));
    if (got.length >= count) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`fewer than ${count} events of schedule ${scheduleId}`);
}

async function runJobs(scheduleId: string): Promise<Job[]> {
  const runs = await scheduleStore.listRuns(scheduleId, 500);
  const jobs = (await Promise.all(runs.map((r) => store.listJobs(r.id)))).flat();
  return jobs.sort((a, b) => a.createdAt - b.createdAt || a.resource.localeCompare(b.resource));
}

describe('scheduled exports on a controllable clock', () => {
  it('a 30-day grant gives 30 daily runs with contiguous, non-overlapping windows, then stops at expiry', async () => {
    const T0 = t;
    await authorize('rita', ['myactivity.youtube', 'youtube.public_videos'], 30);
    const grant = await store.getGrant('rita');
    expect(grant?.timeBasedResources).toEqual(['myactivity.youtube', 'youtube.public_videos']);
    expect(grant?.expiresAt).toBeGreaterThanOrEqual(T0 + 30 * DAY_MS);

    const view = await schedules.createSchedule('rita', { startTime: '2026-01-01T00:00:00Z' });
    expect(view).toMatchObject({ state: 'ACTIVE', everyHours: 24, runCount: 0 });
    expect(view.groups.map((g) => [g.resource, g.window])).toEqual([
      ['myactivity.youtube', 'incremental'],
      ['youtube.public_videos', 'full'],
    ]);
    for (let day = 0; day < 30; day++) {
      expect(t).toBeLessThanOrEqual(T0 + day * DAY_MS);
      t = T0 + day * DAY_MS;
      // A few scheduler ticks per day, as Cloud Scheduler every few minutes: only the due one runs.
      await schedules.tick();
      await drain(T0 + day * DAY_MS + 6 * HOUR_MS);
      await schedules.tick();
      await drain(T0 + day * DAY_MS + 12 * HOUR_MS);
    }
    const jobs = await runJobs(view.scheduleId);
    const activity = jobs.filter((j) => j.resource === 'myactivity.youtube');
    const videos = jobs.filter((j) => j.resource === 'youtube.public_videos');
    expect(activity).toHaveLength(30);
    expect(videos).toHaveLength(30);
    expect(jobs.every((j) => j.state === 'SUCCEEDED')).toBe(true);
    // Run 1 starts at the user's chosen time; run n+1 starts exactly where run n's export ended.
    expect(activity[0]?.startTime).toBe('2026-01-01T00:00:00Z');
    for (let i = 1; i < activity.length; i++) {
      const prev = activity[i - 1] as Job;
      const cur = activity[i] as Job;
      expect(cur.startTime).toBe(prev.exportTime);
      expect(Date.parse(cur.exportTime as string)).toBeGreaterThan(Date.parse(cur.startTime as string));
    }
    // What Google was asked for, as the simulator saw it: the same windows, one a day.
    const asked = sim
      .jobs()
      .filter((j) => j.googleUserId === 'google-rita' && j.resources[0] === 'myactivity.youtube')
      .sort((a, b) => a.createdAt - b.createdAt);
    expect(asked).toHaveLength(30);
    expect(asked.slice(1).map((j) => j.startTime)).toEqual(asked.slice(0, -1).map((j) => j.exportTime));
    // Groups without time filters are exported whole, and their jobs say so.
    expect(videos.every((j) => j.window === 'full' && j.startTime === undefined)).toBe(true);
    // Each run's archives under the run's own export prefix.
    const runs = await scheduleStore.listRuns(view.scheduleId, 100);
    expect(new Set(runs.map((r) => r.id)).size).toBe(30);
    expect(runs.map((r) => r.run)).toEqual(Array.from({ length: 30 }, (_, i) => 30 - i));
    for (const j of jobs) expect(j.archives.every((a) => a.name.startsWith(`rita/${j.exportId}/${j.resource}/`))).toBe(true);

    // Day 30: the grant has ended; the schedule stops with a reason, and nothing polls afterwards.
    t = T0 + 30 * DAY_MS + 60_000;
    await schedules.tick();
    await drain(t + HOUR_MS);
    const ended = await schedules.getSchedule('rita', view.scheduleId);
    expect(ended).toMatchObject({ state: 'NEEDS_CONSENT', reason: { code: 'GRANT_EXPIRED' }, runCount: 30 });
    expect(ended.nextRunAt).toBeUndefined();
    expect(ended.runs).toHaveLength(30);
    const calls = sim.calls.length;
    t += 2 * DAY_MS;
    expect(await schedules.tick()).toEqual({ due: 0, enqueued: 0 });
    await drain(t + HOUR_MS);
    expect(sim.calls.length).toBe(calls);
  }, 120_000);

  it('a cooldown answer moves the group to Google\u2019s timestamp_after_24hrs, then the run happens there', async () => {
    const T0 = t;
    await authorize('sam', ['myactivity.search'], 30);
    // The user exported the group at Google (another app, or by hand) before opting in, twelve hours ago.
    await new PortabilityApiClient({ apiRoot: sim.apiRoot }).initiate(await tokens.forUser('sam'), { resources: ['myactivity.search'] }, 'q');
    t = T0 + 12 * HOUR_MS;
    const view = await schedules.createSchedule('sam', {});
    await drain(t + HOUR_MS);
    const jobs = await runJobs(view.scheduleId);
    expect(jobs.map((j) => j.state)).toEqual(['FAILED']);
    expect(jobs[0]?.error).toMatchObject({ code: 'TIME_BASED_COOLDOWN', retryAt: new Date(T0 + DAY_MS).toISOString().replace('.000Z', 'Z') });
    const moved = await schedules.getSchedule('sam', view.scheduleId);
    expect(Date.parse(moved.nextRunAt as string)).toBe(T0 + DAY_MS);
    // Ticks before then start nothing.
    t = T0 + 20 * HOUR_MS;
    expect((await schedules.tick()).due).toBe(0);
    t = T0 + DAY_MS;
    expect((await schedules.tick()).enqueued).toBe(1);
    await drain(t + HOUR_MS);
    const after = await runJobs(view.scheduleId);
    expect(after.map((j) => j.state)).toEqual(['FAILED', 'SUCCEEDED']);
    // The failed run moved no cursor: the next run is the first window (no startTime chosen), then incremental.
    expect(after[1]?.startTime).toBeUndefined();
    t = T0 + 2 * DAY_MS;
    await schedules.tick();
    await drain(t + HOUR_MS);
    const third = (await runJobs(view.scheduleId))[2];
    expect(third?.startTime).toBe(after[1]?.exportTime);
    // Told: each run started, and the cooldown with when the group is due again.
    const events = await scheduleEvents(view.scheduleId, 4);
    expect(events.map((m) => m.attributes['ce-id'])).toEqual([
      `schedule/${view.scheduleId}/run/1`,
      `schedule/${view.scheduleId}/cooldown/${jobs[0]!.id}`,
      `schedule/${view.scheduleId}/run/2`,
      `schedule/${view.scheduleId}/run/3`,
    ]);
    const cooldown = events[1]!;
    expect(cooldown.attributes).toMatchObject({ type: 'portability.schedule.cooled-down', state: 'ACTIVE', userIdHash: userIdHash('sam'), exportId: jobs[0]!.exportId, 'ce-source': `schedules/${view.scheduleId}` });
    expect(JSON.parse(cooldown.data.toString())).toEqual({ scheduleId: view.scheduleId, state: 'ACTIVE', resource: 'myactivity.search', jobId: jobs[0]!.id, exportId: jobs[0]!.exportId, dueAt: new Date(T0 + DAY_MS).toISOString() });
    expect(JSON.parse(events[2]!.data.toString())).toEqual({ scheduleId: view.scheduleId, state: 'ACTIVE', run: 2, exportId: after[1]!.exportId, resources: ['myactivity.search'] });
    expect((await db.collection('outbox').get()).size).toBe(0);
  }, 60_000);

  it('a revoked grant ends the schedule as NEEDS_CONSENT, and nothing keeps polling it', async () => {
    const T0 = t;
    const { googleUserId } = await authorize('uma', ['chrome.history'], 180);
    const view = await schedules.createSchedule('uma', {});
    await drain(T0 + HOUR_MS);
    for (const g of accounts.grants.values()) if (g.googleUserId === googleUserId) accounts.revoke(g.grantId);
    t = T0 + DAY_MS;
    await schedules.tick();
    await drain(t + HOUR_MS);
    const ended = await schedules.getSchedule('uma', view.scheduleId);
    expect(ended).toMatchObject({ state: 'NEEDS_CONSENT', reason: { code: 'CONSENT_REVOKED' } });
    expect(ended.nextRunAt).toBeUndefined();
    expect(ended.runs?.[0]?.jobs[0]).toMatchObject({ state: 'FAILED', error: { code: 'CONSENT_REVOKED' } });
    const umaCalls = (): number => sim.calls.filter((c) => c.quotaUser === quotaUserOf('uma')).length;
    const calls = umaCalls();
    for (let d = 2; d < 5; d++) {
      t = T0 + d * DAY_MS;
      await schedules.tick();
      await drain(t + HOUR_MS);
    }
    expect(umaCalls()).toBe(calls);
    expect((await schedules.getSchedule('uma', view.scheduleId)).runCount).toBe(ended.runCount);
    // Told once that the schedule needs consent, with why, in the transaction that ended it.
    await scheduleEvents(view.scheduleId, 3);
    const ends = told.filter((m) => m.attributes.scheduleId === view.scheduleId && m.attributes.type === 'portability.schedule.ended');
    expect(ends.map((m) => [m.attributes['ce-id'], m.attributes.state])).toEqual([[`schedule/${view.scheduleId}/NEEDS_CONSENT`, 'NEEDS_CONSENT']]);
    expect(JSON.parse(ends[0]!.data.toString())).toMatchObject({ scheduleId: view.scheduleId, state: 'NEEDS_CONSENT', reason: { code: 'CONSENT_REVOKED' } });
  }, 60_000);

  it('a run whose export the user cancels folds the cancelled job into its schedule at once', async () => {
    await authorize('cora', ['myactivity.youtube'], 30);
    const view = await schedules.createSchedule('cora', {});
    await schedules.tick();
    // The run and its initiate: the job now waits on Google.
    await drain(t);
    const [job] = await runJobs(view.scheduleId);
    expect(job).toMatchObject({ state: 'WAITING', scheduleId: view.scheduleId });
    expect((await scheduleStore.getSchedule(view.scheduleId))?.groups[0]).toMatchObject({ lastJobId: job?.id });
    expect((await scheduleStore.getSchedule(view.scheduleId))?.groups[0]?.lastJobSettled).toBeFalsy();
    await exportsSvc.cancelExport('cora', job?.exportId as string);
    expect(await store.getJob(job?.id as string)).toMatchObject({ state: 'CANCELLED' });
    // Settled by the cancel itself, not left for the next run to repair.
    expect((await scheduleStore.getSchedule(view.scheduleId))?.groups[0]).toMatchObject({ lastJobId: job?.id, lastJobSettled: true });
  });

  it('a run task delivered twice, or late, starts the run once', async () => {
    const T0 = t;
    await authorize('vic', ['play.installs'], 30);
    const view = await schedules.createSchedule('vic', {});
    const first = queue.pending.find((q) => q.task.kind === 'run' && q.task.task.scheduleId === view.scheduleId);
    expect(first).toBeDefined();
    const task = first?.task.task as ScheduleRunTask;
    const outcomes = await Promise.all([schedules.startRun(task), schedules.startRun(task)]);
    // One claims the run; the other finds it claimed (or, serialized, re-creates the same export).
    expect(outcomes.map((o) => o.kind)).toContain('done');
    await drain(T0 + HOUR_MS);
    expect(await schedules.startRun(task)).toMatchObject({ kind: 'done' });
    expect(await schedules.startRun({ scheduleId: view.scheduleId, run: 5 })).toMatchObject({ kind: 'dropped' });
    const runs = await scheduleStore.listRuns(view.scheduleId, 10);
    expect(runs).toHaveLength(1);
    expect((await store.listJobs(runs[0]!.id)).map((j) => j.state)).toEqual(['SUCCEEDED']);
  }, 60_000);
});
