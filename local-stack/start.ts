/**
 * `npm start`: the whole pipeline on this machine. Builds and serves the web app, starts the local
 * stack, runs one export for a demo user through the public API, prints its progress and verifies
 * the archives in the bucket, then keeps serving, with the web app's address and a ready-to-paste
 * curl. `npm start -- --no-demo` skips the export. `npm start -- --google` (with OAUTH_CLIENT_ID and
 * OAUTH_CLIENT_SECRET) uses Google's real consent screen, token endpoint and Data Portability API,
 * and copies from storage.googleapis.com (google-mode.ts).
 * Set DATAPORTABILITY_API_ROOT, OAUTH_TOKEN_URL, OAUTH_AUTH_URL or AUTH_JWKS_URL to use real endpoints instead of
 * the simulated ones (the demo then needs a real consent, so it is skipped).
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { CRC32C } from '@google-cloud/storage';
import { buildWebApp } from '../web/build';
import { LOCAL_REDIRECT_URI, startLocalStack, type LocalStack } from './local-stack';
import { googleModeEnv } from './google-mode';
import { startWebServer, webAppEnv, type WebServer } from './web-server';
import type { ReceivedWebhook } from './webhook-receiver';

const EXTERNAL = ['DATAPORTABILITY_API_ROOT', 'OAUTH_TOKEN_URL', 'OAUTH_AUTH_URL', 'OAUTH_REDIRECT_URIS', 'AUTH_JWKS_URL', 'AUTH_ISSUER', 'AUTH_AUDIENCE', 'OAUTH_CLIENT_ID', 'OAUTH_CLIENT_SECRET'];

interface JobView {
  jobId: string;
  resource: string;
  state: string;
  attempts: number;
  bytesCopied?: number;
  archives?: Array<{ bucket: string; name: string; size: number; crc32c: string; md5Hash?: string }>;
  error?: { code: string; message: string };
}
interface ExportView {
  exportId: string;
  state: string;
  jobs: JobView[];
}

async function call<T>(stack: LocalStack, token: string, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(stack.apiUrl + route, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${route} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

async function verifyObject(stack: LocalStack, a: { bucket: string; name: string; crc32c: string }): Promise<boolean> {
  const crc = new CRC32C();
  for await (const chunk of stack.storage.bucket(a.bucket).file(a.name).createReadStream({ validation: false })) crc.update(chunk as Buffer);
  return crc.toString() === a.crc32c;
}

async function demo(stack: LocalStack): Promise<void> {
  const t0 = Date.now();
  const at = () => `+${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(7);
  const userId = 'demo-user';
  const token = await stack.idToken(userId);
  const resources = ['myactivity.search', 'chrome.history', 'youtube.subscriptions'];
  // A realistic run: the search archive comes as two files, and Google fails the YouTube job once.
  stack.portability.faults.urlsPerJob('myactivity.search', 2);
  stack.portability.faults.failNextJobs('youtube.subscriptions', 1);
  console.log(`\n== Demo export for user "${userId}" ==`);
  // The frontend asks for a consent URL bound to this user (state + PKCE), sends the user there,
  // and hands the code and state Google redirects back with to the API.
  const consent = await call<{ authorizationUrl: string; state: string }>(stack, token, 'POST', '/v1/authorizations:start', {
    resources,
    redirectUri: LOCAL_REDIRECT_URI,
  });
  const consentScreen = new URL(consent.authorizationUrl);
  consentScreen.searchParams.set('login_hint', 'demo-google-account');
  const back = new URL((await fetch(consentScreen, { redirect: 'manual' })).headers.get('location') ?? LOCAL_REDIRECT_URI).searchParams;
  console.log(`${at()}  consent given at Google (state ${back.get('state') === consent.state ? 'matches' : 'DOES NOT match'})`);
  const grant = await call<{ oneTimeResources: string[]; timeBasedResources: string[] }>(stack, token, 'POST', '/v1/authorizations', {
    code: back.get('code'),
    state: back.get('state'),
  });
  console.log(`${at()}  authorized: one-time ${grant.oneTimeResources.join(', ')}`);
  const started = await call<ExportView>(stack, token, 'POST', '/v1/exports', {});
  console.log(`${at()}  export ${started.exportId} started with ${started.jobs.length} jobs`);
  const seen = new Map<string, string>();
  let view = started;
  for (;;) {
    view = await call<ExportView>(stack, token, 'GET', `/v1/exports/${started.exportId}`);
    for (const job of view.jobs) {
      const line = `${job.state}${job.attempts > 1 ? ` (attempt ${job.attempts})` : ''}${job.state === 'COPYING' && job.bytesCopied ? ` ${(job.bytesCopied / 1e6).toFixed(1)} MB` : ''}`;
      if (seen.get(job.jobId) !== line) {
        seen.set(job.jobId, line);
        console.log(`${at()}  ${job.resource.padEnd(24)} ${line}${job.error ? `: ${job.error.message}` : ''}`);
      }
    }
    if (view.state !== 'RUNNING') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(`${at()}  export ${view.state}\n\nArchives in gs://${stack.config.archive.bucket}:`);
  for (const job of view.jobs) {
    for (const a of job.archives ?? []) {
      const ok = await verifyObject(stack, a);
      console.log(`  ${a.name}  ${(a.size / 1e6).toFixed(2)} MB  crc32c ${a.crc32c}  ${ok ? 'checksum verified' : 'CHECKSUM MISMATCH'}`);
      if (!ok) process.exitCode = 1;
    }
  }
}

let webConfig: unknown;

/** Builds the web app and serves it on WEB_PORT (default 5173, the port of LOCAL_REDIRECT_URI), or any free port. */
async function startWebApp(): Promise<WebServer> {
  const dir = await buildWebApp();
  const config = () => webConfig ?? { error: 'starting' };
  const port = Number(process.env.WEB_PORT ?? 5173);
  return startWebServer({ dir, config, port }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EADDRINUSE') throw err;
    console.log(`Port ${port} is taken: serving the web app on another one.`);
    return startWebServer({ dir, config });
  });
}

