/**
 * The Data Portability API over plain fetch + JSON (no `googleapis`: one small dependency-free
 * adapter cold-starts faster and lets the local stack point it anywhere through `apiRoot`).
 *
 * Responses are validated with zod but tolerant: unknown fields are dropped, an unknown `state` or
 * `accessType` becomes the `_UNSPECIFIED` value, and missing repeated fields (Google omits empty
 * lists in JSON) become empty lists. Non-2xx answers become `PortabilityApiError`.
 */
import { z } from 'zod';
import { PortabilityApiError } from '../domain/errors';
import type { AccessType, AccessTypeResult, ArchiveState, InitiateRequest, PortabilityApi, PortabilityArchiveState } from '../domain/ports/portability-api';

export interface PortabilityApiClientOptions {
  /** e.g. `https://dataportability.googleapis.com/` */
  apiRoot: string;
  fetchImpl?: typeof fetch;
  /** Per call; default 30 s. */
  timeoutMs?: number;
}

const STATES: readonly ArchiveState[] = ['STATE_UNSPECIFIED', 'IN_PROGRESS', 'COMPLETE', 'FAILED', 'CANCELLED'];
const ACCESS_TYPES: readonly AccessType[] = ['ACCESS_TYPE_UNSPECIFIED', 'ACCESS_TYPE_ONE_TIME', 'ACCESS_TYPE_TIME_BASED'];

const state = z
  .string()
  .optional()
  .transform((s): ArchiveState => (STATES as readonly string[]).includes(s ?? '') ? (s as ArchiveState) : 'STATE_UNSPECIFIED');
const accessType = z
  .string()
  .optional()
  .transform((s): AccessType => (ACCESS_TYPES as readonly string[]).includes(s ?? '') ? (s as AccessType) : 'ACCESS_TYPE_UNSPECIFIED');
const stringList = z.array(z.string()).optional().transform((xs) => xs ?? []);

const initiateResponse = z.object({ archiveJobId: z.string().min(1), accessType });
const stateResponse = z.object({
  name: z.string(),
  state,
  urls: stringList,
  startTime: z.string().optional(),
  exportTime: z.string().optional(),
});
const retryResponse = z.object({ archiveJobId: z.string().min(1) });
const accessTypeResponse = z.object({ oneTimeResources: stringList, timeBasedResources: stringList });

const errorBody = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    status: z.string().optional(),
    details: z.array(z.record(z.string(), z.unknown())).optional(),
  }),
});

const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';
const MAX_MESSAGE = 500;

/** A 2xx answer whose body is not what the reference says; retrying rarely helps. */
export class PortabilityApiResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PortabilityApiResponseError';
  }
}

/** Seconds from a Retry-After header (delta-seconds or HTTP-date). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** Builds a PortabilityApiError from a non-2xx response's status, headers and body text. */
export function parseApiError(method: string, httpStatus: number, bodyText: string, retryAfter: string | null): PortabilityApiError {
  let status = '';
  let message = `HTTP ${httpStatus}`;
  let reason: string | undefined;
  const metadata: Record<string, string> = {};
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    json = undefined;
  }
  const parsed = errorBody.safeParse(json);
  if (parsed.success) {
    const e = parsed.data.error;
    status = e.status ?? '';
    if (e.message) message = e.message.slice(0, MAX_MESSAGE);
    const info = (e.details ?? []).find((d) => d['@type'] === ERROR_INFO_TYPE);
    if (info) {
      if (typeof info.reason === 'string') reason = info.reason;
      if (info.metadata && typeof info.metadata === 'object') {
        for (const [k, v] of Object.entries(info.metadata as Record<string, unknown>)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
      }
    }
  }
  const label = [status, reason].filter(Boolean).join('/');
  return new PortabilityApiError(
    httpStatus,
    status,
    `${method} failed: HTTP ${httpStatus}${label ? ` ${label}` : ''}: ${message}`,
    reason,
    metadata,
    parseRetryAfter(retryAfter),
  );
}

export class PortabilityApiClient implements PortabilityApi {
  private readonly apiRoot: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;

