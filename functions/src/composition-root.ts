/**
 * The one place where configuration becomes objects. Clients are created lazily, once per
 * instance, and only by the functions that need them (cold starts stay short). Tests and the
 * local stack pass overrides for whatever they want to control.
 */
import type { Config } from './config';
import type {
  ArchiveCopier,
  ExportStore,
  IdTokenVerifier,
  OAuthTokenClient,
  PortabilityApi,
  ScheduleRunQueue,
  ScheduleStore,
  SecretCipher,
  TaskQueue,
  TaskStep,
} from './domain/ports';
import { createLogger, type Logger } from './logging';
import type { HttpRequest, HttpResponse } from './http/http-types';
import type { TaskCallerVerifier } from './http/task-handler';
import { isHousekeepingStore, type HousekeepingStore } from './domain/housekeeping-store';
import type { ConsentStateStore } from './domain/consent-state';

export interface Overrides {
  logger?: Logger;
  store?: ExportStore;
  api?: PortabilityApi;
  oauth?: OAuthTokenClient;
  verifier?: IdTokenVerifier;
  queue?: TaskQueue;
  copier?: ArchiveCopier;
  cipher?: SecretCipher;
  taskVerifier?: TaskCallerVerifier;
  schedules?: ScheduleStore;
  consentStates?: ConsentStateStore;
  /** Where scheduled runs are enqueued (default: the Cloud Tasks queue, unless `queue` is overridden and is one). */
  runQueue?: ScheduleRunQueue;
  now?: () => number;
}

export type Handler = (req: HttpRequest, res: HttpResponse) => Promise<void>;

export const ENTRY_POINTS = ['api', 'checkArchiveJob', 'copyArchives', 'sweepJobs', 'runSchedules'] as const;
export type EntryPoint = (typeof ENTRY_POINTS)[number];

