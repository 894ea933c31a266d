/**
 * Configuration: a pure function of the environment, parsed once and validated. Every variable
 * the code reads is declared here (and documented in the README's table).
 */
import { z } from 'zod';
import { coercedSafeInt, urlString as url } from './zod-helpers';
import { GOOGLE_ARCHIVE_RETRIES_ALLOWED } from './domain/retry-policies';
import { webhookEndpointProblems, webhookEndpointsSchema, webhookHostProblems } from './webhook-endpoints-config';
import type { HostLookup } from './adapters/address-guard';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const seconds = (def: number) => coercedSafeInt().positive().default(def);

/** A whole number of days in [min, max], said so in the message when it is not. */
const days = (min: number, max: number, def: number) => {
  const message = `must be a whole number of days from ${min} to ${max}`;
  return z.coerce.number({ invalid_type_error: message }).int(message).min(min, message).max(max, message).default(def);
};

const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0),
);

/** Google's rules for redirect URIs: absolute, no fragment, https except on the loopback host. */
const redirectUri = z.string().refine((s) => {
  if (!URL.canParse(s)) return false;
  const u = new URL(s);
  const loopback = u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]';
  return u.hash === '' && !s.includes('#') && (u.protocol === 'https:' || (u.protocol === 'http:' && loopback));
}, 'each entry must be an absolute https URL without a fragment (http only on localhost)');

