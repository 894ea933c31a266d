/**
 * The whole system on one machine: the Firestore emulator, the Cloud Storage and Cloud Tasks
 * stand-ins, the simulated Google side (Data Portability API, OAuth, ID tokens), and the five
 * functions served through the real Functions Framework. Used by `npm start` and the end-to-end
 * tests. Nothing here is imported by the deployable code.
 */
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import type { Writable } from 'node:stream';
import { createComposition, type Composition, type EntryPoint, type Overrides } from '../functions/src/composition-root';
import { parseConfig, type Config } from '../functions/src/config';
import { installRequestBodyGuard } from '../functions/src/http/request-body-guard';
import { createLogger } from '../functions/src/logging';
import { startCloudTasksServer, type CloudTasksServer } from './cloud-tasks-server';
import { startFirestoreEmulator, type FirestoreEmulator } from './firestore-emulator';
import { startGcsServer, type GcsServer } from './gcs-server';
import { GoogleAccounts } from './google-accounts';
import { createLocalOidcIssuer, type LocalOidcIssuer } from './local-oidc-issuer';
import { listenOnFreePort } from './net-utils';
import { startOAuthSimulator, type OAuthSimulator } from './oauth-simulator';
import { startPortabilityApiSimulator, type PortabilityApiSimulator } from './portability-api-simulator';
import { startPubSubEmulator } from './pubsub-emulator';
import { startSecretManagerServer, type SecretManagerServer } from './secret-manager-server';
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from './webhook-receiver';
import { createCloudTasksClient } from '../functions/src/adapters/cloud-tasks-queue';
import { sweepRetention, type RetentionSweepResult } from './retention-sweep';
import { createFirestore } from '../functions/src/adapters/firestore-client';

export interface LocalStackOptions {
  /** Use this Firestore emulator ('host:port') instead of starting one. */
  firestoreEmulatorHost?: string;
  /** A `demo-…` project id (one per test file keeps their data apart). */
  projectId?: string;
  /** Simulated archive job duration. */
  jobDurationMs?: number;
  archiveBytes?: number;
  pollInitialSeconds?: number;
  pollMaxSeconds?: number;
  /** Multiplies every Cloud Tasks delay (a 1 s poll becomes 1 s × timeScale). */
  taskTimeScale?: number;
  taskRetryBudget?: number;
  /** How late a job may be before the sweeper re-enqueues it (seconds). */
  sweepGraceSeconds?: number;
  /** Run the sweeper every this many ms, as Cloud Scheduler would (default: never; call sweep()). */
  schedulerIntervalMs?: number;
  /** The simulated Google side's "day" for the time-based 24-hour rule (default 24 h). */
  dayMs?: number;
  /** The simulated Google side's clock (default Date.now). */
  googleNow?: () => number;
  /** Where the functions' JSON logs go (default: stdout at LOG_LEVEL, or silent in tests). */
  logDestination?: Pick<Writable, 'write'>;
  logLevel?: string;
  /**
   * Tell apps on Pub/Sub: `true` starts a Pub/Sub emulator for this stack, a 'host:port' uses that
   * one. The topic is `EVENTS_TOPIC` (created here); default: no events.
   */
  events?: true | string;
  /**
   * Tell apps by webhooks: one local receiver per entry (verifying signatures with the
   * `standardwebhooks` library), its secret in a Secret Manager stand-in, the webhook queue with
   * backoff and `webhookMaxAttempts` (default 4) attempts. http://127.0.0.1 is allowed only here
   * (WEBHOOK_ALLOW_LOCAL_HTTP).
   */
  webhooks?: Array<{ id: string; respond?: WebhookReceiver['respond']; onReceived?: (w: ReceivedWebhook) => void }>;
  webhookMaxAttempts?: number;
  /** Extra environment for the functions (wins over the stack's own). */
  env?: Record<string, string>;
  overrides?: Overrides;
}

