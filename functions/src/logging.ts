/**
 * Structured logs for Cloud Logging: JSON lines with `message` and an uppercase `severity`.
 * Credentials are redacted by key wherever they might appear, and URLs are logged without their
 * query strings (signed URLs carry their signature there). Error objects are written by the
 * logger (name, message, code, stack), and ERROR/CRITICAL entries are shaped as Error Reporting's
 * ReportedErrorEvent, so failures are grouped there without any handler formatting them.
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

/** What an Error becomes in a log entry. */
export interface LoggedError {
  name: string;
  message: string;
  code?: string | number;
  stack?: string;
  cause?: LoggedError | string;
}

/**
 * An Error as a plain object of its name, message, code, stack and cause, and nothing else:
 * client errors carry enumerable extras (gaxios: the request `config` with its Authorization
 * header, the `response`) that must not reach a log line.
 */
export function serializeError(err: Error, depth = 0): LoggedError {
  const out: LoggedError = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = code;
  if (err.stack) out.stack = err.stack;
  const cause: unknown = err.cause;
  if (cause !== undefined && depth < 3) out.cause = cause instanceof Error ? serializeError(cause, depth + 1) : String(cause);
  return out;
}

/** Errors anywhere in an entry are written as `serializeError` describes them. */
const errorsAsObjects = (_k: string, v: unknown): unknown => (v instanceof Error ? serializeError(v) : v);

/** JSON that never throws: circular references and BigInts are written as text (logging must not fail a request). */
function stringify(entry: object): string {
  try {
    return JSON.stringify(entry, errorsAsObjects);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(entry, (k, value: unknown) => {
      const v = errorsAsObjects(k, value);
      if (typeof v === 'bigint') return v.toString();
      if (v && typeof v === 'object') {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
      }
      return v;
    });
  }
}

/** The type that makes Error Reporting read an entry as an error event (with or without a stack). */
export const REPORTED_ERROR_EVENT = 'type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent';

/** Keys the logger writes itself. A field or binding of one of these names is written as `field_<name>`. */
export const RESERVED_KEYS = ['severity', 'message', 'time', '@type', 'stack_trace'] as const;
const RESERVED = new Set<string>(RESERVED_KEYS);

function withoutReserved(fields: Record<string, unknown>): Record<string, unknown> {
  if (!Object.keys(fields).some((k) => RESERVED.has(k))) return fields;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[RESERVED.has(k) ? `field_${k}` : k] = v;
  return out;
}

/** The error an entry is about: its `err` field, else the first Error among its fields. */
function errorOf(fields: Record<string, unknown>): Error | undefined {
  if (fields.err instanceof Error) return fields.err;
  return Object.values(fields).find((v): v is Error => v instanceof Error);
}

/**
 * An ERROR/CRITICAL entry as Error Reporting reads it: `@type` ReportedErrorEvent, the message, and
 * the error's stack in `stack_trace` (read first; Node's stack starts with "Name: message"). The
 * error's own object then leaves its stack out rather than log it twice.
 */
function errorEvent(fields: Record<string, unknown>, message: string | undefined): { head: Record<string, unknown>; fields: Record<string, unknown>; tail: Record<string, unknown> } {
  const err = errorOf(fields);
  const head = { '@type': REPORTED_ERROR_EVENT };
  if (!err) return { head, fields, tail: { message: message ?? '' } };
  const { stack, ...rest } = serializeError(err);
  const key = Object.keys(fields).find((k) => fields[k] === err) as string;
  return { head, fields: { ...fields, [key]: rest }, tail: { message: message ?? err.message, ...(stack ? { stack_trace: stack } : {}) } };
}

/**
 * JSON lines for Cloud Logging: `severity`, `time`, the child's bindings, the fields, `message`
 * (and on errors `@type` and `stack_trace`).
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
        const own = withoutReserved({ ...bindings, ...(fields as Record<string, unknown>) });
        const event = RANK[name] >= RANK.error ? errorEvent(own, message) : { head: {}, fields: own, tail: message !== undefined ? { message } : {} };
        // Reserved names were renamed above, so nothing a caller passes replaces the logger's own keys.
        const entry = { severity: SEVERITY[name], time: new Date().toISOString(), ...event.head, ...redact(event.fields), ...event.tail };
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

/** Cloud Logging's trace field from an `X-Cloud-Trace-Context` header. */
export function traceFields(projectId: string, header: string | undefined): Record<string, string> {
  const traceId = header?.split('/')[0];
  return traceId ? { 'logging.googleapis.com/trace': `projects/${projectId}/traces/${traceId}` } : {};
}