const schema = z
  .object({
    GOOGLE_CLOUD_PROJECT: z.string().min(1),
    /** The Cloud Functions region, used for default function URLs and the queue path. */
    FUNCTION_REGION: z.string().min(1).default('europe-west1'),

    DATAPORTABILITY_API_ROOT: url.default('https://dataportability.googleapis.com/'),

    OAUTH_CLIENT_ID: z.string().min(1),
    OAUTH_CLIENT_SECRET: z.string().min(1),
    OAUTH_TOKEN_URL: url.default('https://oauth2.googleapis.com/token'),
    /** Google's authorization endpoint: where POST /v1/authorizations:start sends the user. */
    OAUTH_AUTH_URL: url.default('https://accounts.google.com/o/oauth2/v2/auth'),
    /** Comma-separated redirect URIs a consent may return to (exact match, as registered with the OAuth client). */
    OAUTH_REDIRECT_URIS: csv.pipe(z.array(redirectUri)).default(''),
    /** The OAuth client is still in Testing publishing status: GET /v1/authorizations warns that Google ends access after 7 days. */
    OAUTH_CLIENT_TESTING_MODE: bool.default('false'),
    /** How long a started consent (its state and PKCE verifier) may take before it expires. */
    OAUTH_STATE_TTL_SECONDS: coercedSafeInt().min(60).max(86_400).default(600),

    AUTH_ISSUER: z.string().min(1).optional(),
    AUTH_AUDIENCE: z.string().min(1).optional(),
    AUTH_JWKS_URL: url.default('https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com'),

    /** Base64 of 32 bytes: the key that wraps each grant's data key (local stack and tests). */
    TOKEN_ENCRYPTION_KEY: z.string().optional(),
    /** Production: the Cloud KMS CryptoKey that wraps each grant's data key (wins over TOKEN_ENCRYPTION_KEY). */
    KMS_KEY_NAME: z
      .string()
      .regex(/^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/, 'must be projects/…/locations/…/keyRings/…/cryptoKeys/…')
      .optional(),

    ARCHIVE_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'a Cloud Storage bucket name'),
    ARCHIVE_URL_HOSTS: csv.default('storage.googleapis.com'),
    /** Local stack only: accept http:// archive URLs (production accepts https only). */
    ARCHIVE_URL_ALLOW_HTTP: bool.default('false'),
    /** The largest archive copied (bytes); a bigger one fails its job. Default 50 GiB. */
    ARCHIVE_MAX_BYTES: coercedSafeInt().positive().default(50 * 1024 ** 3),
    /** A copy whose source sends no byte for this long is aborted (and retried). */
    ARCHIVE_STALL_SECONDS: seconds(60),

    FIRESTORE_EMULATOR_HOST: z.string().optional(),
    /** The Pub/Sub topic (short name, in this project) apps are told on when jobs and exports finish; unset, no events. */
    EVENTS_TOPIC: z.string().regex(/^[A-Za-z][\w.~+%-]{2,254}$/, 'a Pub/Sub topic name (letters, digits, - _ . ~ + %; 3 to 255, starting with a letter)').optional(),
    PUBSUB_EMULATOR_HOST: z.string().optional(),
    /** Apps told by signed HTTP POSTs (Standard Webhooks): a JSON list of {id, url, secret: a Secret Manager secret version}; unset, none. */
    WEBHOOK_ENDPOINTS: webhookEndpointsSchema.default('[]'),
    /** The deliverWebhooks function's URL: where the webhook queue's tasks go (required with WEBHOOK_ENDPOINTS). */
    WEBHOOK_FUNCTION_URL: url.optional(),
    /** The Cloud Tasks queue of webhook deliveries. */
    TASKS_QUEUE_WEBHOOKS: z.string().min(1).default('portability-webhooks'),
    /** Attempts per delivery before it is given up and recorded (keep the queue's max_attempts at least this). */
    WEBHOOK_MAX_ATTEMPTS: coercedSafeInt().min(1).max(100).default(12),
    /** How long one delivery waits for the endpoint's answer. */
    WEBHOOK_TIMEOUT_SECONDS: coercedSafeInt().min(1).max(60).default(10),
    /** Local stack only: webhook endpoints may be http://127.0.0.1 (or localhost); production accepts public https hosts only. */
    WEBHOOK_ALLOW_LOCAL_HTTP: bool.default('false'),
    /** host:port of a Secret Manager API stand-in (plaintext gRPC); unset in production. */
    SECRET_MANAGER_EMULATOR_HOST: z.string().optional(),
    STORAGE_API_ENDPOINT: url.optional(),
    /** How long a download link (a V4 signed URL of an archive) stays valid: at most an hour. */
    DOWNLOAD_URL_TTL_SECONDS: coercedSafeInt().min(60).max(3600).default(600),
    /** Local stack only: a service-account key file ({client_email, private_key}) download links are signed with; unset, IAM signBlob signs. */
    STORAGE_SIGNING_KEY_FILE: z.string().min(1).optional(),
    /** host:port of a Cloud Tasks API stand-in (plaintext gRPC); unset in production. */
    CLOUD_TASKS_EMULATOR_HOST: z.string().optional(),

    TASKS_LOCATION: z.string().min(1).optional(),
    TASKS_QUEUE_CHECK: z.string().min(1).default('portability-check'),
    TASKS_QUEUE_COPY: z.string().min(1).default('portability-copy'),
    /** The service account whose OIDC token Cloud Tasks attaches to each task. */
    TASKS_SERVICE_ACCOUNT: z.string().email(),
    CHECK_FUNCTION_URL: url,
    COPY_FUNCTION_URL: url,
    /** The sweeper's URL: the audience of Cloud Scheduler's OIDC token. */
    SWEEP_FUNCTION_URL: url,
    /** The runSchedules function's URL: the audience of Cloud Scheduler's and Cloud Tasks' OIDC tokens for scheduled runs. */
    SCHEDULE_FUNCTION_URL: url,
    /** How late a job's next step may be before the sweeper enqueues it again. */
    SWEEP_GRACE_SECONDS: seconds(600),
    /** How long one copy may hold a job before the sweeper assumes it died. */
    COPY_LEASE_SECONDS: seconds(2100),
    /** How long one copy invocation runs before a new task continues it (Cloud Tasks allows 30 minutes). */
    COPY_SLICE_SECONDS: seconds(1500),
    /** Bytes per resumable upload request: a crash loses at most one chunk. A multiple of 256 KiB. */
    COPY_CHUNK_BYTES: coercedSafeInt().min(262_144).multipleOf(262_144).default(8 * 1024 * 1024),
    /** Archives of at least this many bytes are copied as byte ranges, one Cloud Task each, then composed. Default 2 GiB. */
    COPY_PARALLEL_MIN_BYTES: coercedSafeInt().positive().default(2 * 1024 ** 3),
    /** How many ranges such an archive is cut into (Cloud Storage composes at most 32 objects at once). */
    COPY_PARALLEL_PARTS: coercedSafeInt().min(2).max(32).default(4),
    /** Who signs the OIDC tokens on task requests, and where its keys are. */
    TASKS_OIDC_ISSUER: z.string().min(1).default('https://accounts.google.com'),
    TASKS_OIDC_JWKS_URL: url.default('https://www.googleapis.com/oauth2/v3/certs'),
    /** Deliveries of one task after which a still-failing step is recorded as a terminal failure. */
    TASK_RETRY_BUDGET: coercedSafeInt().min(1).default(30),

    POLL_INITIAL_SECONDS: seconds(300),
    POLL_MAX_SECONDS: seconds(3600),
    /** How many times a FAILED archive job is retried (the API allows 3). */
    MAX_ARCHIVE_RETRIES: coercedSafeInt().min(0).max(GOOGLE_ARCHIVE_RETRIES_ALLOWED).default(GOOGLE_ARCHIVE_RETRIES_ALLOWED),

    /** Comma-separated origins allowed by CORS on the public API. */
    CORS_ORIGINS: csv.default(''),
    /** Abuse limits per user: exports started in any 24 hours, and exports running at once. */
    MAX_EXPORTS_PER_DAY: coercedSafeInt().min(1).default(10),
    MAX_CONCURRENT_EXPORTS: coercedSafeInt().min(1).default(3),
    /** Days an archive is kept in the bucket (the lifecycle rule deletes it at this age; the local stack's retention sweep does the same). */
    ARCHIVE_RETENTION_DAYS: days(1, 3650, 30),
    /** Days an ended export's and job's records are kept after they ended (Firestore TTL on `expireAt`); at least the archives'. */
    RECORD_RETENTION_DAYS: days(1, 3650, 90),
    /** Days the audit trail outlives the records it describes: an entry is kept RECORD_RETENTION_DAYS + this from its time. */
    AUDIT_RETENTION_DAYS: days(1, 3650, 365),
    /** Days before a time-based grant ends that the person is told (an event, and `expiresSoon` in GET /v1/authorizations). */
    GRANT_EXPIRY_WARNING_DAYS: days(1, 30, 7),
    LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .transform((e) => ({
    projectId: e.GOOGLE_CLOUD_PROJECT,
    region: e.FUNCTION_REGION,
    apiRoot: e.DATAPORTABILITY_API_ROOT.endsWith('/') ? e.DATAPORTABILITY_API_ROOT : `${e.DATAPORTABILITY_API_ROOT}/`,
    oauth: {
      clientId: e.OAUTH_CLIENT_ID,
      clientSecret: e.OAUTH_CLIENT_SECRET,
      tokenUrl: e.OAUTH_TOKEN_URL,
    },
    consent: {
      authUrl: e.OAUTH_AUTH_URL,
      redirectUris: e.OAUTH_REDIRECT_URIS,
      stateTtlSeconds: e.OAUTH_STATE_TTL_SECONDS,
    },
    oauthClientTestingMode: e.OAUTH_CLIENT_TESTING_MODE,
    auth: {
      issuer: e.AUTH_ISSUER ?? `https://securetoken.google.com/${e.GOOGLE_CLOUD_PROJECT}`,
      audience: e.AUTH_AUDIENCE ?? e.GOOGLE_CLOUD_PROJECT,
      jwksUrl: e.AUTH_JWKS_URL,
    },
    tokenEncryptionKey: e.TOKEN_ENCRYPTION_KEY,
    kmsKeyName: e.KMS_KEY_NAME,
    archive: {
      bucket: e.ARCHIVE_BUCKET,
      urlHosts: e.ARCHIVE_URL_HOSTS,
      allowHttp: e.ARCHIVE_URL_ALLOW_HTTP,
      maxBytes: e.ARCHIVE_MAX_BYTES,
      stallSeconds: e.ARCHIVE_STALL_SECONDS,
    },
    firestoreEmulatorHost: e.FIRESTORE_EMULATOR_HOST,
    events: e.EVENTS_TOPIC ? { topic: e.EVENTS_TOPIC, emulatorHost: e.PUBSUB_EMULATOR_HOST } : undefined,
    webhooks: {
      endpoints: e.WEBHOOK_ENDPOINTS,
      functionUrl: e.WEBHOOK_FUNCTION_URL,
      queue: e.TASKS_QUEUE_WEBHOOKS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      timeoutSeconds: e.WEBHOOK_TIMEOUT_SECONDS,
      allowLocalHttp: e.WEBHOOK_ALLOW_LOCAL_HTTP,
      secretManagerEmulatorHost: e.SECRET_MANAGER_EMULATOR_HOST,
    },
    storageApiEndpoint: e.STORAGE_API_ENDPOINT,
    downloads: { ttlSeconds: e.DOWNLOAD_URL_TTL_SECONDS, signingKeyFile: e.STORAGE_SIGNING_KEY_FILE },
    tasks: {
      emulatorHost: e.CLOUD_TASKS_EMULATOR_HOST,
      location: e.TASKS_LOCATION ?? e.FUNCTION_REGION,
      checkQueue: e.TASKS_QUEUE_CHECK,
      copyQueue: e.TASKS_QUEUE_COPY,
      serviceAccount: e.TASKS_SERVICE_ACCOUNT,
      checkUrl: e.CHECK_FUNCTION_URL,
      copyUrl: e.COPY_FUNCTION_URL,
      sweepUrl: e.SWEEP_FUNCTION_URL,
      scheduleUrl: e.SCHEDULE_FUNCTION_URL,
      sweepGraceSeconds: e.SWEEP_GRACE_SECONDS,
      oidcIssuer: e.TASKS_OIDC_ISSUER,
      oidcJwksUrl: e.TASKS_OIDC_JWKS_URL,
      retryBudget: e.TASK_RETRY_BUDGET,
    },
    polling: {
      initialSeconds: e.POLL_INITIAL_SECONDS,
      maxSeconds: e.POLL_MAX_SECONDS,
      copyLeaseSeconds: e.COPY_LEASE_SECONDS,
    },
    copy: {
      sliceSeconds: e.COPY_SLICE_SECONDS,
      chunkBytes: e.COPY_CHUNK_BYTES,
      parallelMinBytes: e.COPY_PARALLEL_MIN_BYTES,
      parallelParts: e.COPY_PARALLEL_PARTS,
    },
    maxArchiveRetries: e.MAX_ARCHIVE_RETRIES,
    corsOrigins: e.CORS_ORIGINS,
    limits: {
      exportsPerDay: e.MAX_EXPORTS_PER_DAY,
      concurrentExports: e.MAX_CONCURRENT_EXPORTS,
    },
    retention: {
      archiveDays: e.ARCHIVE_RETENTION_DAYS,
      recordDays: e.RECORD_RETENTION_DAYS,
      auditDays: e.AUDIT_RETENTION_DAYS,
    },
    grantExpiryWarningDays: e.GRANT_EXPIRY_WARNING_DAYS,
    logLevel: e.LOG_LEVEL,
  }));

export type Config = z.output<typeof schema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}\nSee the configuration table in README.md.`);
    this.name = 'ConfigError';
  }
}

/** Parses and validates the environment; throws one ConfigError listing every bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.') || '(environment)'}: ${i.message}`));
  }
  const problems: string[] = [];
  if (result.data.polling.initialSeconds > result.data.polling.maxSeconds) problems.push('POLL_INITIAL_SECONDS: must not exceed POLL_MAX_SECONDS');
  const { webhooks } = result.data;
  problems.push(...webhookEndpointProblems(webhooks.endpoints, webhooks.allowLocalHttp));
  if (webhooks.endpoints.length > 0 && !webhooks.functionUrl) problems.push('WEBHOOK_FUNCTION_URL: required when WEBHOOK_ENDPOINTS lists endpoints');
  const { archiveDays, recordDays } = result.data.retention;
  // An export's record is how its archives are found, listed and deleted: it must not go first.
  if (recordDays < archiveDays) problems.push(`RECORD_RETENTION_DAYS: must be at least ARCHIVE_RETENTION_DAYS (${archiveDays}), so no archive outlives the record that lists it`);
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data;
}

/**
 * The part of WEBHOOK_ENDPOINTS' check that needs DNS: every endpoint's host must resolve, and only
 * to public addresses. Throws one ConfigError listing every bad endpoint; run before anything is
 * enqueued for them (and again at every connection, by the deliverer's own lookup).
 */
export async function assertWebhookHostsPublic(config: Config, lookup?: HostLookup): Promise<void> {
  const problems = await webhookHostProblems(config.webhooks.endpoints, config.webhooks.allowLocalHttp, lookup);
  if (problems.length > 0) throw new ConfigError(problems);
}

/** The names of every variable the schema reads (for the README table and the Terraform check). */
export const CONFIG_VARIABLES = Object.keys(schema.innerType().shape);
