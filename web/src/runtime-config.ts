/**
 * The web app's settings, read at start from `config.json` beside index.html: one build serves
 * every deployment (the API's address and the sign-in settings change without a rebuild).
 */
export type AuthSettings =
  | { mode: 'local'; idTokenUrl: string }
  | { mode: 'firebase'; apiKey: string; authDomain: string; projectId: string; appId?: string };

export interface RuntimeConfig {
  /** The public API, e.g. `https://europe-west1-my-project.cloudfunctions.net/portability-api`. */
  apiBaseUrl: string;
  auth: AuthSettings;
  /** Where the person goes when done (a research team's survey); shown as a link at the end. */
  returnTo?: { url: string; label?: string };
  /** Force a language (`en`, `de`); by default the browser's. */
  locale?: string;
  /** How often the progress page asks the API (ms; default 2000). */
  pollMs?: number;
  /** How many times Google's failed export is retried (the API's MAX_ARCHIVE_RETRIES; default 3). */
  maxArchiveRetries?: number;
}

export class ConfigProblem extends Error {
  override name = 'ConfigProblem';
}

const isUrl = (s: unknown): s is string => {
  if (typeof s !== 'string') return false;
  try {
    return ['https:', 'http:'].includes(new URL(s).protocol);
  } catch {
    return false;
  }
};

export function parseRuntimeConfig(raw: unknown): RuntimeConfig {
  const c = raw as Partial<RuntimeConfig> | null;
  if (!c || typeof c !== 'object') throw new ConfigProblem('config.json is not a JSON object');
  if (!isUrl(c.apiBaseUrl)) throw new ConfigProblem('config.json: apiBaseUrl must be an http(s) URL');
  const auth = c.auth as Partial<AuthSettings> | undefined;
  if (auth?.mode === 'local') {
    if (!isUrl((auth as { idTokenUrl?: unknown }).idTokenUrl)) throw new ConfigProblem('config.json: auth.idTokenUrl must be an http(s) URL');
  } else if (auth?.mode === 'firebase') {
    const f = auth as Partial<Extract<AuthSettings, { mode: 'firebase' }>>;
    if (!f.apiKey || !f.authDomain || !f.projectId) throw new ConfigProblem('config.json: auth needs apiKey, authDomain and projectId for Firebase');
  } else {
    throw new ConfigProblem('config.json: auth.mode must be "local" or "firebase"');
  }
  if (c.returnTo !== undefined && !isUrl(c.returnTo.url)) throw new ConfigProblem('config.json: returnTo.url must be an http(s) URL');
  return { ...c, apiBaseUrl: c.apiBaseUrl.replace(/\/+$/, ''), auth: auth as AuthSettings } as RuntimeConfig;
}

export async function loadRuntimeConfig(): Promise<RuntimeConfig> {
  const res = await fetch('/config.json', { cache: 'no-store' });
  if (!res.ok) throw new ConfigProblem(`config.json could not be loaded (HTTP ${res.status})`);
  return parseRuntimeConfig(await res.json());
}