export interface LocalStack {
  config: Config;
  env: Record<string, string>;
  apiUrl: string;
  accounts: GoogleAccounts;
  oauth: OAuthSimulator;
  portability: PortabilityApiSimulator;
  tasks: CloudTasksServer;
  gcs: GcsServer;
  storage: Storage;
  composition: Composition;
  firestoreEmulatorHost: string;
  /** With `events`: a Pub/Sub client of the emulator, and the topic the functions publish on. */
  events?: { pubsub: PubSub; topic: string };
  /** With `webhooks`: the receivers by endpoint id, and the Secret Manager stand-in holding their secrets. */
  webhooks?: { receivers: Record<string, WebhookReceiver>; secretManager: SecretManagerServer };
  /** Signs the OIDC tokens of Cloud Tasks and Cloud Scheduler (tests forge wrong ones with it). */
  tasksOidcIssuer: LocalOidcIssuer;
  /** An ID token for a user of the app's frontend. */
  idToken(userId: string): Promise<string>;
  /** Delivers one task to its function as Cloud Tasks would (a duplicate delivery); returns the HTTP status. */
  deliverTask(task: { jobId: string; step: 'initiate' | 'check' | 'copy' | 'copy-part'; seq: number; part?: number }): Promise<number>;
  /** One Cloud Scheduler tick: calls the sweeper with the invoker's OIDC token. */
  sweep(): Promise<{ overdue: number; requeued: number; events: number }>;
  /** One Cloud Scheduler tick of runSchedules: fans out the due schedules as Cloud Tasks. */
  tickSchedules(): Promise<{ due: number; enqueued: number }>;
  /** What the lifecycle rule and the TTL policies do in production, at `now` (default: the clock). */
  retentionSweep(now?: number): Promise<RetentionSweepResult>;
  stop(): Promise<void>;
}