  constructor(opts: PortabilityApiClientOptions) {
    this.apiRoot = opts.apiRoot.endsWith('/') ? opts.apiRoot : `${opts.apiRoot}/`;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async initiate(accessToken: string, request: InitiateRequest, quotaUser: string): Promise<{ archiveJobId: string; accessType: AccessType }> {
    const body: Record<string, unknown> = { resources: request.resources };
    if (request.startTime !== undefined) body.startTime = request.startTime;
    if (request.endTime !== undefined) body.endTime = request.endTime;
    const json = await this.call('portabilityArchive.initiate', 'POST', 'v1/portabilityArchive:initiate', accessToken, quotaUser, body);
    return this.validate('portabilityArchive.initiate', initiateResponse, json);
  }

  async getState(accessToken: string, archiveJobId: string, quotaUser: string): Promise<PortabilityArchiveState> {
    const path = `v1/archiveJobs/${jobSegment(archiveJobId)}/portabilityArchiveState`;
    const json = await this.call('archiveJobs.getPortabilityArchiveState', 'GET', path, accessToken, quotaUser);
    const s = this.validate('archiveJobs.getPortabilityArchiveState', stateResponse, json);
    const out: PortabilityArchiveState = { name: s.name, state: s.state, urls: s.urls };
    if (s.startTime !== undefined) out.startTime = s.startTime;
    if (s.exportTime !== undefined) out.exportTime = s.exportTime;
    return out;
  }

  async retry(accessToken: string, archiveJobId: string, quotaUser: string): Promise<{ archiveJobId: string }> {
    const json = await this.call('archiveJobs.retry', 'POST', `v1/archiveJobs/${jobSegment(archiveJobId)}:retry`, accessToken, quotaUser, {});
    return this.validate('archiveJobs.retry', retryResponse, json);
  }

  async cancel(accessToken: string, archiveJobId: string, quotaUser: string): Promise<void> {
    await this.call('archiveJobs.cancel', 'POST', `v1/archiveJobs/${jobSegment(archiveJobId)}:cancel`, accessToken, quotaUser, {});
  }

  async resetAuthorization(accessToken: string, quotaUser: string): Promise<void> {
    await this.call('authorization.reset', 'POST', 'v1/authorization:reset', accessToken, quotaUser, {});
  }

  async checkAccessType(accessToken: string, quotaUser: string): Promise<AccessTypeResult> {
    const json = await this.call('accessType.check', 'POST', 'v1/accessType:check', accessToken, quotaUser, {});
    return this.validate('accessType.check', accessTypeResponse, json);
  }

  private validate<T extends z.ZodTypeAny>(method: string, schema: T, json: unknown): z.output<T> {
    const r = schema.safeParse(json);
    if (!r.success) {
      const where = r.error.issues.map((i) => i.path.join('.') || '(body)').join(', ');
      throw new PortabilityApiResponseError(`${method}: unexpected response shape at ${where}`);
    }
    return r.data;
  }

  private async call(method: string, verb: 'GET' | 'POST', path: string, accessToken: string, quotaUser: string, body?: unknown): Promise<unknown> {
    const url = new URL(path, this.apiRoot);
    // quotaUser attributes quota to one end user; Google caps it at 40 characters.
    if (quotaUser) url.searchParams.set('quotaUser', quotaUser.slice(0, 40));
    const headers: Record<string, string> = { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await this.fetchImpl(url, {
      method: verb,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw parseApiError(method, res.status, text, res.headers.get('retry-after'));
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new PortabilityApiResponseError(`${method}: response is not JSON`);
    }
  }
}

function jobSegment(archiveJobId: string): string {
  if (!archiveJobId) throw new RangeError('archiveJobId must not be empty');
  // Accept a full name (`archiveJobs/{id}`) as well as the bare id the API returns.
  const id = archiveJobId.startsWith('archiveJobs/') ? archiveJobId.slice('archiveJobs/'.length).split('/')[0] : archiveJobId;
  return encodeURIComponent(id);
}
