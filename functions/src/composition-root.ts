/**
 * The one place where configuration becomes objects: a list of plain constructions. Adapters are
 * made lazily, once per instance, and only by the functions that need them (cold starts stay
 * short): a service gets `() => Promise<Port>` for an adapter it may not need on every request,
 * and the adapter itself for one it always uses. Tests and the local stack pass overrides for the
 * little they control here (the clock, the logger, the copier); finer control builds the services
 * directly.
 */
import type { Firestore } from '@google-cloud/firestore';
import type { Config } from './config';
import type { ErasureStep } from './domain/erasure';
import type { Job } from './domain/model';
import type { ArchiveCopier } from './domain/ports/archive-copier';
import type { EventPublisher } from './domain/ports/event-publisher';
import type { TaskStep } from './domain/ports/task-queues';
import type { HttpRequest, HttpResponse } from './http/http-types';
import { createLogger, type Logger } from './logging';
import type { TaskCallerVerifier } from './adapters/task-caller-verifier';
import type { HostLookup } from './adapters/address-guard';

export interface Overrides {
  logger?: Logger;
  now?: () => number;
  /** Made on first use, like the default one (the chaos run hands in a copier that injects faults). */
  copier?: () => Promise<ArchiveCopier>;
  /** The Firestore client every store uses (the cost benchmark counts the operations on its wire). */
  firestore?: Firestore;
  /** Where events are published, when EVENTS_TOPIC is set (the chaos run refuses some publishes). */
  publisher?: () => Promise<EventPublisher>;
  /** How webhook hosts are resolved (the start-up check and each delivery's connection); tests hand in their own. */
  lookup?: HostLookup;
  /** Called after each erasure step, before its cursor moves (the erasure tests crash there). */
  afterErasureStep?: (step: ErasureStep, userKey: string) => Promise<void>;
}

export type Handler = (req: HttpRequest, res: HttpResponse) => Promise<void>;

export const ENTRY_POINTS = ['api', 'checkArchiveJob', 'copyArchives', 'sweepJobs', 'runSchedules', 'deliverWebhooks'] as const;
export type EntryPoint = (typeof ENTRY_POINTS)[number];

export interface Composition {
  api: Handler;
  checkArchiveJob: Handler;
  copyArchives: Handler;
  sweepJobs: Handler;
  runSchedules: Handler;
  deliverWebhooks: Handler;
  logger: Logger;
  /**
   * Starts what the first request to `target` will need (a cold start): signing keys, a Firestore
   * connection, the handler's modules. Unknown targets are ignored.
   */
  warmUp(target: string): Promise<void>;
}

/** Made on first use, once; a failed attempt is retried on the next use. */
function lazy<T>(make: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= make().catch((err: unknown) => {
      value = undefined;
      throw err;
    });
    return value;
  };
}

