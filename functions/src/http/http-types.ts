/** The slice of Express's request/response that our handlers use (functions-framework passes Express objects). */
import type { IncomingHttpHeaders } from 'node:http';
import { BODY_TOO_LARGE_MESSAGE } from './request-body-guard';

export interface HttpRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  query: Record<string, unknown>;
  body?: unknown;
  rawBody?: Buffer;
  /** Set when the body was refused or could not be parsed (see request-body-guard.ts). */
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
  res.status(status).json({ error: { code, message, field } });
}

/** Answers 413 when the body guard refused the body; every function checks this before anything else. */
export function refusedAsTooLarge(req: HttpRequest, res: HttpResponse): boolean {
  if (req.bodyError?.status !== 413) return false;
  sendError(res, 413, 'BODY_TOO_LARGE', BODY_TOO_LARGE_MESSAGE);
  return true;
}
