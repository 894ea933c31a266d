/** A tiny client of the public API for end-to-end tests, and helpers to drive the local stack. */
import { CRC32C } from '@google-cloud/storage';
import { LOCAL_REDIRECT_URI, type LocalStack } from '../../local-stack/local-stack';

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export interface ExportBody {
  exportId: string;
  state: string;
  resources: string[];
  jobs: Array<{
    jobId: string;
    resource: string;
    state: string;
    attempts: number;
    bytesCopied?: number;
    bytesTotal?: number;
    archives?: Array<{ bucket: string; name: string; size: number; crc32c: string; md5Hash?: string }>;
    error?: { code: string; message: string };
  }>;
}

export async function api<T = Record<string, unknown>>(
  stack: LocalStack,
  token: string | undefined,
  method: string,
  route: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiAnswer<T>> {
  const res = await fetch(stack.apiUrl + route, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = { unparsed: text };
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

export const REDIRECT = LOCAL_REDIRECT_URI;

export interface StartedConsent {
  authorizationUrl: string;
  state: string;
  expiresAt: string;
}

/** POST /v1/authorizations:start: the consent URL for `resources`, bound to this caller. */
export async function startConsent(stack: LocalStack, token: string, resources: string[], redirectUri = REDIRECT): Promise<StartedConsent> {
  const res = await api<StartedConsent>(stack, token, 'POST', '/v1/authorizations:start', { resources, redirectUri });
  if (res.status !== 201) throw new Error(`authorizations:start failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * A Google user follows a consent URL and clicks "Allow" (the simulator's consent screen); returns
 * the `code` and `state` Google appends to the redirect URI.
 */
export async function consentAtGoogle(
  authorizationUrl: string,
  googleUserId: string,
  opts: { granted?: string[]; accessType?: 'ONE_TIME' | 'TIME_BASED' } = {},
): Promise<{ code: string; state: string }> {
  const url = new URL(authorizationUrl);
  url.searchParams.set('login_hint', googleUserId);
  if (opts.granted) url.searchParams.set('sim_grant', opts.granted.join(','));
  if (opts.accessType) url.searchParams.set('sim_access_type', opts.accessType);
  const res = await fetch(url, { redirect: 'manual' });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location) throw new Error(`the consent screen answered ${res.status}: ${await res.text()}`);
  const back = new URL(location).searchParams;
  const code = back.get('code');
  if (!code) throw new Error(`the consent screen answered error=${back.get('error')}`);
  return { code, state: back.get('state') ?? '' };
}

/** A user of the app who consented at Google to `resources` and whose grant the API stored. */
export async function authorizedUser(
  stack: LocalStack,
  userId: string,
  resources: string[],
  opts: { granted?: string[]; accessType?: 'ONE_TIME' | 'TIME_BASED' } = {},
): Promise<{ token: string; grant: Record<string, unknown>; googleUserId: string }> {
  const token = await stack.idToken(userId);
  const googleUserId = `google-${userId}`;
  const started = await startConsent(stack, token, resources);
  const { code, state } = await consentAtGoogle(started.authorizationUrl, googleUserId, opts);
  const res = await api(stack, token, 'POST', '/v1/authorizations', { code, state });
  if (res.status !== 201) throw new Error(`authorization failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { token, grant: res.body, googleUserId };
}

export async function waitForExport(
  stack: LocalStack,
  token: string,
  exportId: string,
  until: (e: ExportBody) => boolean = (e) => e.state !== 'RUNNING',
  timeoutMs = 45_000,
): Promise<ExportBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api<ExportBody>(stack, token, 'GET', `/v1/exports/${exportId}`);
    if (res.status !== 200) throw new Error(`GET export answered ${res.status}`);
    if (until(res.body)) return res.body;
    if (Date.now() > deadline) throw new Error(`export ${exportId} still ${JSON.stringify(res.body.jobs.map((j) => j.state))} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Reads an object back from the bucket and computes its CRC32C. */
export async function crc32cOfObject(stack: LocalStack, bucket: string, name: string): Promise<string> {
  const crc = new CRC32C();
  for await (const chunk of stack.storage.bucket(bucket).file(name).createReadStream({ validation: false })) crc.update(chunk as Buffer);
  return crc.toString();
}

export async function objectNames(stack: LocalStack, prefix = ''): Promise<string[]> {
  const [files] = await stack.storage.bucket(stack.config.archive.bucket).getFiles({ prefix });
  return files.map((f) => f.name).sort();
}