async function main(): Promise<void> {
  const noDemo = process.argv.includes('--no-demo');
  const google = process.argv.includes('--google');
  const external = {
    ...Object.fromEntries(EXTERNAL.filter((k) => process.env[k]).map((k) => [k, process.env[k] as string])),
    ...(google ? googleModeEnv(process.env) : {}),
  };
  const logDir = path.resolve(__dirname, '..', '.cache');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, 'local-stack.log');
  console.log('Starting the local stack (Firestore and Pub/Sub emulators, Cloud Storage, Cloud Tasks and Secret Manager stand-ins, a webhook receiver, simulated Google APIs, functions)…');
  // The web app first: its origin goes into the API's CORS list and redirect URIs.
  const web = await startWebApp();
  const stack = await startLocalStack({ env: webAppEnv(web.origin, { OAUTH_REDIRECT_URIS: LOCAL_REDIRECT_URI, ...external }), events: true, webhooks: [{ id: 'local-app', onReceived: printWebhook }], logDestination: createWriteStream(logFile), schedulerIntervalMs: 5000, jobDurationMs: Number(process.env.SIM_JOB_DURATION_MS ?? 3000) });
  await printEvents(stack);
  const shutdown = async () => {
    console.log('\nStopping…');
    await web.stop();
    await stack.stop();
    process.exit();
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
  console.log(`Functions' logs (JSON, as Cloud Logging gets them): ${logFile}`);
  if (noDemo) console.log('Demo skipped (--no-demo).');
  else if (Object.keys(external).length > 0) console.log(`Demo skipped: using external ${Object.keys(external).join(', ')}.`);
  else await demo(stack);
  const token = await stack.idToken('demo-user');
  webConfig = { apiBaseUrl: stack.apiUrl, auth: { mode: 'local', idTokenUrl: stack.oauth.idTokenUrl }, pollMs: 1000 };
  console.log(`\nWeb app: ${web.origin}/   (sign in with any name; the consent screen is the local stack's stand-in for Google's)`);
  console.log(`API: ${stack.apiUrl}   (Firestore emulator ${stack.firestoreEmulatorHost}, Cloud Storage ${stack.gcs.endpoint}, Cloud Tasks ${stack.tasks.host})`);
  if (stack.webhooks) console.log(`Webhook receiver (verifies signatures with standardwebhooks): ${stack.webhooks.receivers['local-app']?.url}   (Secret Manager stand-in ${stack.webhooks.secretManager.host})`);
  console.log(`Try:\n  curl -s -H 'Authorization: Bearer ${token}' ${stack.apiUrl}/v1/exports\n\nServing; Ctrl-C to stop.`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/** An app's webhook endpoint: each delivery printed with whether its Standard Webhooks signature verified. */
function printWebhook(w: ReceivedWebhook): void {
  const what = w.event ? `${w.event.type} ${String(w.event.state ?? '')}` : 'a delivery';
  console.log(`${new Date().toISOString().slice(11, 19)}  webhook ${what} (webhook-id ${w.id}) signature ${w.verified ? 'verified' : 'REFUSED'}, answered ${w.status}`);
}

/** An app's side: a subscription on the events topic, each event printed as it arrives. */
async function printEvents(stack: LocalStack): Promise<void> {
  if (!stack.events) return;
  const [sub] = await stack.events.pubsub.topic(stack.events.topic).createSubscription(`demo-${Date.now()}`);
  sub.on('message', (m: { attributes: Record<string, string>; ack(): void }) => {
    console.log(`${new Date().toISOString().slice(11, 19)}  event ${m.attributes['ce-type']} ${m.attributes.state} (${m.attributes['ce-id']}) on Pub/Sub topic ${stack.events?.topic}`);
    m.ack();
  });
}
