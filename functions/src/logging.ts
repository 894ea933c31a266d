/**
 * Structured logs for Cloud Logging: JSON lines with `message` and an uppercase `severity`.
 * Credentials are redacted by key wherever they might appear, and URLs are logged without their
 * query strings (signed URLs carry their signature there).
 */
import pino, { type Logger } from 'pino';

export type { Logger };

const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

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

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      messageKey: 'message',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }),
      },
      redact: { paths: REDACTED_KEYS, censor: '[REDACTED]' },
    },
    opts.destination,
  );
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