export function createComposition(config: Config, overrides: Overrides = {}): Composition {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const now = overrides.now ?? Date.now;
  // Apps are told on a Pub/Sub topic and by webhooks, when configured: changes then write their events to the outbox.
  const events = config.events;
  const webhooks = config.webhooks;
  const eventsOn = events !== undefined || webhooks.endpoints.length > 0;
  // An entry outlives the records it describes (kept RECORD_RETENTION_DAYS after they end) by AUDIT_RETENTION_DAYS.
  const auditKeepDays = config.retention.recordDays + config.retention.auditDays;

  // Adapters, imported on first use: each function's cold start loads only the clients it needs.
  const firestore = lazy(async () => {
    if (overrides.firestore) return overrides.firestore;
    const { createFirestore } = await import('./adapters/firestore-client');
    return createFirestore({ projectId: config.projectId, emulatorHost: config.firestoreEmulatorHost });
  });
  const store = lazy(async () => {
    const { FirestoreExportStore } = await import('./adapters/firestore-export-store');
    return new FirestoreExportStore(await firestore(), { events: eventsOn, audit: { keepDays: auditKeepDays }, recordDays: config.retention.recordDays });
  });
  // The audit trail: drafts written with each change, chained after the commit (and by the sweeper).
  const audit = lazy(async () => {
    const [{ FirestoreAuditTrail }, { AuditTrail }] = await Promise.all([import('./adapters/firestore-audit-trail'), import('./pipeline/audit-trail')]);
    return new AuditTrail({ store: new FirestoreAuditTrail(await firestore(), auditKeepDays), logger });
  });
  const scheduleStore = lazy(async () => {
    const { FirestoreScheduleStore } = await import('./adapters/firestore-schedule-store');
    return new FirestoreScheduleStore(await firestore(), { events: eventsOn });
  });
  const erasureStore = lazy(async () => {
    const { FirestoreErasureStore } = await import('./adapters/firestore-erasure-store');
    return new FirestoreErasureStore(await firestore(), { audit: { keepDays: auditKeepDays } });
  });
  const consentStates = lazy(async () => {
    const { FirestoreConsentStateStore } = await import('./adapters/firestore-consent-state-store');
    return new FirestoreConsentStateStore(await firestore());
  });
  const api = lazy(async () => {
    const [{ PortabilityApiClient }, { RetryingPortabilityApi }] = await Promise.all([import('./adapters/portability-api-client'), import('./adapters/retrying-portability-api')]);
    return new RetryingPortabilityApi(new PortabilityApiClient({ apiRoot: config.apiRoot }));
  });
  const oauth = lazy(async () => {
    const { GoogleOAuthTokenClient } = await import('./adapters/google-oauth-token-client');
    return new GoogleOAuthTokenClient({ ...config.oauth, now });
  });
  const cipher = lazy(async () => {
    const { LocalKeySecretCipher } = await import('./adapters/local-key-secret-cipher');
    const local = config.tokenEncryptionKey ? new LocalKeySecretCipher(config.tokenEncryptionKey) : undefined;
    if (config.kmsKeyName) {
      // Production: KMS wraps every new data key; a local key, if still configured, only reads older grants.
      const { KmsSecretCipher, createKmsClient } = await import('./adapters/kms-secret-cipher');
      return new KmsSecretCipher({ client: createKmsClient(), keyName: config.kmsKeyName, fallback: local });
    }
    if (!local) throw new Error('KMS_KEY_NAME or TOKEN_ENCRYPTION_KEY is required to store OAuth tokens');
    return local;
  });
  // The pipeline's steps and the scheduled runs go through one Cloud Tasks client.
  const queue = lazy(async () => {
    const { CloudTasksQueue, createCloudTasksClient } = await import('./adapters/cloud-tasks-queue');
    return new CloudTasksQueue({
      client: createCloudTasksClient(config.tasks.emulatorHost),
      projectId: config.projectId,
      location: config.tasks.location,
      checkQueue: config.tasks.checkQueue,
      copyQueue: config.tasks.copyQueue,
      checkUrl: config.tasks.checkUrl,
      copyUrl: config.tasks.copyUrl,
      serviceAccountEmail: config.tasks.serviceAccount,
      scheduleUrl: config.tasks.scheduleUrl,
      ...(webhooks.functionUrl ? { webhooks: { queue: webhooks.queue, url: webhooks.functionUrl } } : {}),
      now,
    });
  });
  const storage = lazy(async () => {
    const { Storage } = await import('@google-cloud/storage');
    return config.storageApiEndpoint ? new Storage({ apiEndpoint: config.storageApiEndpoint, projectId: config.projectId }) : new Storage();
  });
  const copier = overrides.copier ?? lazy(async () => {
    const { CloudStorageArchiveCopier } = await import('./adapters/archive-copier');
    return new CloudStorageArchiveCopier({
      storage: await storage(),
      bucket: config.archive.bucket,
      allowedHosts: config.archive.urlHosts,
      allowHttp: config.archive.allowHttp,
      maxBytes: config.archive.maxBytes,
      stallTimeoutMs: config.archive.stallSeconds * 1000,
    });
  });
  const publisher = overrides.publisher ?? lazy(async () => {
    const [{ PubSub }, { PubSubEventPublisher }] = await Promise.all([import('@google-cloud/pubsub'), import('./adapters/pubsub-event-publisher')]);
    const pubsub = events?.emulatorHost ? new PubSub({ projectId: config.projectId, apiEndpoint: events.emulatorHost, emulatorMode: true }) : new PubSub({ projectId: config.projectId });
    return new PubSubEventPublisher(pubsub, events?.topic ?? '');
  });
  // Webhook hosts must resolve to public addresses: checked once, before anything is enqueued for them.
  const webhookHostsChecked = lazy(async () => {
    const { assertWebhookHostsPublic } = await import('./config');
    await assertWebhookHostsPublic(config, overrides.lookup);
  });
  const relay = lazy(async () => {
    if (!eventsOn) return undefined;
    const [{ EventRelay }, { FirestoreEventOutbox }] = await Promise.all([import('./pipeline/event-relay'), import('./adapters/firestore-outbox')]);
    if (webhooks.endpoints.length > 0) await webhookHostsChecked();
    return new EventRelay({
      ...(events ? { publisher } : {}),
      ...(webhooks.endpoints.length > 0 ? { webhooks: { endpointIds: webhooks.endpoints.map((e) => e.id), queue } } : {}),
      outbox: new FirestoreEventOutbox(await firestore()),
      logger,
    });
  });
  // Webhook deliveries: the endpoints' secrets from Secret Manager (cached), one POST per attempt.
  const webhookDelivery = lazy(async () => {
    const [{ WebhookDelivery }, { SecretManagerSource, createSecretManagerClient }, { nodeWebhookPost }, { FirestoreWebhookDeliveryLog }] = await Promise.all([
      import('./pipeline/webhook-delivery'),
      import('./adapters/secret-manager-source'),
      import('./adapters/webhook-post'),
      import('./adapters/firestore-webhook-deliveries'),
    ]);
    await webhookHostsChecked();
    const secrets = new SecretManagerSource(createSecretManagerClient(webhooks.secretManagerEmulatorHost), now);
    return new WebhookDelivery({
      endpoints: webhooks.endpoints,
      secrets: async () => secrets,
      post: nodeWebhookPost({ timeoutMs: webhooks.timeoutSeconds * 1000, refusePrivateAddresses: !webhooks.allowLocalHttp, ...(overrides.lookup ? { lookup: overrides.lookup } : {}) }),
      log: new FirestoreWebhookDeliveryLog(await firestore()),
      maxAttempts: webhooks.maxAttempts,
      logger,
      now,
    });
  });
  // Deleting an export's or a job's objects needs the bucket, not the copier.
  const archives = lazy(async () => {
    const { CloudStorageArchiveBucket } = await import('./adapters/cloud-storage-archive-bucket');
    return new CloudStorageArchiveBucket(await storage(), config.archive.bucket);
  });
  // Download links: signed by IAM signBlob in production, by the local stack's key when it gives one.
  const downloadSigner = lazy(async () => {
    const [{ Storage }, { CloudStorageDownloadSigner }, { readFile }] = await Promise.all([
      import('@google-cloud/storage'),
      import('./adapters/cloud-storage-download-signer'),
      import('node:fs/promises'),
    ]);
    const keyFile = config.downloads.signingKeyFile;
    if (!keyFile) return new CloudStorageDownloadSigner(await storage());
    const { client_email, private_key } = JSON.parse(await readFile(keyFile, 'utf8')) as { client_email: string; private_key: string };
    return new CloudStorageDownloadSigner(new Storage({ projectId: config.projectId, credentials: { client_email, private_key }, ...(config.storageApiEndpoint ? { apiEndpoint: config.storageApiEndpoint } : {}) }));
  });
  const verifier = lazy(async () => {
    const { JwksIdTokenVerifier } = await import('./adapters/id-token-verifier');
    return new JwksIdTokenVerifier(config.auth);
  });
  // One verifier per audience (function URL), shared by its handler and the warm-up.
  const taskVerifiers = new Map<string, () => Promise<TaskCallerVerifier>>();
  const taskVerifier = (audience: string): Promise<TaskCallerVerifier> => {
    let make = taskVerifiers.get(audience);
    if (!make) {
      make = lazy(async () => {
        const { TaskCallerVerifier } = await import('./adapters/task-caller-verifier');
        return new TaskCallerVerifier({ issuer: config.tasks.oidcIssuer, jwksUrl: config.tasks.oidcJwksUrl, audience, serviceAccountEmail: config.tasks.serviceAccount });
      });
      taskVerifiers.set(audience, make);
    }
    return make();
  };

  // Use cases, imported on first use too: a function loads only its own.
  const tokens = lazy(async () => {
    const { AccessTokens } = await import('./pipeline/access-tokens');
    return new AccessTokens(await store(), cipher, oauth, now);
  });
  const schedules = lazy(async () => {
    const { ScheduleService } = await import('./pipeline/schedule-service');
    return new ScheduleService({ schedules: await scheduleStore(), store: await store(), queue, runQueue: queue, logger, now, relay: await relay(), archiveRetentionDays: config.retention.archiveDays });
  });
  // Only a scheduled job loads the schedule side.
  const onJobFinished = async (job: Job): Promise<void> => {
    if (job.scheduleId) await (await schedules()).jobFinished(job);
  };
  const manifests = lazy(async () => {
    const { FirestoreManifestStore } = await import('./adapters/firestore-manifest-store');
    return new FirestoreManifestStore(await firestore());
  });
  // Manifests: each copied archive's zip central directory, read by range from the bucket.
  const indexing = lazy(async () => {
    const [{ ArchiveIndexing }, { CloudStorageArchiveReader }] = await Promise.all([import('./pipeline/archive-indexing'), import('./adapters/cloud-storage-archive-reader')]);
    return new ArchiveIndexing({ reader: async () => new CloudStorageArchiveReader(await storage()), manifests, logger, now });
  });
  // The task functions always call Google, enqueue and decrypt: those adapters are made with the runner.
  const runner = lazy(async () => {
    const { JobRunner } = await import('./pipeline/job-runner');
    const [s, a, q, c, t] = await Promise.all([store(), api(), queue(), cipher(), tokens()]);
    return new JobRunner({
      store: s,
      api: a,
      tokens: t,
      queue: q,
      copier,
      policy: config.polling,
      maxArchiveRetries: config.maxArchiveRetries,
      cipher: c,
      copySliceSeconds: config.copy.sliceSeconds,
      copyChunkBytes: config.copy.chunkBytes,
      parallelCopy: { minBytes: config.copy.parallelMinBytes, parts: config.copy.parallelParts },
      indexing: { index: async (job, archive, stored) => (await indexing()).index(job, archive, stored) },
      logger,
      now,
      onJobFinished,
      relay: await relay(),
      audit: await audit(),
    });
  });
  // Erasure tasks run in the copy function: its account may delete objects in the bucket.
  const erasureWorker = lazy(async () => {
    const [{ ErasureWorker }, { JobTransitions }, { ERASURE_COLLECTIONS }] = await Promise.all([
      import('./pipeline/erasure-worker'),
      import('./pipeline/job-transitions'),
      import('./adapters/erasure-collections'),
    ]);
    const s = await store();
    return new ErasureWorker({
      erasures: await erasureStore(),
      store: s,
      // No relay: the events of the jobs an erasure ends are deleted with the user's outbox entries.
      jobs: new JobTransitions({ store: s, queue, policy: config.polling, logger, now }),
      api,
      tokens: await tokens(),
      bucket: archives,
      queue,
      collections: ERASURE_COLLECTIONS.map((c) => c.collection),
      logger,
      now,
      afterStep: overrides.afterErasureStep,
      audit: await audit(),
    });
  });
  const service = lazy(async () => {
    const [{ ExportService }, { ConsentFlow }] = await Promise.all([import('./pipeline/export-service'), import('./pipeline/consent-flow')]);
    const consent = new ConsentFlow({ store: await consentStates(), cipher, clientId: config.oauth.clientId, ...config.consent, now });
    return new ExportService({ consent, store: await store(), api, oauth, tokens: await tokens(), cipher, queue, logger, limits: config.limits, archives, policy: config.polling, now, onJobFinished, relay: await relay(), audit: await audit(), archiveRetentionDays: config.retention.archiveDays, grantExpiryWarningDays: config.grantExpiryWarningDays });
  });

  // Handlers.
  const apiHandler = lazy(async () => {
    const [{ createApiHandler }, { ExportDeletion }, { AuthorizationStatusReader }, { ArchiveDownloads }, { ArchiveManifestViews }, { ErasureService }, { userDocId }] = await Promise.all([
      import('./http/api-handler'),
      import('./pipeline/export-housekeeping'),
      import('./pipeline/authorization-status'),
      import('./pipeline/archive-downloads'),
      import('./pipeline/archive-manifest-views'),
      import('./pipeline/erasure-service'),
      import('./adapters/firestore-paths'),
    ]);
    const svc = await service();
    return createApiHandler({
      service: svc,
      schedules: await schedules(),
      verifier: await verifier(),
      corsOrigins: config.corsOrigins,
      projectId: config.projectId,
      logger,
      deletion: new ExportDeletion({ store: await store(), archives, cancel: (u, e) => svc.cancelExport(u, e), manifests, logger, audit: await audit(), now }),
      authorizations: new AuthorizationStatusReader({ store: await store(), clientId: config.oauth.clientId, testingMode: config.oauthClientTestingMode, expiryWarningDays: config.grantExpiryWarningDays, now }),
      downloads: new ArchiveDownloads({ store: await store(), signer: downloadSigner, ttlSeconds: config.downloads.ttlSeconds, logger, now, audit: await audit() }),
      manifests: new ArchiveManifestViews({ store: await store(), manifests }),
      audit: await audit(),
      erasure: new ErasureService({ erasures: await erasureStore(), queue, userKey: userDocId, logger, now }),
    });
  });
  /** A Cloud Tasks function: its own URL is the token audience; it runs only its steps. */
  const taskHandler = (url: string, steps: TaskStep[], erasures?: typeof erasureWorker) =>
    lazy(async () => {
      const { createTaskHandler } = await import('./http/task-handler');
      return createTaskHandler({
        runner: await runner(),
        verifier: await taskVerifier(url),
        steps,
        retryBudget: config.tasks.retryBudget,
        ...(erasures ? { erasures: await erasures() } : {}),
        projectId: config.projectId,
        logger,
      });
    });
  const checkHandler = taskHandler(config.tasks.checkUrl, ['initiate', 'check']);
  const copyHandler = taskHandler(config.tasks.copyUrl, ['copy', 'copy-part'], erasureWorker);
  const sweepHandler = lazy(async () => {
    const [{ createSweepHandler }, { Sweeper }, { GrantExpiryWarnings }, { renewalUrlOf }] = await Promise.all([
      import('./http/sweep-handler'),
      import('./pipeline/sweeper'),
      import('./pipeline/grant-expiry-warnings'),
      import('./pipeline/authorization-status'),
    ]);
    const expiryWarnings = new GrantExpiryWarnings({ store: await store(), renewalUrl: renewalUrlOf(config.oauth.clientId), relay: await relay(), logger, now });
    return createSweepHandler({
      sweeper: new Sweeper({
        store: await store(),
        queue: await queue(),
        policy: config.polling,
        graceSeconds: config.tasks.sweepGraceSeconds,
        logger,
        now,
        relay: await relay(),
        audit: await audit(),
        expiryWarnings,
        erasures: { store: await erasureStore(), queue: await queue() },
      }),
      verifier: await taskVerifier(config.tasks.sweepUrl),
      logger,
    });
  });
  const scheduleHandler = lazy(async () => {
    const { createScheduleHandler } = await import('./http/schedule-handler');
    return createScheduleHandler({ schedules: await schedules(), verifier: await taskVerifier(config.tasks.scheduleUrl), projectId: config.projectId, logger });
  });
  const webhookHandler = lazy(async (): Promise<Handler> => {
    const url = webhooks.functionUrl;
    if (!url) {
      return async (_req, res) => {
        const { sendError } = await import('./http/http-types');
        sendError(res, 404, 'NOT_FOUND', 'No webhook endpoints are configured (WEBHOOK_ENDPOINTS, WEBHOOK_FUNCTION_URL)');
      };
    }
    const { createWebhookTaskHandler } = await import('./http/webhook-task-handler');
    // A cold start of the deliverer refuses a bad endpoint before its first delivery.
    await webhookHostsChecked();
    return createWebhookTaskHandler({ delivery: webhookDelivery, verifier: await taskVerifier(url), projectId: config.projectId, logger });
  });
  const handlers: Record<EntryPoint, () => Promise<Handler>> = {
    api: apiHandler,
    checkArchiveJob: checkHandler,
    copyArchives: copyHandler,
    sweepJobs: sweepHandler,
    runSchedules: scheduleHandler,
    deliverWebhooks: webhookHandler,
  };
  /** Whose OIDC tokens each entry point checks: the users' (api) or Google's for its own URL. */
  const keysOf: Record<EntryPoint, () => Promise<{ warm?(): Promise<void> }>> = {
    api: verifier,
    checkArchiveJob: () => taskVerifier(config.tasks.checkUrl),
    copyArchives: () => taskVerifier(config.tasks.copyUrl),
    sweepJobs: () => taskVerifier(config.tasks.sweepUrl),
    runSchedules: () => taskVerifier(config.tasks.scheduleUrl),
    deliverWebhooks: async () => (webhooks.functionUrl ? taskVerifier(webhooks.functionUrl) : {}),
  };
  return {
    api: async (req, res) => (await apiHandler())(req, res),
    checkArchiveJob: async (req, res) => (await checkHandler())(req, res),
    copyArchives: async (req, res) => (await copyHandler())(req, res),
    sweepJobs: async (req, res) => (await sweepHandler())(req, res),
    runSchedules: async (req, res) => (await scheduleHandler())(req, res),
    deliverWebhooks: async (req, res) => (await webhookHandler())(req, res),
    logger,
    warmUp: async (target) => {
      if (!(target in handlers)) return;
      const entry = target as EntryPoint;
      // The network first (signing keys, a Firestore connection), then the handler's modules,
      // so the fetches run while the code loads. A failure here is only a missed head start:
      // the first request makes the same lazy objects again.
      await Promise.all([
        keysOf[entry]().then((k) => k.warm?.()),
        Promise.all([firestore(), import('./adapters/firestore-client')]).then(([db, { warmFirestore }]) => warmFirestore(db)),
        handlers[entry](),
      ]);
    },
  };
}
