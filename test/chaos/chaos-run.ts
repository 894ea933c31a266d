/**
 * A seeded fault-injection run through the real local stack: many exports at once, while Cloud
 * Tasks drops and duplicates deliveries, copy instances die mid-stream, signed URLs expire
 * mid-stream, Google's API throttles and fails, and archive jobs end FAILED (some for good).
 * Meanwhile users act on some exports in flight (cancel, delete, reset their authorization, a
 * duplicate export or schedule sent in parallel; test/support/chaos-user-actions.ts). Afterwards
 * an audit checks that nothing was lost or written twice, that each export ended as what its users
 * did allows, that no Google job is held by two exports, and that no object stays that the API
 * does not show.
 *
 * Determinism: the plan (users, resources, FAILED jobs, multi-URL resources, API fault bursts) comes
 * from a PRNG seeded with `seed`; per-task and per-copy faults are decided by hashing the seed with
 * what the fault hits (user, resource, step, seq, archive index), not by the order things happen,
 * so the same seed picks the same victims. Which call an API burst hits depends on scheduling.
 *
 * `npm run chaos [-- --seed N --exports N]` runs the full version; test/e2e/chaos.test.ts a small one.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { Firestore } from '@google-cloud/firestore';
import type { Message } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { CloudStorageArchiveCopier } from '../../functions/src/adapters/archive-copier';
import type { ArchiveCopier } from '../../functions/src/domain/ports/archive-copier';
import type { EventPublisher } from '../../functions/src/domain/ports/event-publisher';
import { PubSubEventPublisher } from '../../functions/src/adapters/pubsub-event-publisher';
import type { DispatchFault } from '../../local-stack/cloud-tasks-server';
import { deriveExportState } from '../../functions/src/domain/export-state';
import type { JobState } from '../../functions/src/domain/model';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import type { SimMethod } from '../../local-stack/portability-api-simulator';
import { api, authorizedUser, crc32cOfObject, type ExportBody } from '../support/api-client';
import {
  duplicateSchedules,
  fireActions,
  planActions,
  USER_ACTION_KINDS,
  type ActionAnswer,
  type FiredActions,
  type PlannedActions,
  type UserActionKind,
} from '../support/chaos-user-actions';

export type FaultKind =
  | 'task-dropped'
  | 'task-duplicated'
  | 'task-duplicated-late'
  | 'copy-killed'
  | 'url-expired-mid-stream'
  | 'api-429'
  | 'api-500'
  | 'archive-failed-recoverable'
  | 'archive-failed-unrecoverable'
  | 'multi-url-job'
  | 'publish-failed';

export interface FaultRates {
  /** Per task, first attempt only (redeliveries always get through, so every export can finish). */
  dropTask: number;
  duplicateTask: number;
  /** Per archive, first copy only. */
  killCopy: number;
  expireUrl: number;
  /** Per job: Google fails it 1–3 times (recovered by retry) or 4 times (ARCHIVE_FAILED). */
  failJobRecoverable: number;
  failJobUnrecoverable: number;
  /** Bursts of 429/500 answers, per export. */
  apiBurstsPerExport: number;
  /** Share of exports that ask for two resource groups. */
  twoResources: number;
  /** Share of exports a user acts on while they run (cancel, delete, reset, duplicate export). */
  userActions: number;
  /** Users (per export, at least one when > 0) who send two schedules at once. */
  duplicateSchedules: number;
  /** Per event, first publish only: Pub/Sub refuses it (the outbox and the sweeper must make up for it). */
  failPublish: number;
}

export const DEFAULT_RATES: FaultRates = {
  dropTask: 0.04,
  duplicateTask: 0.08,
  killCopy: 0.12,
  expireUrl: 0.08,
  failJobRecoverable: 0.08,
  failJobUnrecoverable: 0.04,
  apiBurstsPerExport: 0.15,
  twoResources: 0.4,
  userActions: 0.3,
  duplicateSchedules: 0.04,
  failPublish: 0.25,
};

export interface ChaosOptions {
  exports: number;
  seed: number;
  /** Use this Firestore emulator ('host:port'); default: the stack starts its own. */
  firestoreEmulatorHost?: string;
  /** Use this Pub/Sub emulator ('host:port') for the events; default: the stack starts its own. */
  pubsubEmulatorHost?: string;
  /** A `demo-chaos-…` project id; default one derived from the seed and the time. */
  projectId?: string;
  rates?: Partial<FaultRates>;
  /** Approximate size of each data archive (bytes). Default 120 000. */
  archiveBytes?: number;
  /** Exports created at once (their tasks are held until the batch is recorded). Default 10. */
  batchSize?: number;
  /** How often "Cloud Scheduler" runs the sweeper (ms). Default 1000. Set 0 to never sweep. */
  sweepIntervalMs?: number;
  /** Give up waiting for terminal states after this long (ms). Default 240 000. */
  timeoutMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** The functions' JSON logs (default: silent). */
  functionLogs?: Writable;
}

export interface ChaosProblem {
  check: string;
  detail: string;
}