export interface Composition {
  api: Handler;
  checkArchiveJob: Handler;
  copyArchives: Handler;
  sweepJobs: Handler;
  runSchedules: Handler;
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

/**
 * An object standing in for an adapter that is created on its first method call, so a handler can
 * be built without loading clients it may never use. Every port method is async, so the wait for
 * the adapter hides inside the promise each call returns anyway.
 */
function deferred<T extends object>(get: () => Promise<T>): T {
  return new Proxy({} as T, {
    get(_target, prop) {
      // Not a thenable: awaiting the stand-in must not call through to the adapter.
      if (prop === 'then') return undefined;
      return (...args: unknown[]) =>
        get().then((target) => {
          const method = (target as Record<PropertyKey, unknown>)[prop];
          if (typeof method !== 'function') throw new TypeError(`${String(prop)} is not a method of the deferred adapter`);
          return (method as (...a: unknown[]) => unknown).apply(target, args);
        });
    },
  });
}

export function createComposition(config: Config, overrides: Overrides = {}): Composition {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const now = overrides.now ?? Date.now;

  // Adapters are imported on first use: each function's cold start loads only the clients it needs.
  const firestore = lazy(async () => {
    const { createFirestore } = await import('./adapters/firestore-client');
    return createFirestore({ projectId: config.projectId, ...(config.firestoreEmulatorHost ? { emulatorHost: config.firestoreEmulatorHost } : {}) });
  });
  const store = lazy<ExportStore>(async () => {
    if (overrides.store) return overrides.store;
    const { FirestoreExportStore } = await import('./adapters/firestore-export-store');
    return new FirestoreExportStore(await firestore());
  });
  const scheduleStore = lazy<ScheduleStore>(async () => {
    if (overrides.schedules) return overrides.schedules;
    const { FirestoreScheduleStore } = await import('./adapters/firestore-schedule-store');
    return new FirestoreScheduleStore(await firestore());
  });
  const consentStates = lazy<ConsentStateStore>(async () => {
    if (overrides.consentStates) return overrides.consentStates;
    const { FirestoreConsentStateStore } = await import('./adapters/firestore-consent-state-store');
    return new FirestoreConsentStateStore(await firestore());
  });
  const api = lazy<PortabilityApi>(async () => {
    if (overrides.api) return overrides.api;
    const { PortabilityApiClient } = await import('./adapters/portability-api-client');
    const { RetryingPortabilityApi } = await import('./adapters/retrying-portability-api');
    return new RetryingPortabilityApi(new PortabilityApiClient({ apiRoot: config.apiRoot }));
  });
  const oauth = lazy<OAuthTokenClient>(async () => {
    if (overrides.oauth) return overrides.oauth;
    const { GoogleOAuthTokenClient } = await import('./adapters/google-oauth-token-client');
    return new GoogleOAuthTokenClient({ ...config.oauth, now });
  });
  const cipher = lazy<SecretCipher>(async () => {
    if (overrides.cipher) return overrides.cipher;
    const { LocalKeySecretCipher } = await import('./adapters/local-key-secret-cipher');
    const local = config.tokenEncryptionKey ? new LocalKeySecretCipher(config.tokenEncryptionKey) : undefined;
    if (config.kmsKeyName) {
      // Production: KMS wraps every new data key; a local key, if still configured, only reads older grants.
      const { KmsSecretCipher, createKmsClient } = await import('./adapters/kms-secret-cipher');
      return new KmsSecretCipher({ client: createKmsClient(), keyName: config.kmsKeyName, ...(local ? { fallback: local } : {}) });
    }
    if (!local) throw new Error('KMS_KEY_NAME or TOKEN_ENCRYPTION_KEY is required to store OAuth tokens');
    return local;
  });
  const queue = lazy<TaskQueue>(async () => {
    if (overrides.queue) return overrides.queue;
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
      now,
    });
  });
  const runQueue = lazy<ScheduleRunQueue>(async () => {
    if (overrides.runQueue) return overrides.runQueue;
    const q = await queue();
    if ('enqueueScheduleRun' in q) return q as TaskQueue & ScheduleRunQueue;
    throw new Error('Override runQueue too when the task queue is overridden by one that cannot enqueue scheduled runs');
  });
  const copier = lazy<ArchiveCopier>(async () => {
    if (overrides.copier) return overrides.copier;
    const { Storage } = await import('@google-cloud/storage');
    const { CloudStorageArchiveCopier } = await import('./adapters/archive-copier');
    const storage = config.storageApiEndpoint ? new Storage({ apiEndpoint: config.storageApiEndpoint, projectId: config.projectId }) : new Storage();
    return new CloudStorageArchiveCopier({
      storage,
      bucket: config.archive.bucket,
      allowedHosts: config.archive.urlHosts,
      allowHttp: config.archive.allowHttp,
      maxBytes: config.archive.maxBytes,
      stallTimeoutMs: config.archive.stallSeconds * 1000,
    });
  });
  const verifier = lazy<IdTokenVerifier>(async () => {
    if (overrides.verifier) return overrides.verifier;
    const { JwksIdTokenVerifier } = await import('./adapters/id-token-verifier');
    return new JwksIdTokenVerifier(config.auth);
  });

  // Handlers and services are imported on first use too: a function loads only its own.
  const tokens = lazy(async () => {
    const { AccessTokens } = await import('./pipeline/access-tokens');
    return new AccessTokens(await store(), deferred(cipher), deferred(oauth), now);
  });
  const runner = lazy(async () => {
    const { JobRunner } = await import('./pipeline/job-runner');
    return new JobRunner({
      store: await store(),
      api: deferred(api),
      tokens: await tokens(),
      queue: deferred(queue),
      copier: deferred(copier),
      policy: config.polling,
      maxArchiveRetries: config.maxArchiveRetries,
      cipher: deferred(cipher),
      copySliceSeconds: config.copy.sliceSeconds,
      copyChunkBytes: config.copy.chunkBytes,
      // The deferred copier answers every method; an overriding copier must really have the ranged ones.
      ...(!overrides.copier || (typeof overrides.copier.copyPart === 'function' && typeof overrides.copier.composeParts === 'function')
        ? { parallelCopy: { minBytes: config.copy.parallelMinBytes, parts: config.copy.parallelParts } }
        : {}),
      logger,
      now,
      // Only a scheduled job loads the schedule side.
      onJobFinished: async (job) => {
        if (job.scheduleId) await (await schedules()).jobFinished(job);
      },
    });
  });
  const service = lazy(async () => {
    const [{ ExportService }, { ConsentFlow }] = await Promise.all([import('./pipeline/export-service'), import('./pipeline/consent-flow')]);
    const consent = new ConsentFlow({ store: deferred(consentStates), cipher: deferred(cipher), clientId: config.oauth.clientId, ...config.consent, now });
    return new ExportService({
      consent,
      store: await store(),
      api: deferred(api),
      oauth: deferred(oauth),
      tokens: await tokens(),
      cipher: deferred(cipher),
      queue: deferred(queue),
      logger,
      limits: config.limits,
      copier,
      now,
    });
  });
  const schedules = lazy(async () => {
    const { ScheduleService } = await import('./pipeline/schedule-service');
    return new ScheduleService({ schedules: await scheduleStore(), store: await store(), queue: deferred(queue), runQueue: deferred(runQueue), logger, now });
  });
  // One verifier per audience (function URL), shared by its handler and the warm-up.
  const taskVerifiers = new Map<string, () => Promise<TaskCallerVerifier>>();
  const taskVerifier = (audience: string): Promise<TaskCallerVerifier> => {
    let make = taskVerifiers.get(audience);
    if (!make) {
      make = lazy(async () => {
        if (overrides.taskVerifier) return overrides.taskVerifier;
        const { TaskCallerVerifier } = await import('./http/task-handler');
        return new TaskCallerVerifier({ issuer: config.tasks.oidcIssuer, jwksUrl: config.tasks.oidcJwksUrl, audience, serviceAccountEmail: config.tasks.serviceAccount });
      });
      taskVerifiers.set(audience, make);
    }
    return make();
  };

  const housekeeping = lazy(async () => {
    const s = await store();
    if (!isHousekeepingStore(s)) throw new Error('The export store cannot count or delete exports (HousekeepingStore)');
    return s as ExportStore & HousekeepingStore;
  });
  const apiHandler = lazy(async () => {
    const [{ createApiHandler }, { ExportDeletion }, { AuthorizationStatusReader }] = await Promise.all([
      import('./http/api-handler'),
      import('./pipeline/export-housekeeping'),
      import('./pipeline/authorization-status'),
    ]);
    const svc = await service();
    const records = await housekeeping();
    return createApiHandler({
      service: svc,
      schedules: await schedules(),
      verifier: await verifier(),
      corsOrigins: config.corsOrigins,
      projectId: config.projectId,
      logger,
      deletion: new ExportDeletion({ store: records, copier, cancel: (u, e) => svc.cancelExport(u, e), logger }),
      authorizations: new AuthorizationStatusReader({ store: records, clientId: config.oauth.clientId, testingMode: config.oauthClientTestingMode }),
    });
  });
  /** A Cloud Tasks function: its own URL is the token audience; it runs only its steps. */
  const taskHandler = (url: string, steps: TaskStep[]) =>
    lazy(async () => {
      const { createTaskHandler } = await import('./http/task-handler');
      return createTaskHandler({ runner: await runner(), verifier: await taskVerifier(url), steps, retryBudget: config.tasks.retryBudget, projectId: config.projectId, logger });
    });
  const checkHandler = taskHandler(config.tasks.checkUrl, ['initiate', 'check']);
  const copyHandler = taskHandler(config.tasks.copyUrl, ['copy', 'copy-part']);
  const sweepHandler = lazy(async () => {
    const [{ createSweepHandler }, { Sweeper }] = await Promise.all([import('./http/task-handler'), import('./pipeline/sweeper')]);
    return createSweepHandler({
      sweeper: new Sweeper({ store: await store(), queue: deferred(queue), graceSeconds: config.tasks.sweepGraceSeconds, logger, now }),
      verifier: await taskVerifier(config.tasks.sweepUrl),
      logger,
    });
  });
  const scheduleHandler = lazy(async () => {
    const { createScheduleHandler } = await import('./http/schedule-handler');
    return createScheduleHandler({ schedules: await schedules(), verifier: await taskVerifier(config.tasks.scheduleUrl), projectId: config.projectId, logger });
  });
  const handlers: Record<EntryPoint, () => Promise<Handler>> = {
    api: apiHandler,
    checkArchiveJob: checkHandler,
    copyArchives: copyHandler,
    sweepJobs: sweepHandler,
    runSchedules: scheduleHandler,
  };
  /** Whose OIDC tokens each entry point checks: the users' (api) or Google's for its own URL. */
  const keysOf: Record<EntryPoint, () => Promise<{ warm?(): Promise<void> }>> = {
    api: verifier,
    checkArchiveJob: () => taskVerifier(config.tasks.checkUrl),
    copyArchives: () => taskVerifier(config.tasks.copyUrl),
    sweepJobs: () => taskVerifier(config.tasks.sweepUrl),
    runSchedules: () => taskVerifier(config.tasks.scheduleUrl),
  };
  return {
    api: async (req, res) => (await apiHandler())(req, res),
    checkArchiveJob: async (req, res) => (await checkHandler())(req, res),
    copyArchives: async (req, res) => (await copyHandler())(req, res),
    sweepJobs: async (req, res) => (await sweepHandler())(req, res),
    runSchedules: async (req, res) => (await scheduleHandler())(req, res),
    logger,
    warmUp: async (target) => {
      if (!(target in handlers)) return;
      const entry = target as EntryPoint;
      // The network first (signing keys, a Firestore connection), then the handler's modules,
      // so the fetches run while the code loads. A failure here is only a missed head start:
      // the first request makes the same lazy objects again.
      await Promise.all([
        keysOf[entry]().then((k) => k.warm?.()),
        overrides.store ? undefined : Promise.all([firestore(), import('./adapters/firestore-client')]).then(([db, { warmFirestore }]) => warmFirestore(db)),
        handlers[entry](),
      ]);
    },
  };
}
