/** The slice of Express's request/response that our handlers use (functions-framework passes Express objects). */
import type { IncomingHttpHeaders } from 'node:http';

export interface HttpRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  query: Record<string, unknown>;
  body?: unknown;
  rawBody?: Buffer;
  /** Set when body-parser could not read the body (see body-parse-errors.ts). */
  bodyError?: { status: number; type: string };
}

export interface HttpResponse {
  status(code: number): HttpResponse;
  set(field: string, value: string): HttpResponse;
  json(body: unknown): void;
  send(body?: unknown): void;
  end(): void;
  headersSent: boolean;
}

export function header(req: HttpRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function sendError(res: HttpResponse, status: number, code: string, message: string, field?: string): void {
  res.status(status).json({ error: { code, message, ...(field ? { field } : {}) } });
}