export interface ChaosReport {
  seed: number;
  projectId: string;
  exports: number;
  jobs: number;
  archives: number;
  bytesCopied: number;
  durationMs: number;
  /** What the plan put in (API bursts: calls armed), and what actually happened. */
  faultsPlanned: Record<FaultKind, number>;
  faultsInjected: Record<FaultKind, number>;
  /**
   * User actions planned, and those that acted (cancel 200, delete 204, reset 200, a duplicate
   * refused); `late`: sent after their export had ended; `unavailable`: 503 + Retry-After answers
   * retried on the way.
   */
  actions: { planned: Record<UserActionKind, number>; injected: Record<UserActionKind, number>; late: number; unavailable: number };
  exportStates: Record<string, number>;
  jobStates: Record<string, number>;
  jobErrors: Record<string, number>;
  /** Over the exports no user action touched (those end as their Google faults say). */
  expected: { recoverableExports: number; unrecoverableExports: number; unrecoverableJobs: number };
  untouched: { succeeded: number; archiveFailedJobs: number };
  deliveries: { total: number; byOutcome: Record<string, number>; byStatus: Record<string, number> };
  sweeps: { runs: number; requeued: number };
  /** Ended jobs and exports (and started scheduled runs) that must be told, events received (duplicates counted), ids received more than once. */
  events: { wanted: number; received: number; duplicates: number };
  tasksLeft: number;
  /** Exports not terminal when the run gave up waiting (empty when all finished). */
  stuck: Array<{ exportId: string; jobs: string[] }>;
  problems: ChaosProblem[];
  ok: boolean;
}

const RESOURCE_POOL = [
  'chrome.history',
  'myactivity.search',
  'chrome.bookmarks',
  'youtube.subscriptions',
  'maps.reviews',
  'play.installs',
  'discover.likes',
  'myactivity.youtube',
] as const;
/** Sticky per resource: these come as several archives (the first an archive-browser zip). */
const MULTI_URL: Record<string, number> = { 'myactivity.search': 2, 'chrome.history': 3 };
const API_FAULT_METHODS: SimMethod[] = ['initiate', 'getState', 'retry', 'download'];
const FAULT_KINDS: FaultKind[] = [
  'task-dropped',
  'task-duplicated',
  'task-duplicated-late',
  'copy-killed',
  'url-expired-mid-stream',
  'api-429',
  'api-500',
  'archive-failed-recoverable',
  'archive-failed-unrecoverable',
  'multi-url-job',
  'publish-failed',
];

/** Faults decided as things happen (by hashing the seed with the victim), not planned up front. */
const ON_THE_FLY: Partial<Record<FaultKind, string>> = {
  'task-dropped': 'first deliveries, by seed',
  'task-duplicated': 'first deliveries, by seed',
  'task-duplicated-late': 'first deliveries, by seed',
  'copy-killed': 'first copy of an archive, by seed',
  'url-expired-mid-stream': 'first copy of an archive, by seed',
  'publish-failed': 'first publish of an event, by seed',
};

/** mulberry32: small, fast, good enough to pick faults. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A number in [0, 1) fixed by the seed and a key: the same victim whatever the order of events. */
function chance(seed: number, key: string): number {
  return createHash('sha256').update(`${seed}\n${key}`).digest().readUInt32BE(0) / 4294967296;
}

function count<T extends string>(keys: readonly T[]): Record<T, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<T, number>;
}

