/**
 * Structured logs for Cloud Logging: JSON lines with `message` and an uppercase `severity`.
 * Credentials are redacted by key wherever they might appear, and URLs are logged without their
 * query strings (signed URLs carry their signature there).
 */
import type { Writable } from 'node:stream';

const SEVERITY = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
} as const;
type LevelName = keyof typeof SEVERITY;
const RANK: Record<LevelName | 'silent', number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export type LogFn = (fields: object, message?: string) => void;
export type Logger = { readonly level: string; child(bindings: Record<string, unknown>): Logger } & Record<LevelName, LogFn>;

/**
 * Redacted where they appear: a top-level key, or the dotted path given. (Nested elsewhere they
 * are not: `code` is also the name of every error code.)
 */
export const REDACTED_KEYS = [
  'accessToken',
  'refreshToken',
  'access_token',
  'refresh_token',
  'idToken',
  'id_token',
  'code',
  'authorization',
  'Authorization',
  'headers.authorization',
  'req.headers.authorization',
  'url',
  'urls',
  'signedUrl',
];

const CENSOR = '[REDACTED]';

function redact(fields: Record<string, unknown>): Record<string, unknown> {
  let out = fields;
  for (const path of REDACTED_KEYS) {
    const keys = path.split('.');
    let node: unknown = out;
    for (const k of keys.slice(0, -1)) node = node && typeof node === 'object' ? (node as Record<string, unknown>)[k] : undefined;
    const last = keys[keys.length - 1] as string;
    if (!node || typeof node !== 'object' || !(last in node)) continue;
    // Copy the objects along the path: the caller's own object is never changed.
    if (out === fields) out = { ...fields };
    let copy = out;
    for (const k of keys.slice(0, -1)) copy = copy[k] = { ...(copy[k] as Record<string, unknown>) };
    copy[last] = CENSOR;
  }
  return out;
}

/** JSON that never throws: circular references and BigInts are written as text (logging must not fail a request). */
function stringify(entry: object): string {
  try {
    return JSON.stringify(entry);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(entry, (_k, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v && typeof v === 'object') {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
      }
      return v;
    });
  }
}

/**
 * JSON lines for Cloud Logging: `severity`, `time`, the child's bindings, the fields, `message`.
 * A small logger of our own rather than pino: it is loaded on every cold start, and this is all
 * the functions need from one.
 */
export function createLogger(opts: { level?: string; destination?: Pick<Writable, 'write'> } = {}): Logger {
  const level = (opts.level ?? 'info') as LevelName | 'silent';
  if (!(level in RANK)) throw new Error(`Unknown log level ${String(opts.level)}`);
  const out = opts.destination ?? process.stdout;
  const make = (bindings: Record<string, unknown>): Logger => {
    const log =
      (name: LevelName): LogFn =>
      (fields, message) => {
        if (RANK[name] < RANK[level]) return;
        const entry = redact({ severity: SEVERITY[name], time: new Date().toISOString(), ...bindings, ...fields, ...(message !== undefined ? { message } : {}) });
        out.write(`${stringify(entry)}\n`);
      };
    return {
      level,
      child: (more) => make({ ...bindings, ...more }),
      trace: log('trace'),
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      fatal: log('fatal'),
    };
  };
  return make({});
}

/** A URL safe to log: scheme, host and path only. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '[unparseable url]';
  }
}

/** Cloud Logging's trace field from an `X-Cloud-Trace-Context` header. */
export function traceFields(projectId: string, header: string | undefined): Record<string, string> {
  const traceId = header?.split('/')[0];
  return traceId ? { 'logging.googleapis.com/trace': `projects/${projectId}/traces/${traceId}` } : {};
}