const CLIENT_ID = 'local-client.apps.googleusercontent.com';
const CLIENT_SECRET = 'local-client-secret';
const TASKS_SA = 'tasks-invoker@local-project.iam.gserviceaccount.com';
/** The api function's own account, locally: it signs download links with a key the Cloud Storage stand-in trusts. */
const API_SIGNER = 'api@local-project.iam.gserviceaccount.com';
/** The frontend's OAuth callback on a developer's machine: the one redirect URI the local stack allows. */
export const LOCAL_REDIRECT_URI = 'http://localhost:5173/oauth/callback';
let registered = 0;

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const projectId = opts.projectId ?? 'demo-portability';
    let firestore: FirestoreEmulator | undefined;
    const firestoreEmulatorHost = opts.firestoreEmulatorHost ?? (firestore = await startFirestoreEmulator()).host;
    if (firestore) stops.push(() => (firestore as FirestoreEmulator).stop());
    // The Firestore client finds the emulator through this variable only.
    process.env.FIRESTORE_EMULATOR_HOST = firestoreEmulatorHost;
    process.env.METADATA_SERVER_DETECTION ??= 'none';

    const accounts = new GoogleAccounts(opts.googleNow);
    const idIssuer = await createLocalOidcIssuer({ issuer: `https://securetoken.google.com/${projectId}` });
    const oauth = await startOAuthSimulator({ accounts, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, idIssuer, idTokenAudience: projectId });
    stops.push(() => oauth.stop());

    const portability = await startPortabilityApiSimulator({
      ...(opts.dayMs !== undefined ? { dayMs: opts.dayMs } : {}),
      accounts,
      ...(opts.jobDurationMs !== undefined ? { jobDurationMs: opts.jobDurationMs } : {}),
      ...(opts.archiveBytes !== undefined ? { archiveBytes: opts.archiveBytes } : {}),
    });
    stops.push(() => portability.stop());

    let pubsubHost: string | undefined;
    if (opts.events === true) {
      const emulator = await startPubSubEmulator();
      stops.push(() => emulator.stop());
      pubsubHost = emulator.host;
    } else if (opts.events) pubsubHost = opts.events;
    const eventsTopic = 'portability-events';

    const gcs = await startGcsServer();
    stops.push(() => gcs.stop());
    // Download links are signed with a generated service-account key the stand-in trusts (production signs through IAM signBlob).
    const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const keyDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'signing-key-'));
    stops.push(() => fsp.rm(keyDir, { recursive: true, force: true }));
    const signingKeyFile = path.join(keyDir, 'key.json');
    await fsp.writeFile(signingKeyFile, JSON.stringify({ client_email: API_SIGNER, private_key: signingKey }), { mode: 0o600 });
    gcs.trustSigner(API_SIGNER, signingKey);

    // Google signs the OIDC tokens Cloud Tasks attaches; locally this issuer does, and serves its keys.
    const tasksIssuer = await createLocalOidcIssuer({ issuer: 'https://accounts.google.com' });
    const jwksServer = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(tasksIssuer.jwks()));
    });
    const jwksPort = await listenOnFreePort(jwksServer);
    stops.push(() => new Promise((r) => jwksServer.close(() => r())));

    const tasks = await startCloudTasksServer({ oidcIssuer: tasksIssuer, timeScale: opts.taskTimeScale ?? 1, maxAttempts: 50, minBackoffMs: 200, maxBackoffMs: 5_000 });
    stops.push(() => tasks.stop());

    // Each function's server listens before the configuration that names its URL is parsed; it
    // answers 503 until the composition behind it exists.
    const built: { composition?: Composition } = {};
    const suffix = `_${++registered}`;
    const serve = async (target: EntryPoint): Promise<number> => {
      ff.http(target + suffix, (req, res) => {
        if (!built.composition) return void res.status(503).json({ error: { code: 'STARTING', message: 'The local stack is still starting' } });
        return built.composition[target](req, res);
      });
      installRequestBodyGuard(); // as functions/src/index.ts does in production
      const server = getTestServer(target + suffix);
      stops.push(() => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }));
      return listenOnFreePort(server);
    };
    const [apiPort, checkPort, copyPort, sweepPort, schedulePort] = [await serve('api'), await serve('checkArchiveJob'), await serve('copyArchives'), await serve('sweepJobs'), await serve('runSchedules')];
    const webhookPort = opts.webhooks && opts.webhooks.length > 0 ? await serve('deliverWebhooks') : 0;
    const location = 'local';

    let webhooks: LocalStack['webhooks'];
    const webhookEnv: Record<string, string> = {};
    if (opts.webhooks && opts.webhooks.length > 0) {
      const secretManager = await startSecretManagerServer();
      stops.push(() => secretManager.stop());
      const receivers: Record<string, WebhookReceiver> = {};
      const endpoints: Array<{ id: string; url: string; secret: string }> = [];
      for (const w of opts.webhooks) {
        const r = await startWebhookReceiver({ ...(w.respond ? { respond: w.respond } : {}), ...(w.onReceived ? { onReceived: w.onReceived } : {}) });
        stops.push(() => r.stop());
        receivers[w.id] = r;
        endpoints.push({ id: w.id, url: r.url, secret: secretManager.addVersion(`projects/${projectId}/secrets/webhook-${w.id}`, r.secret) });
      }
      webhooks = { receivers, secretManager };
      Object.assign(webhookEnv, {
        WEBHOOK_ENDPOINTS: JSON.stringify(endpoints),
        WEBHOOK_FUNCTION_URL: `http://127.0.0.1:${webhookPort}/`,
        WEBHOOK_ALLOW_LOCAL_HTTP: 'true',
        WEBHOOK_MAX_ATTEMPTS: String(opts.webhookMaxAttempts ?? 4),
        SECRET_MANAGER_EMULATOR_HOST: secretManager.host,
      });
    }
    const env: Record<string, string> = {
      GOOGLE_CLOUD_PROJECT: projectId,
      FUNCTION_REGION: location,
      DATAPORTABILITY_API_ROOT: portability.apiRoot,
      OAUTH_CLIENT_ID: CLIENT_ID,
      OAUTH_CLIENT_SECRET: CLIENT_SECRET,
      OAUTH_TOKEN_URL: oauth.tokenUrl,
      OAUTH_AUTH_URL: oauth.authUrl,
      OAUTH_REDIRECT_URIS: LOCAL_REDIRECT_URI,
      AUTH_ISSUER: idIssuer.issuer,
      AUTH_AUDIENCE: projectId,
      AUTH_JWKS_URL: oauth.jwksUrl,
      TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      ARCHIVE_BUCKET: 'local-archives',
      ARCHIVE_URL_HOSTS: portability.archiveHost,
      ARCHIVE_URL_ALLOW_HTTP: 'true',
      FIRESTORE_EMULATOR_HOST: firestoreEmulatorHost,
      STORAGE_API_ENDPOINT: gcs.endpoint,
      STORAGE_SIGNING_KEY_FILE: signingKeyFile,
      CLOUD_TASKS_EMULATOR_HOST: tasks.host,
      TASKS_LOCATION: location,
      TASKS_SERVICE_ACCOUNT: TASKS_SA,
      CHECK_FUNCTION_URL: `http://127.0.0.1:${checkPort}/`,
      COPY_FUNCTION_URL: `http://127.0.0.1:${copyPort}/`,
      SWEEP_FUNCTION_URL: `http://127.0.0.1:${sweepPort}/`,
      SCHEDULE_FUNCTION_URL: `http://127.0.0.1:${schedulePort}/`,
      SWEEP_GRACE_SECONDS: String(opts.sweepGraceSeconds ?? 3),
      COPY_LEASE_SECONDS: '120',
      TASKS_OIDC_ISSUER: tasksIssuer.issuer,
      TASKS_OIDC_JWKS_URL: `http://127.0.0.1:${jwksPort}/`,
      POLL_INITIAL_SECONDS: String(opts.pollInitialSeconds ?? 1),
      POLL_MAX_SECONDS: String(opts.pollMaxSeconds ?? 5),
      TASK_RETRY_BUDGET: String(opts.taskRetryBudget ?? 30),
      LOG_LEVEL: opts.logLevel ?? 'info',
      ...(pubsubHost ? { EVENTS_TOPIC: eventsTopic, PUBSUB_EMULATOR_HOST: pubsubHost } : {}),
      ...webhookEnv,
      ...opts.env,
    };
    const config = parseConfig(env);
    for (const q of [config.tasks.checkQueue, config.tasks.copyQueue]) tasks.ensureQueue(`projects/${projectId}/locations/${location}/queues/${q}`);
    if (webhooks) {
      // As infra/tasks.tf makes it: backoff, and the same bound of attempts as the deliverer's.
      const admin = createCloudTasksClient(tasks.host);
      const parent = `projects/${projectId}/locations/${location}`;
      await admin.createQueue({ parent, queue: { name: `${parent}/queues/${config.webhooks.queue}`, retryConfig: { maxAttempts: config.webhooks.maxAttempts, minBackoff: { seconds: 0, nanos: 200e6 }, maxBackoff: { seconds: 2 }, maxDoublings: 4 } } });
      await admin.close();
    }

    const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId });
    await storage.bucket(config.archive.bucket).create().catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });

    let events: LocalStack['events'];
    if (pubsubHost) {
      const pubsub = new PubSub({ projectId, apiEndpoint: pubsubHost, emulatorMode: true });
      stops.push(() => pubsub.close());
      await pubsub.createTopic(eventsTopic).catch((err: { code?: number }) => {
        if (err.code !== 6) throw err; // ALREADY_EXISTS: a stack of the same project before
      });
      events = { pubsub, topic: eventsTopic };
    }

    const logger = createLogger({ level: config.logLevel, ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
    const composition = (built.composition = createComposition(config, { logger, ...opts.overrides }));

    const tickSchedules = async (): Promise<{ due: number; enqueued: number }> => {
      const token = await tasksIssuer.sign({ aud: config.tasks.scheduleUrl, email: TASKS_SA, email_verified: true, sub: '1000' }, 300);
      const res = await fetch(config.tasks.scheduleUrl, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`runSchedules answered ${res.status}`);
      return (await res.json()) as { due: number; enqueued: number };
    };
    const sweep = async (): Promise<{ overdue: number; requeued: number; events: number }> => {
      const token = await tasksIssuer.sign({ aud: config.tasks.sweepUrl, email: TASKS_SA, email_verified: true, sub: '1000' }, 300);
      const res = await fetch(config.tasks.sweepUrl, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`sweep answered ${res.status}`);
      return (await res.json()) as { overdue: number; requeued: number; events: number };
    };
    const deliverTask = async (task: { jobId: string; step: 'initiate' | 'check' | 'copy' | 'copy-part'; seq: number; part?: number }): Promise<number> => {
      const url = task.step === 'copy' || task.step === 'copy-part' ? config.tasks.copyUrl : config.tasks.checkUrl;
      const token = await tasksIssuer.sign({ aud: url, email: TASKS_SA, email_verified: true, sub: '1000' }, 300);
      const res = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(task) });
      await res.arrayBuffer();
      return res.status;
    };
    const retentionDb = createFirestore({ projectId, emulatorHost: firestoreEmulatorHost });
    stops.push(() => retentionDb.terminate());
    const retentionSweep = (now?: number): Promise<RetentionSweepResult> =>
      sweepRetention({ db: retentionDb, storage, bucket: config.archive.bucket, archiveDays: config.retention.archiveDays }, now);
    if (opts.schedulerIntervalMs) {
      const timer = setInterval(() => {
        void sweep().catch(() => undefined);
        void tickSchedules().catch(() => undefined);
      }, opts.schedulerIntervalMs);
      stops.push(async () => clearInterval(timer));
      // Retention counts in days: once a minute is plenty, and spares the tests' fast ticks a bucket listing.
      const retentionTimer = setInterval(() => void retentionSweep().catch(() => undefined), Math.max(opts.schedulerIntervalMs, 60_000));
      stops.push(async () => clearInterval(retentionTimer));
    }

    return {
      config,
      env,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      accounts,
      oauth,
      portability,
      tasks,
      gcs,
      storage,
      composition,
      firestoreEmulatorHost,
      ...(events ? { events } : {}),
      ...(webhooks ? { webhooks } : {}),
      tasksOidcIssuer: tasksIssuer,
      idToken: (userId) => oauth.issueIdToken(userId),
      sweep,
      tickSchedules,
      retentionSweep,
      deliverTask,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
