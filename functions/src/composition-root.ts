/**
 * The one place where configuration becomes objects. Clients are created lazily, once per
 * instance, and only by the functions that need them (cold starts stay short). Tests and the
 * local stack pass overrides for whatever they want to control.
 */
import type { Config } from './config';
import type { ArchiveCopier, ExportStore, IdTokenVerifier, OAuthTokenClient, PortabilityApi, SecretCipher, TaskQueue } from './domain/ports';
import { createLogger, type Logger } from './logging';
import { createApiHandler } from './http/api-handler';
import type { HttpRequest, HttpResponse } from './http/http-types';
import { createTaskHandler, TaskCallerVerifier } from './http/task-handler';
import { AccessTokens } from './pipeline/access-tokens';
import { ExportService } from './pipeline/export-service';
import { JobRunner } from './pipeline/job-runner';

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
  now?: () => number;
}

export type Handler = (req: HttpRequest, res: HttpResponse) => Promise<void>;

export interface Composition {
  api: Handler;
  checkArchiveJob: Handler;
  copyArchives: Handler;
  logger: Logger;
}

function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  let made = false;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value as T;
  };
}

export function createComposition(config: Config, overrides: Overrides = {}): Composition {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const now = overrides.now ?? Date.now;

  /* eslint-disable @typescript-eslint/no-require-imports -- deferred loading keeps each function's cold start to what it uses */
  const store = lazy<ExportStore>(() => {
    if (overrides.store) return overrides.store;
    const { createFirestore, FirestoreExportStore } = require('./adapters/firestore-export-store') as typeof import('./adapters/firestore-export-store');
    return new FirestoreExportStore(createFirestore(config.projectId, config.firestoreEmulatorHost));
  });
  const api = lazy<PortabilityApi>(() => {
    if (overrides.api) return overrides.api;
    const { PortabilityApiClient } = require('./adapters/portability-api-client') as typeof import('./adapters/portability-api-client');
    return new PortabilityApiClient({ apiRoot: config.apiRoot });
  });
  const oauth = lazy<OAuthTokenClient>(() => {
    if (overrides.oauth) return overrides.oauth;
    const { GoogleOAuthTokenClient } = require('./adapters/google-oauth-token-client') as typeof import('./adapters/google-oauth-token-client');
    return new GoogleOAuthTokenClient(config.oauth);
  });
  const cipher = lazy<SecretCipher>(() => {
    if (overrides.cipher) return overrides.cipher;
    if (!config.tokenEncryptionKey) throw new Error('TOKEN_ENCRYPTION_KEY is required to store OAuth tokens');
    const { LocalKeySecretCipher } = require('./adapters/local-key-secret-cipher') as typeof import('./adapters/local-key-secret-cipher');
    return new LocalKeySecretCipher(config.tokenEncryptionKey);
  });
  const queue = lazy<TaskQueue>(() => {
    if (overrides.queue) return overrides.queue;
    const { CloudTasksQueue, createCloudTasksClient } = require('./adapters/cloud-tasks-queue') as typeof import('./adapters/cloud-tasks-queue');
    return new CloudTasksQueue({
      client: createCloudTasksClient(config.tasks.emulatorHost),
      projectId: config.projectId,
      location: config.tasks.location,
      checkQueue: config.tasks.checkQueue,
      copyQueue: config.tasks.copyQueue,
      checkUrl: config.tasks.checkUrl,
      copyUrl: config.tasks.copyUrl,
      serviceAccountEmail: config.tasks.serviceAccount,
      now,
    });
  });
  const copier = lazy<ArchiveCopier>(() => {
    if (overrides.copier) return overrides.copier;
    const { Storage } = require('@google-cloud/storage') as typeof import('@google-cloud/storage');
    const { CloudStorageArchiveCopier } = require('./adapters/archive-copier') as typeof import('./adapters/archive-copier');
    const storage = config.storageApiEndpoint ? new Storage({ apiEndpoint: config.storageApiEndpoint, projectId: config.projectId }) : new Storage();
    return new CloudStorageArchiveCopier({
      storage,
      bucket: config.archive.bucket,
      allowedHosts: config.archive.urlHosts,
      allowHttp: config.archive.allowHttp,
    });
  });
  const verifier = lazy<IdTokenVerifier>(() => {
    if (overrides.verifier) return overrides.verifier;
    const { JwksIdTokenVerifier } = require('./adapters/id-token-verifier') as typeof import('./adapters/id-token-verifier');
    return new JwksIdTokenVerifier(config.auth);
  });
  /* eslint-enable @typescript-eslint/no-require-imports */

  const tokens = lazy(() => new AccessTokens(store(), cipher(), oauth(), now));
  const runner = lazy(
    () =>
      new JobRunner({
        store: store(),
        api: api(),
        tokens: tokens(),
        queue: queue(),
        copier: copier(),
        policy: config.polling,
        maxArchiveRetries: config.maxArchiveRetries,
        logger,
        now,
      }),
  );
  const service = lazy(
    () => new ExportService({ store: store(), api: api(), oauth: oauth(), tokens: tokens(), cipher: cipher(), queue: queue(), logger, now }),
  );
  const taskVerifier = (audience: string) =>
    overrides.taskVerifier ??
    new TaskCallerVerifier({ issuer: config.tasks.oidcIssuer, jwksUrl: config.tasks.oidcJwksUrl, audience, serviceAccountEmail: config.tasks.serviceAccount });

  const apiHandler = lazy(() => createApiHandler({ service: service(), verifier: verifier(), corsOrigins: config.corsOrigins, projectId: config.projectId, logger }));
  const checkHandler = lazy(() =>
    createTaskHandler({
      runner: runner(),
      verifier: taskVerifier(config.tasks.checkUrl),
      steps: ['initiate', 'check'],
      retryBudget: config.tasks.retryBudget,
      projectId: config.projectId,
      logger,
    }),
  );
  const copyHandler = lazy(() =>
    createTaskHandler({
      runner: runner(),
      verifier: taskVerifier(config.tasks.copyUrl),
      steps: ['copy'],
      retryBudget: config.tasks.retryBudget,
      projectId: config.projectId,
      logger,
    }),
  );
  return {
    api: (req, res) => apiHandler()(req, res),
    checkArchiveJob: (req, res) => checkHandler()(req, res),
    copyArchives: (req, res) => copyHandler()(req, res),
    logger,
  };
}