function bump(m: Record<string, number>, k: string, by = 1): void {
  m[k] = (m[k] ?? 0) + by;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PlannedExport {
  index: number;
  userId: string;
  googleUserId: string;
  resources: string[];
  /** resource -> how many times Google fails its archive job */
  failures: Record<string, number>;
  exportId?: string;
  token?: string;
  /** resource -> pipeline job id */
  jobIds: Record<string, string>;
  actions?: PlannedActions;
  /** The duplicate POST /v1/exports sent with the first. */
  duplicate?: ActionAnswer;
  fired?: FiredActions;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const rates = { ...DEFAULT_RATES, ...opts.rates };
  const seed = opts.seed;
  const log = opts.log ?? (() => undefined);
  const rand = prng(seed);
  const projectId = opts.projectId ?? `demo-chaos-${seed % 100000}-${(Date.now() % 1e8).toString(36)}`;
  if (!projectId.startsWith('demo-')) throw new Error('the chaos run only touches demo-… projects');
  const planned = count(FAULT_KINDS);
  const injected = count(FAULT_KINDS);
  const problems: ChaosProblem[] = [];
  const problem = (check: string, detail: string) => problems.push({ check, detail });

  // ---------- the plan ----------
  const plan: PlannedExport[] = [];
  for (let i = 0; i < opts.exports; i++) {
    const first = RESOURCE_POOL[Math.floor(rand() * RESOURCE_POOL.length)] as string;
    const resources = [first];
    if (rand() < rates.twoResources) {
      const others = RESOURCE_POOL.filter((r) => r !== first);
      resources.push(others[Math.floor(rand() * others.length)] as string);
    }
    const failures: Record<string, number> = {};
    for (const r of resources.sort()) {
      const x = rand();
      if (x < rates.failJobUnrecoverable) {
        failures[r] = 4;
        planned['archive-failed-unrecoverable']++;
      } else if (x < rates.failJobUnrecoverable + rates.failJobRecoverable) {
        failures[r] = 1 + Math.floor(rand() * 3);
        planned['archive-failed-recoverable']++;
      }
      if (MULTI_URL[r]) planned['multi-url-job']++;
    }
    plan.push({ index: i, userId: `chaos-user-${i}`, googleUserId: `google-chaos-user-${i}`, resources, failures, jobIds: {} });
  }
  const actionsPlanned = count(USER_ACTION_KINDS);
  const actionsInjected = count(USER_ACTION_KINDS);
  for (const p of plan) {
    p.actions = planActions((key) => chance(seed, key), p.index, rates.userActions);
    for (const k of p.actions?.kinds ?? []) actionsPlanned[k]++;
    if (p.actions?.duplicate) actionsPlanned['duplicate-export']++;
  }
  const scheduleUsers = Array.from({ length: rates.duplicateSchedules > 0 ? Math.max(1, Math.round(opts.exports * rates.duplicateSchedules)) : 0 }, (_, k) => ({
    userId: `chaos-schedule-user-${k}`,
    resource: RESOURCE_POOL[Math.floor(chance(seed, `schedule/${k}`) * RESOURCE_POOL.length)] as string,
    created: false,
  }));
  actionsPlanned['duplicate-schedule'] = scheduleUsers.length;
  const bursts: Array<{ atFraction: number; method: SimMethod; status: 429 | 500; count: number }> = [];
  for (let b = 0; b < Math.round(opts.exports * rates.apiBurstsPerExport); b++) {
    const method = API_FAULT_METHODS[Math.floor(rand() * API_FAULT_METHODS.length)] as SimMethod;
    const status = rand() < 0.5 ? 429 : 500;
    const n = 1 + Math.floor(rand() * 3);
    bursts.push({ atFraction: rand(), method, status, count: n });
    planned[status === 429 ? 'api-429' : 'api-500'] += n;
  }

  // ---------- the stack ----------
  // The functions get a copier that forwards to the faulty one, which needs the stack's endpoints first.
  let chaosCopier: ArchiveCopier | undefined;
  const lateCopier = async (): Promise<ArchiveCopier> => {
    if (!chaosCopier) throw new Error('the chaos copier is not ready');
    return chaosCopier;
  };
  // Pub/Sub refuses an event's first publish, by seed: the outbox keeps it and a sweep publishes it.
  const publisherRef: { real?: EventPublisher } = {};
  const firstPublish = new Set<string>();
  const flakyPublisher = async (): Promise<EventPublisher> => ({
    publish: async (events) => {
      if (!publisherRef.real) throw new Error('the events publisher is not ready');
      const refused = events.filter((e) => !firstPublish.has(e.id) && chance(seed, `publish ${e.id}`) < rates.failPublish);
      for (const e of events) firstPublish.add(e.id);
      if (refused.length > 0) {
        injected['publish-failed'] += refused.length;
        throw new Error('Pub/Sub unavailable (injected)');
      }
      await publisherRef.real.publish(events);
    },
  });
  const stack: LocalStack = await startLocalStack({
    ...(opts.firestoreEmulatorHost ? { firestoreEmulatorHost: opts.firestoreEmulatorHost } : {}),
    events: opts.pubsubEmulatorHost ?? true,
    projectId,
    jobDurationMs: 300,
    archiveBytes: opts.archiveBytes ?? 120_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.1,
    sweepGraceSeconds: 2,
    logLevel: opts.functionLogs ? 'info' : 'silent',
    ...(opts.functionLogs ? { logDestination: opts.functionLogs } : {}),
    // A lost copy task is found once its lease ends: keep the lease short so the sweeper acts in seconds.
    env: { COPY_LEASE_SECONDS: '5' },
    overrides: { copier: lateCopier, publisher: flakyPublisher },
  });
  const db = new Firestore({ projectId });
  const events = stack.events as NonNullable<LocalStack['events']>;
  publisherRef.real = new PubSubEventPublisher(events.pubsub, events.topic);
  // The app's side: every event that arrives, by id (duplicates are allowed: at least once).
  const eventsSeen = new Map<string, number>();
  const [appSubscription] = await events.pubsub.topic(events.topic).createSubscription(`chaos-app-${Date.now()}`);
  appSubscription.on('message', (m: Message) => {
    eventsSeen.set(m.attributes['ce-id'] ?? '', (eventsSeen.get(m.attributes['ce-id'] ?? '') ?? 0) + 1);
    m.ack();
  });
  const byJobId = new Map<string, { exp: PlannedExport; resource: string }>();
  const byUser = new Map(plan.map((p) => [p.userId, p]));
  let sweeping = false;
  let sweepLoop: Promise<void> = Promise.resolve();
  const sweeps = { runs: 0, requeued: 0 };
  let eventReport = { wanted: 0, received: 0, duplicates: 0 };
  const burstTimers: NodeJS.Timeout[] = [];
  try {
    for (const [r, n] of Object.entries(MULTI_URL)) stack.portability.faults.urlsPerJob(r, n);

    // Cloud Tasks: drop or duplicate a task's first delivery, decided by what the task is.
    const seen = new Map<string, number>();
    stack.tasks.setDispatchFault((t): DispatchFault | undefined => {
      if (t.attempt !== 1) return undefined;
      let body: { jobId?: string; step?: string; seq?: number };
      try {
        body = JSON.parse(t.body.toString('utf8')) as typeof body;
      } catch {
        return undefined;
      }
      const owner = body.jobId ? byJobId.get(body.jobId) : undefined;
      if (!owner) return undefined;
      const key = `${owner.exp.userId}/${owner.resource}/${body.step}/${body.seq}`;
      const nth = seen.get(key) ?? 0;
      seen.set(key, nth + 1);
      const x = chance(seed, `task/${key}/${nth}`);
      if (x < rates.dropTask) {
        injected['task-dropped']++;
        return 'drop';
      }
      if (x < rates.dropTask + rates.duplicateTask) {
        const late = chance(seed, `late/${key}/${nth}`) < 0.5;
        injected[late ? 'task-duplicated-late' : 'task-duplicated']++;
        return late ? 'duplicate-after' : 'duplicate';
      }
      return undefined;
    });

    // The copy function: each request runs in a context, so a dying copy can take its connection down.
    const requests = new AsyncLocalStorage<{ socket?: { destroy(): void } }>();
    const copyHandler = stack.composition.copyArchives;
    stack.composition.copyArchives = (req, res) => requests.run({ socket: (res as unknown as { socket?: { destroy(): void } }).socket }, () => copyHandler(req, res));
    const cfg = stack.config;
    const realCopier = new CloudStorageArchiveCopier({
      storage: new Storage({ apiEndpoint: stack.gcs.endpoint, projectId }),
      bucket: cfg.archive.bucket,
      allowedHosts: cfg.archive.urlHosts,
      allowHttp: cfg.archive.allowHttp,
      maxBytes: cfg.archive.maxBytes,
      stallTimeoutMs: cfg.archive.stallSeconds * 1000,
    });
    const copyCalls = new Map<string, number>();
    chaosCopier = new Proxy(realCopier, {
      get(target, prop, receiver) {
        if (prop !== 'copy') {
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
        return (...args: Parameters<ArchiveCopier['copy']>) => {
          const [url, objectName] = args;
          const [userId, , resource, file] = objectName.split('/');
          const key = `${userId}/${resource}/${file}`;
          const nth = copyCalls.get(key) ?? 0;
          copyCalls.set(key, nth + 1);
          const x = nth === 0 && userId && byUser.has(userId) ? chance(seed, `copy/${key}`) : 1;
          const fraction = 0.2 + 0.6 * chance(seed, `fraction/${key}`);
          const request = requests.getStore();
          let dead = false;
          if (x < rates.killCopy && request?.socket) {
            // The instance dies part-way: its connection to Cloud Tasks drops and no line of it runs again.
            stack.portability.faults.interruptDownload(url, {
              afterFraction: fraction,
              expire: true,
              onCut: () => {
                dead = true;
                injected['copy-killed']++;
                request.socket?.destroy();
              },
            });
          } else if (x < rates.killCopy + rates.expireUrl) {
            stack.portability.faults.interruptDownload(url, { afterFraction: fraction, expire: true, onCut: () => void injected['url-expired-mid-stream']++ });
          }
          return new Promise((resolve, reject) => {
            target.copy(...args).then(
              (v) => !dead && resolve(v),
              (e: unknown) => !dead && reject(e instanceof Error ? e : new Error(String(e))),
            );
          });
        };
      },
    });

    if ((opts.sweepIntervalMs ?? 1000) > 0) {
      sweeping = true;
      sweepLoop = (async () => {
        while (sweeping) {
          await sleep(opts.sweepIntervalMs ?? 1000);
          if (!sweeping) break;
          try {
            const r = await stack.sweep();
            sweeps.runs++;
            sweeps.requeued += r.requeued;
          } catch {
            // A failed tick is retried on the next one, as Cloud Scheduler would.
          }
        }
      })();
    }

    // ---------- the exports ----------
    const createMs = Math.max(2000, opts.exports * 60);
    for (const b of bursts) {
      burstTimers.push(setTimeout(() => stack.portability.faults.failNextCalls(b.method, b.status, b.count, b.status === 429 ? 1 : undefined), b.atFraction * createMs * 2));
    }
    const actionRuns: Array<Promise<void>> = [];
    let unavailable = 0;
    // Users with time-based access send the same schedule twice at once, while the exports start.
    const schedulesSent = Promise.all(
      scheduleUsers.map(async (u) => {
        const { token } = await authorizedUser(stack, u.userId, [u.resource], { accessType: 'TIME_BASED' });
        const answers = await duplicateSchedules(stack, token, [u.resource]);
        const by = answers.map((a) => a.status).sort();
        unavailable += answers.reduce((n, a) => n + a.unavailable, 0);
        if (by.join() === '201,409' && answers.some((a) => a.status === 409 && JSON.stringify(a.body).includes('SCHEDULE_EXISTS'))) {
          actionsInjected['duplicate-schedule']++;
        } else {
          problem('one schedule per group', `${u.userId} ${u.resource}: two schedules at once answered ${by.join(', ')}, expected one 201 and one 409 SCHEDULE_EXISTS`);
        }
        u.created = by.includes(201);
      }),
    );
    const batch = opts.batchSize ?? 10;
    for (let i = 0; i < plan.length; i += batch) {
      const group = plan.slice(i, i + batch);
      // Hold deliveries until the batch's job ids are known, so every task can be matched to its plan.
      stack.tasks.pause();
      try {
        await Promise.all(
          group.map(async (p) => {
            const { token } = await authorizedUser(stack, p.userId, p.resources);
            for (const [r, n] of Object.entries(p.failures)) stack.portability.faults.failNextJobs(r, n, p.googleUserId);
            if (p.actions?.longJobs) stack.portability.faults.jobDurationFor(p.googleUserId, 120_000);
            const dup = p.actions?.duplicate;
            const sent = await Promise.all([
              api<ExportBody>(stack, token, 'POST', '/v1/exports', {}),
              ...(dup ? [api<ExportBody>(stack, token, 'POST', '/v1/exports', dup === 'same-body' ? {} : { resources: [p.resources[0]] })] : []),
            ]);
            // With a duplicate, either may win: the other must be refused (group busy, or the running limit), never 5xx.
            const res = sent.find((a) => a.status === 202) ?? (sent[0] as (typeof sent)[number]);
            if (res.status !== 202) throw new Error(`creating export ${p.index} answered ${sent.map((a) => `${a.status}: ${JSON.stringify(a.body)}`).join('; ')}`);
            const other = sent.find((a) => a !== res);
            if (other) {
              p.duplicate = { kind: 'duplicate-export', status: other.status, body: other.body, unavailable: 0 };
              const refused = (other.status === 409 && JSON.stringify(other.body).includes('RESOURCE_GROUP_BUSY')) || other.status === 429;
              if (refused) actionsInjected['duplicate-export']++;
              else problem('one export per group', `export ${p.index}: a duplicate sent with it answered ${other.status} ${JSON.stringify(other.body)}, expected 409 RESOURCE_GROUP_BUSY or 429`);
            }
            p.token = token;
            p.exportId = res.body.exportId;
            for (const j of res.body.jobs) {
              p.jobIds[j.resource] = j.jobId;
              byJobId.set(j.jobId, { exp: p, resource: j.resource });
            }
          }),
        );
      } finally {
        stack.tasks.resume();
      }
      for (const p of group) {
        const a = p.actions;
        if (!a || a.kinds.length === 0) continue;
        actionRuns.push(
          fireActions(stack, p.token as string, p.exportId as string, a).then((f) => {
            p.fired = f;
            const at = f.before ? `${f.before.state} [${f.before.jobs.map((j) => j.state).join(', ')}]` : 'unread';
            log(`export ${p.index}: ${a.kinds.join('+')} at ${a.moment}${a.longJobs ? ' (long Google jobs)' : ''} met ${at}, answered ${f.answers.map((x) => `${x.status}${x.kind === 'cancel' && x.status === 200 ? ` [${(x.body as ExportBody).jobs.map((j) => j.state).join(', ')}]` : ''}`).join('+')}`);
          }),
        );
      }
      log(`created ${Math.min(i + batch, plan.length)}/${plan.length} exports`);
    }

    await schedulesSent;
    await Promise.all(actionRuns);
    log(`user actions sent: ${plan.filter((p) => p.fired).length} exports acted on`);

    // ---------- wait for terminal states ----------
    const deadline = started + (opts.timeoutMs ?? 240_000);
    const exportIds = plan.map((p) => p.exportId as string);
    const scheduled = scheduleUsers.filter((u) => u.created).map((u) => u.userId);
    let running = exportIds.length;
    while (Date.now() < deadline) {
      const snap = await db.collection('exports').where('state', '==', 'RUNNING').select('userId').get();
      const ours = new Set(exportIds);
      running = snap.docs.filter((d) => ours.has(d.id) || scheduled.includes(d.get('userId') as string)).length;
      // A schedule's first run is a task: wait until each created schedule has started its export.
      const runsSeen = scheduled.length === 0 ? 0 : (await db.collection('exports').where('userId', 'in', scheduled).select('userId').get()).docs.length;
      if (running === 0 && runsSeen >= scheduled.length) break;
      const flying = stack.tasks.tasks().filter((t) => t.inFlight);
      log(`${running} exports still running; ${flying.length} deliveries in flight (${flying.filter((t) => t.url === cfg.tasks.copyUrl).length} copies), ${stack.tasks.pendingCount()} tasks queued`);
      await sleep(1000);
    }

    // ---------- drain ----------
    sweeping = false;
    await sweepLoop;
    for (const t of burstTimers) clearTimeout(t);
    stack.portability.faults.clear();
    stack.tasks.setDispatchFault(undefined);
    await Promise.race([stack.tasks.idle().catch(() => undefined), sleep(15_000)]);
    const tasksLeft = stack.tasks.pendingCount();

    // ---------- audit ----------
    // What the users' actions did, by their answers: the audit's expectations follow them.
    const acted = new Map<PlannedExport, { cancel?: ExportBody; reset: boolean; deleted: boolean }>();
    let late = 0;
    for (const p of plan) {
      const f = p.fired;
      if (!f) continue;
      if (f.late) late++;
      const a = { reset: false, deleted: false } as { cancel?: ExportBody; reset: boolean; deleted: boolean };
      for (const ans of f.answers) {
        unavailable += ans.unavailable;
        const code = JSON.stringify(ans.body ?? null);
        const what = `export ${p.index} (${p.actions?.kinds.join('+')} at ${p.actions?.moment}): ${ans.kind} answered ${ans.status} ${code}`;
        if (ans.status >= 500) problem('no 5xx', what);
        else if (ans.kind === 'cancel' && ans.status === 200) a.cancel = ans.body as ExportBody;
        else if (ans.kind === 'reset' && ans.status === 200) a.reset = true;
        else if (ans.kind === 'delete' && ans.status === 204) a.deleted = true;
        // A cancel after the export ended, or after a delete sent with it removed it.
        else if (ans.kind === 'cancel' && ((ans.status === 409 && code.includes('EXPORT_FINISHED')) || (ans.status === 404 && p.actions?.kinds.includes('delete')))) continue;
        else problem('user action answer', what);
        if (ans.status < 300) actionsInjected[ans.kind]++;
      }
      if (a.cancel || a.reset || a.deleted) acted.set(p, a);
    }
    const finals = new Map<string, ExportBody>();
    for (let i = 0; i < plan.length; i += 20) {
      await Promise.all(
        plan.slice(i, i + 20).map(async (p) => {
          const res = await api<ExportBody>(stack, p.token, 'GET', `/v1/exports/${p.exportId}`);
          if (acted.get(p)?.deleted) {
            if (res.status !== 404) problem('deleted export', `export ${p.index} answered ${res.status} after its DELETE answered 204`);
          } else if (res.status === 200) finals.set(p.exportId as string, res.body);
          else problem('export readable', `export ${p.index} answered ${res.status}`);
        }),
      );
    }
    const exportStates: Record<string, number> = {};
    const jobStates: Record<string, number> = {};
    const jobErrors: Record<string, number> = {};
    const stuck: ChaosReport['stuck'] = [];
    const expectedObjects = new Map<string, { crc32c: string; size: number }>();
    const simJobs = stack.portability.jobs();
    // Every pipeline job of the run, with the Google archive jobs it followed (the official client, not the API).
    const jobDocs = (await db.collection('jobs').select('archiveJobId', 'archiveJobIds', 'userId', 'exportId').get()).docs;
    const followed = new Map<string, string>();
    const holders = new Map<string, string[]>();
    for (const d of jobDocs) {
      const a = d.get('archiveJobId') as string | undefined;
      if (a) followed.set(d.id, a);
      for (const id of new Set([...((d.get('archiveJobIds') as string[] | undefined) ?? []), ...(a ? [a] : [])])) holders.set(id, [...(holders.get(id) ?? []), d.id]);
    }
    // No export holds another's Google job: each archive job is followed by one pipeline job, of its own Google user.
    const docById = new Map(jobDocs.map((d) => [d.id, d]));
    for (const [archiveJobId, held] of holders) {
      if (held.length > 1) problem('one holder per Google job', `archive job ${archiveJobId} is in the archiveJobIds of ${held.length} jobs: ${held.join(', ')}`);
      const sim = simJobs.find((s) => s.id === archiveJobId);
      for (const h of held) {
        const owner = docById.get(h)?.get('userId') as string | undefined;
        if (!sim) problem('one holder per Google job', `job ${h} follows archive job ${archiveJobId}, which Google never made`);
        else if (sim.googleUserId !== `google-${owner}`) problem('one holder per Google job', `job ${h} of ${owner} follows archive job ${archiveJobId} of ${sim.googleUserId}`);
      }
    }
    const isActive = (p: PlannedExport): boolean => acted.has(p);
    let archives = 0;
    let bytesCopied = 0;
    let recoverableExports = 0;
    let unrecoverableExports = 0;
    let unrecoverableJobs = 0;
    const untouched = { succeeded: 0, archiveFailedJobs: 0 };
    const checkArchives = (label: string, googleUserId: string, job: ExportBody['jobs'][number], failures: number): void => {
      if (job.attempts !== failures + 1) problem('archive retries', `${label} ${job.resource}: ${job.attempts} attempts, Google failed it ${failures} times`);
      const source = simJobs.find((s) => s.id === followed.get(job.jobId));
      if (!source?.archives || source.state !== 'COMPLETE') {
        problem('source archive', `${label} ${job.resource}: the archive job it followed is ${source?.state ?? 'unknown'}`);
        return;
      }
      // Google made exactly the jobs the pipeline asked for: the first and one per recorded retry.
      const atGoogle = simJobs.filter((s) => s.googleUserId === googleUserId && s.resources.includes(job.resource));
      if (atGoogle.length !== job.attempts) {
        problem('archive jobs at Google', `${label} ${job.resource}: ${atGoogle.length} archive jobs at Google (${atGoogle.map((s) => s.state).join(', ')}) for ${job.attempts} attempts`);
      }
      const src = source.archives;
      const got = job.archives ?? [];
      if (got.length !== src.length) problem('archive count', `${label} ${job.resource}: ${got.length} archives recorded, Google has ${src.length}`);
      got.forEach((a, i) => {
        archives++;
        bytesCopied += a.size;
        const s = src[i];
        if (expectedObjects.has(a.name)) problem('archive once', `${a.name} recorded twice`);
        expectedObjects.set(a.name, { crc32c: s?.crc32c ?? '?', size: s?.size ?? -1 });
        if (!s || a.crc32c !== s.crc32c || a.size !== s.size) problem('recorded checksum', `${a.name}: recorded ${a.crc32c}/${a.size}, source ${s?.crc32c}/${s?.size}`);
      });
    };
    for (const p of plan) {
      const did = acted.get(p);
      const label = `export ${p.index}${did ? ` (${[did.cancel ? 'cancelled' : '', did.reset ? 'reset' : '', did.deleted ? 'deleted' : ''].filter(Boolean).join('+')} at ${p.actions?.moment})` : ''}`;
      // A user with a cancel or a delete that Google could still act on (no reset took the grant) has no Google job left running.
      if ((did?.cancel || did?.deleted) && !p.actions?.kinds.includes('reset')) {
        const left = simJobs.filter((s) => s.googleUserId === p.googleUserId && s.state === 'IN_PROGRESS');
        if (left.length > 0) problem('Google job left running', `${label}: archive jobs ${left.map((s) => s.id).join(', ')} still IN_PROGRESS at Google`);
      }
      if (did?.deleted) {
        // Deleted: nothing of it in Firestore (the bucket is checked below: none of its objects is expected).
        if ((await db.collection('exports').doc(p.exportId as string).get()).exists) problem('deleted export', `${label}: its export document remains`);
        const left = Object.values(p.jobIds).filter((id) => docById.has(id));
        if (left.length > 0) problem('deleted export', `${label}: job documents ${left.join(', ')} remain`);
        continue;
      }
      const fin = finals.get(p.exportId as string);
      if (!fin) continue;
      bump(exportStates, fin.state);
      if (fin.state === 'RUNNING') stuck.push({ exportId: fin.exportId, jobs: fin.jobs.map((j) => `${j.resource}:${j.state}`) });
      const doomed = Object.entries(p.failures).filter(([, n]) => n > 3).map(([r]) => r);
      if (!isActive(p)) {
        unrecoverableJobs += doomed.length;
        if (doomed.length === 0) recoverableExports++;
        else unrecoverableExports++;
        if (fin.state === 'SUCCEEDED') untouched.succeeded++;
        untouched.archiveFailedJobs += fin.jobs.filter((j) => j.error?.code === 'ARCHIVE_FAILED').length;
        const expectedState = doomed.length === 0 ? 'SUCCEEDED' : doomed.length === p.resources.length ? 'FAILED' : 'PARTIAL';
        if (fin.state !== expectedState) problem('export outcome', `${label} (${p.resources.join('+')}) is ${fin.state}, expected ${expectedState}`);
      } else if (fin.state !== deriveExportState(fin.jobs.map((j) => j.state as JobState))) {
        problem('export outcome', `${label} is ${fin.state} with jobs ${fin.jobs.map((j) => j.state).join(', ')}`);
      }
      for (const job of fin.jobs) {
        bump(jobStates, job.state);
        if (job.error) bump(jobErrors, job.error.code);
        const failures = p.failures[job.resource] ?? 0;
        // What the job looked like in the cancel's answer: one that had not reached its archive must end CANCELLED, one copying must finish.
        const atCancel = did?.cancel?.jobs.find((j) => j.jobId === job.jobId)?.state;
        const why = `${label} ${job.resource}: ${job.state} ${JSON.stringify(job.error ?? null)}${atCancel ? ` (${atCancel} in the cancel's answer)` : ''}`;
        if (job.state === 'CANCELLED' && did?.cancel) {
          if (atCancel === 'COPYING' || atCancel === 'SUCCEEDED') problem('cancel outcome', `${why}: a job already copying must finish`);
          continue;
        }
        if (job.state === 'FAILED' && job.error?.code === 'CONSENT_REVOKED' && did?.reset) continue;
        if (failures > 3) {
          if (job.state !== 'FAILED' || job.error?.code !== 'ARCHIVE_FAILED' || !job.error.message) problem('unrecoverable job', `${why}, expected FAILED with ARCHIVE_FAILED`);
          continue;
        }
        if (job.state !== 'SUCCEEDED') {
          problem('recoverable job', why);
          continue;
        }
        if (atCancel === 'INITIATING' || atCancel === 'WAITING' || atCancel === 'CANCELLED') problem('cancel outcome', `${why}: it had not reached its archive when cancelled`);
        checkArchives(label, p.googleUserId, job, failures);
      }
    }
    // The schedules' runs: each created schedule started one export, which ends SUCCEEDED with its archives.
    for (const u of scheduleUsers.filter((x) => x.created)) {
      const token = await stack.idToken(u.userId);
      const list = await api<{ exports: ExportBody[] }>(stack, token, 'GET', '/v1/exports');
      const runs = list.body.exports ?? [];
      if (list.status !== 200 || runs.length !== 1) problem('schedule runs', `${u.userId}: GET /v1/exports answered ${list.status} with ${runs.length} exports, expected its schedule's one run`);
      for (const e of runs) {
        bump(exportStates, e.state);
        if (e.state !== 'SUCCEEDED') problem('schedule runs', `${u.userId}: its run ${e.exportId} is ${e.state}`);
        for (const job of e.jobs) {
          bump(jobStates, job.state);
          if (job.error) bump(jobErrors, job.error.code);
          if (job.state === 'SUCCEEDED') checkArchives(`${u.userId}'s run`, `google-${u.userId}`, job, 0);
        }
      }
    }
    // Every object in the bucket is one SUCCEEDED job's archive as GET shows it, byte for byte what Google served:
    // nothing of a deleted export, of a reset one's unfinished copies, or of a cancelled job.
    const ownerOf = new Map(plan.map((p) => [`${p.userId}/${p.exportId}/`, p]));
    const [files] = await stack.storage.bucket(cfg.archive.bucket).getFiles();
    const names = files.map((f) => f.name);
    if (new Set(names).size !== names.length) problem('archive once', 'the bucket lists an object twice');
    for (const name of names) {
      if (expectedObjects.has(name)) continue;
      const p = ownerOf.get(name.split('/').slice(0, 2).join('/') + '/');
      const did = p ? acted.get(p) : undefined;
      problem('orphaned object', `${name}${p ? ` (export ${p.index}${did ? `: ${JSON.stringify({ cancelled: !!did.cancel, reset: did.reset, deleted: did.deleted })}` : ''})` : ''}`);
    }
    for (const name of expectedObjects.keys()) if (!names.includes(name)) problem('missing object', name);
    // Duplicate and late deliveries race to write the same name; ifGenerationMatch 0 lets one finish.
    for (const name of names) {
      const writes = stack.gcs.writesOf(cfg.archive.bucket, name);
      if (writes !== 1) problem('archive once', `${name} was written ${writes} times`);
    }
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(
        names.slice(i, i + 16).map(async (name) => {
          const want = expectedObjects.get(name);
          if (!want) return;
          const crc = await crc32cOfObject(stack, cfg.archive.bucket, name);
          if (crc !== want.crc32c) problem('stored checksum', `${name}: bucket has crc32c ${crc}, source ${want.crc32c}`);
        }),
      );
    }
    // Every job and export that ended was told on Pub/Sub at least once, refused publishes included:
    // the sweeper publishes what the outbox holds after its grace period. The run's sweeps stopped at
    // the drain, so Cloud Scheduler's ticks go on here until every event has arrived.
    const endedJobs = (await db.collection('jobs').get()).docs.map((d) => d.data() as { id: string; state: string }).filter((j) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state));
    const allExports = (await db.collection('exports').get()).docs.map((d) => d.data() as { id: string; state: string; scheduleId?: string; run?: number });
    const endedExports = allExports.filter((e) => e.state !== 'RUNNING');
    // A scheduled run's start is told too (written with the claim of the run).
    const runsStarted = allExports.filter((e) => e.scheduleId !== undefined && e.run !== undefined).map((e) => `schedule/${e.scheduleId}/run/${e.run}`);
    const wanted = [...endedJobs.map((j) => `job/${j.id}/${j.state}`), ...endedExports.map((e) => `export/${e.id}/${e.state}`), ...runsStarted];
    const outboxSize = async (): Promise<number> => (await db.collection('outbox').get()).size;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && (wanted.some((id) => !eventsSeen.has(id)) || (await outboxSize()) > 0); ) {
      await new Promise((r) => setTimeout(r, 1000));
      await stack.sweep().catch(() => undefined);
    }
    const missing = wanted.filter((id) => !eventsSeen.has(id));
    if (missing.length > 0) problem('events', `${missing.length} of ${wanted.length} ended jobs and exports (and started runs) never told on Pub/Sub: ${missing.slice(0, 5).join(', ')}`);
    const outboxLeft = await outboxSize();
    if (missing.length === 0 && outboxLeft > 0) problem('events', `${outboxLeft} events still in the outbox after all were received`);
    eventReport = { wanted: wanted.length, received: [...eventsSeen.values()].reduce((n, c) => n + c, 0), duplicates: [...eventsSeen.values()].filter((c) => c > 1).length };
    if (running > 0) problem('terminal states', `${running} exports still RUNNING after ${opts.timeoutMs ?? 240_000} ms`);
    if (tasksLeft > 0) problem('tasks left', `${tasksLeft} tasks still queued after the exports ended`);
    const gaveUp = stack.tasks.deliveries.filter((d) => d.outcome === 'gave-up').length;
    if (gaveUp > 0) problem('tasks lost', `${gaveUp} tasks ran out of Cloud Tasks attempts`);

    // API faults actually answered (the simulator answers 429/500 only when told to).
    for (const c of stack.portability.calls) {
      if (c.status === 429) injected['api-429']++;
      if (c.status === 500) injected['api-500']++;
    }
    for (const p of plan) {
      for (const [r, n] of Object.entries(p.failures)) injected[n > 3 ? 'archive-failed-unrecoverable' : 'archive-failed-recoverable'] += p.jobIds[r] ? 1 : 0;
      for (const r of p.resources) if (MULTI_URL[r] && p.jobIds[r]) injected['multi-url-job']++;
    }
    const byOutcome: Record<string, number> = {};
    const byStatus: Record<string, number> = {};
    for (const d of stack.tasks.deliveries) {
      bump(byOutcome, d.outcome);
      bump(byStatus, d.status === null ? 'no answer' : String(d.status));
    }
    return {
      seed,
      projectId,
      exports: plan.length,
      jobs: plan.reduce((n, p) => n + p.resources.length, 0),
      archives,
      bytesCopied,
      durationMs: Date.now() - started,
      faultsPlanned: planned,
      faultsInjected: injected,
      exportStates,
      jobStates,
      jobErrors,
      actions: { planned: actionsPlanned, injected: actionsInjected, late, unavailable },
      expected: { recoverableExports, unrecoverableExports, unrecoverableJobs },
      untouched,
      deliveries: { total: stack.tasks.deliveries.length, byOutcome, byStatus },
      sweeps,
      events: eventReport,
      tasksLeft,
      stuck,
      problems,
      ok: problems.length === 0,
    };
  } finally {
    sweeping = false;
    for (const t of burstTimers) clearTimeout(t);
    await sweepLoop.catch(() => undefined);
    await appSubscription.close().catch(() => undefined);
    await db.terminate().catch(() => undefined);
    await stack.stop();
  }
}

/** The report as a table for a terminal. */
export function formatChaosReport(r: ChaosReport): string {
  const rows: Array<[string, string]> = [
    ['seed', String(r.seed)],
    ['exports / jobs / archives', `${r.exports} / ${r.jobs} / ${r.archives}`],
    ['bytes copied', String(r.bytesCopied)],
    ['duration', `${(r.durationMs / 1000).toFixed(1)} s`],
    ['expected (untouched)', `${r.expected.recoverableExports} recoverable, ${r.expected.unrecoverableExports} with an unrecoverable job (${r.expected.unrecoverableJobs} jobs)`],
  ];
  for (const k of FAULT_KINDS) {
    const how = ON_THE_FLY[k] ? ON_THE_FLY[k] : `${r.faultsPlanned[k]} planned`;
    rows.push([`fault ${k}`, `${r.faultsInjected[k]} injected (${how})`]);
  }
  for (const k of USER_ACTION_KINDS) rows.push([`action ${k}`, `${r.actions.injected[k]} acted (${r.actions.planned[k]} planned)`]);
  rows.push(['actions late / 503s retried', `${r.actions.late} / ${r.actions.unavailable}`]);
  for (const [k, v] of Object.entries(r.exportStates)) rows.push([`exports ${k}`, String(v)]);
  for (const [k, v] of Object.entries(r.jobStates)) rows.push([`jobs ${k}`, String(v)]);
  for (const [k, v] of Object.entries(r.jobErrors)) rows.push([`job error ${k}`, String(v)]);
  rows.push(['task deliveries', `${r.deliveries.total} (${Object.entries(r.deliveries.byOutcome).map(([k, v]) => `${k} ${v}`).join(', ')})`]);
  rows.push(['delivery answers', Object.entries(r.deliveries.byStatus).map(([k, v]) => `${k}: ${v}`).join(', ')]);
  rows.push(['sweeps', `${r.sweeps.runs} runs, ${r.sweeps.requeued} jobs re-enqueued`]);
  rows.push(['events', `${r.events.wanted} ended jobs and exports and started runs, ${r.events.received} events received (${r.events.duplicates} ids more than once)`]);
  rows.push(['tasks left', String(r.tasksLeft)]);
  rows.push(['audit', r.ok ? 'PASSED' : `FAILED (${r.problems.length} problems)`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const p of r.problems.slice(0, 40)) lines.push(`  ! ${p.check}: ${p.detail}`);
  if (r.problems.length > 40) lines.push(`  ! … and ${r.problems.length - 40} more`);
  return lines.join('\n');
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
}

if (require.main === module) {
  const seed = Number(argValue('seed') ?? 20261122);
  const exports = Number(argValue('exports') ?? 200);
  if (!Number.isInteger(seed) || !Number.isInteger(exports) || exports < 1) {
    console.error('usage: npm run chaos -- [--seed N] [--exports N]');
    process.exit(2);
  }
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  console.log(`chaos run: ${exports} exports, seed ${seed}`);
  runChaos({ seed, exports, log: (l) => console.log(l) }).then(
    (r) => {
      console.log(formatChaosReport(r));
      process.exit(r.ok ? 0 : 1);
    },
    (err: unknown) => {
      console.error('chaos run failed:', err);
      process.exit(1);
    },
  );
}
