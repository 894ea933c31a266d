/**
 * A local stand-in for the Cloud Tasks API (google.cloud.tasks.v2.CloudTasks over plaintext gRPC).
 * Google ships no Cloud Tasks emulator; the real `CloudTasksClient` talks to this server
 * unchanged, and its dispatcher delivers HTTP tasks the way Cloud Tasks does: at the task's
 * scheduleTime, with the X-CloudTasks-* headers and an OIDC bearer token, retrying non-2xx
 * answers with exponential backoff. Everything lives in memory; one server per test file.
 *
 * Choices (documented so tests can rely on them):
 * - Unknown queue -> NOT_FOUND, like the real service (pass `autoCreateQueues: true` to relax).
 * - Task names that were executed or deleted are remembered for `tombstoneMs` (default 1 hour):
 *   creating one again answers ALREADY_EXISTS, as Cloud Tasks does.
 * - `timeScale` multiplies every wait (schedule delays, backoff, Retry-After); the times reported
 *   through the API and the ETA header stay unscaled.
 * - The queue's own retryConfig (maxAttempts, minBackoff, maxBackoff, maxDoublings) wins over
 *   the server defaults when set, as in Cloud Tasks.
 */
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { createHash, randomInt } from 'node:crypto';
import { GrpcClient, grpc } from 'google-gax';
import type { LocalOidcIssuer } from './local-oidc-issuer';

export interface CloudTasksServerOptions {
  oidcIssuer: LocalOidcIssuer;
  /** Multiplies every delay the dispatcher waits (0.01 = a minute passes in 0.6 s). Default 1. */
  timeScale?: number;
  /** Attempts per task before it is dropped, unless the queue's retryConfig says otherwise. Default 100. */
  maxAttempts?: number;
  /** First retry delay (unscaled). Default 100 ms (Cloud Tasks' default minBackoff). */
  minBackoffMs?: number;
  /** Longest retry delay (unscaled). Default 3600 s (Cloud Tasks' default maxBackoff). */
  maxBackoffMs?: number;
  /** Deliveries in flight at once. Default 10. */
  maxConcurrent?: number;
  /** Create a queue on first CreateTask instead of answering NOT_FOUND. Default false. */
  autoCreateQueues?: boolean;
  /** How long executed/deleted task names stay reserved. Default 1 hour. */
  tombstoneMs?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export interface TaskSnapshot {
  /** Full resource name. */
  name: string;
  queue: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Epoch ms when the server created it. */
  createTime: number;
  /** Epoch ms, as reported through the API (unscaled). */
  scheduleTime: number;
  /** Epoch ms at which the dispatcher will actually send it (scaled). */
  dueAt: number;
  dispatchCount: number;
  responseCount: number;
  inFlight: boolean;
}

export interface DeliveryRecord {
  /** Full task name. */
  taskName: string;
  queue: string;
  url: string;
  /** 1-based: the attempt this was. */
  attempt: number;
  /** HTTP status, or null when no response came (connection error, deadline, dropped). */
  status: number | null;
  /** What the dispatcher did next. */
  /** 'duplicate': an extra delivery made by the `setDispatchFault` hook; it never changes the task. */
  outcome: 'done' | 'retry' | 'gave-up' | 'dropped' | 'deleted-meanwhile' | 'duplicate';
  /** Epoch ms when the attempt started. */
  at: number;
  /** The scaled wait before the next attempt, when outcome is 'retry'. */
  nextDelayMs?: number;
  error?: string;
}

/** What a dispatch fault hook sees of a task that falls due. */
export interface DispatchInfo {
  name: string;
  queue: string;
  url: string;
  body: Buffer;
  /** 1-based: the attempt about to be made. */
  attempt: number;
}

/**
 * Cloud Tasks delivers at least once: 'drop' loses the task (as if never run), 'duplicate' sends
 * it twice at the same time, 'duplicate-after' sends it again once the first delivery answered.
 */
export type DispatchFault = 'drop' | 'duplicate' | 'duplicate-after';

export interface CloudTasksServer {
  /** '127.0.0.1:PORT', for CLOUD_TASKS_EMULATOR_HOST. */
  host: string;
  port: number;
  stop(): Promise<void>;
  /** Tasks not yet done or dropped (including those in flight). */
  pendingCount(): number;
  inFlightCount(): number;
  /** Resolves when nothing is pending or in flight; rejects if the server stops first. */
  idle(): Promise<void>;
  tasks(): TaskSnapshot[];
  /** Every attempt, oldest first. */
  readonly deliveries: DeliveryRecord[];
  pause(): void;
  resume(): void;
  /** Fault hook: the next `n` tasks that fall due are lost without delivery (as if never run). */
  dropNext(n: number): void;
  /** Fault hook: asked for every task that falls due; its answer is applied to that attempt. */
  setDispatchFault(hook: ((task: DispatchInfo) => DispatchFault | undefined) | undefined): void;
  /** Test helper: creates a queue directly (full name), no-op if it exists. */
  ensureQueue(name: string): void;
}

const PROTOS_JSON = path.join(path.dirname(require.resolve('@google-cloud/tasks')), '..', '..', 'protos', 'protos.json');

const QUEUE_RE = /^projects\/([^/]+)\/locations\/([^/]+)\/queues\/([A-Za-z0-9-]{1,100})$/;
const TASK_RE = /^(projects\/[^/]+\/locations\/[^/]+\/queues\/[A-Za-z0-9-]{1,100})\/tasks\/([A-Za-z0-9_-]{1,500})$/;
const LOCATION_RE = /^projects\/[^/]+\/locations\/[^/]+$/;
const MAX_SCHEDULE_AHEAD_MS = 30 * 24 * 3600 * 1000;
const DEFAULT_DISPATCH_DEADLINE_MS = 10 * 60 * 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Timestamp and Duration as the gRPC loader hands them over (longs as strings). */
interface PbSeconds {
  seconds?: string | number | null;
  nanos?: number | null;
}

interface QueueRecord {
  name: string;
  retryConfig: { maxAttempts?: number; minBackoffMs?: number; maxBackoffMs?: number; maxDoublings?: number };
  createdAt: number;
}

interface AttemptRecord {
  scheduleTime: number;
  dispatchTime: number;
  responseTime?: number;
  status?: number | null;
}

interface TaskRecord {
  name: string;
  queue: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  body: Buffer;
  oidc?: { serviceAccountEmail: string; audience: string };
  createTime: number;
  scheduleTime: number;
  dueAt: number;
  dispatchDeadlineMs: number;
  dispatchCount: number;
  responseCount: number;
  /** Responses that were not 5xx: what X-CloudTasks-TaskExecutionCount reports. */
  executionCount: number;
  previousResponse?: number;
  inFlight: boolean;
  firstAttempt?: AttemptRecord;
  lastAttempt?: AttemptRecord;
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const toMs = (t: PbSeconds | null | undefined): number | undefined =>
  t ? Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : undefined;

const toTimestamp = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

const toDuration = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) });

/** Google's service-account `sub` is a numeric id; derive a stable one from the email. */
function numericSubject(email: string): string {
  const hex = createHash('sha256').update(email).digest('hex').slice(0, 16);
  return `1${BigInt(`0x${hex}`).toString().padStart(20, '0')}`;
}

/** Seconds (or an HTTP date) from a Retry-After header, as milliseconds. */
function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export async function startCloudTasksServer(opts: CloudTasksServerOptions): Promise<CloudTasksServer> {
  const timeScale = opts.timeScale ?? 1;
  const defaults = {
    maxAttempts: opts.maxAttempts ?? 100,
    minBackoffMs: opts.minBackoffMs ?? 100,
    maxBackoffMs: opts.maxBackoffMs ?? 3600_000,
    maxDoublings: 16,
  };
  const maxConcurrent = opts.maxConcurrent ?? 10;
  const tombstoneMs = opts.tombstoneMs ?? 3600_000;

  const queues = new Map<string, QueueRecord>();
  const tasks = new Map<string, TaskRecord>();
  /** Full task name -> epoch ms until which the name stays reserved. */
  const tombstones = new Map<string, number>();
  const deliveries: DeliveryRecord[] = [];
  const idleWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const aborts = new Set<AbortController>();
  // A dedicated agent without keep-alive: no pooled sockets outlive stop().
  const httpAgent = new http.Agent({ keepAlive: false });
  const httpsAgent = new https.Agent({ keepAlive: false });

  let inFlight = 0;
  let paused = false;
  let stopped = false;
  let dropRemaining = 0;
  let dispatchFault: ((task: DispatchInfo) => DispatchFault | undefined) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timerDueAt = Infinity;

  // ---------- queues and names ----------

  function ensureQueue(name: string): QueueRecord {
    const existing = queues.get(name);
    if (existing) return existing;
    const q: QueueRecord = { name, retryConfig: {}, createdAt: Date.now() };
    queues.set(name, q);
    return q;
  }

  function requireQueue(name: string): QueueRecord {
    if (!QUEUE_RE.test(name)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid queue name: ${name}`);
    const q = queues.get(name);
    if (q) return q;
    if (opts.autoCreateQueues) return ensureQueue(name);
    throw new RpcError(grpc.status.NOT_FOUND, `Queue does not exist: ${name}`);
  }

  function isReserved(name: string, now: number): boolean {
    const until = tombstones.get(name);
    if (until === undefined) return false;
    if (until > now) return true;
    tombstones.delete(name);
    return false;
  }

  function retire(rec: TaskRecord): void {
    tasks.delete(rec.name);
    tombstones.set(rec.name, Date.now() + tombstoneMs);
  }

  function queueView(q: QueueRecord) {
    const rc = q.retryConfig;
    return {
      name: q.name,
      state: 'RUNNING',
      retryConfig: {
        maxAttempts: rc.maxAttempts ?? defaults.maxAttempts,
        minBackoff: toDuration(rc.minBackoffMs ?? defaults.minBackoffMs),
        maxBackoff: toDuration(rc.maxBackoffMs ?? defaults.maxBackoffMs),
        maxDoublings: rc.maxDoublings ?? defaults.maxDoublings,
      },
    };
  }

  function attemptView(a: AttemptRecord | undefined) {
    if (!a) return null;
    return {
      scheduleTime: toTimestamp(a.scheduleTime),
      dispatchTime: toTimestamp(a.dispatchTime),
      responseTime: a.responseTime !== undefined ? toTimestamp(a.responseTime) : null,
      responseStatus:
        a.status === undefined ? null : { code: a.status !== null && a.status < 300 ? 0 : 2, message: a.status === null ? 'no response' : `HTTP ${a.status}` },
    };
  }

  function taskView(rec: TaskRecord, view: string) {
    const full = view === 'FULL';
    return {
      name: rec.name,
      httpRequest: {
        url: rec.url,
        httpMethod: rec.method,
        headers: rec.headers,
        body: full ? rec.body : Buffer.alloc(0),
        oidcToken: rec.oidc ?? null,
      },
      scheduleTime: toTimestamp(rec.scheduleTime),
      createTime: toTimestamp(rec.createTime),
      dispatchDeadline: toDuration(rec.dispatchDeadlineMs),
      dispatchCount: rec.dispatchCount,
      responseCount: rec.responseCount,
      firstAttempt: attemptView(rec.firstAttempt),
      lastAttempt: attemptView(rec.lastAttempt),
      view: full ? 'FULL' : 'BASIC',
    };
  }

  function page<T>(items: T[], pageSize: number | undefined, pageToken: string | undefined) {
    const start = pageToken ? Number(pageToken) : 0;
    if (!Number.isInteger(start) || start < 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Invalid page token');
    const size = pageSize && pageSize > 0 ? Math.min(pageSize, 1000) : 1000;
    const slice = items.slice(start, start + size);
    return { slice, nextPageToken: start + size < items.length ? String(start + size) : '' };
  }

  // ---------- RPC handlers ----------

  /* eslint-disable @typescript-eslint/no-explicit-any -- request shapes come from the proto loader */
  const handlers: Record<string, (req: any) => unknown> = {
    CreateQueue(req: { parent: string; queue?: { name?: string; retryConfig?: any } }) {
      if (!LOCATION_RE.test(req.parent)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid parent: ${req.parent}`);
      const name = req.queue?.name ?? '';
      const m = QUEUE_RE.exec(name);
      if (!m || !name.startsWith(`${req.parent}/queues/`)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid queue name: ${name}`);
      if (queues.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `Queue already exists: ${name}`);
      const q = ensureQueue(name);
      const rc = req.queue?.retryConfig;
      if (rc) {
        // 0/unset means "the default"; -1 means unlimited attempts.
        if (rc.maxAttempts) q.retryConfig.maxAttempts = rc.maxAttempts < 0 ? Infinity : rc.maxAttempts;
        if (rc.minBackoff) q.retryConfig.minBackoffMs = toMs(rc.minBackoff);
        if (rc.maxBackoff) q.retryConfig.maxBackoffMs = toMs(rc.maxBackoff);
        if (rc.maxDoublings) q.retryConfig.maxDoublings = rc.maxDoublings;
      }
      return queueView(q);
    },
    GetQueue(req: { name: string }) {
      if (!QUEUE_RE.test(req.name)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid queue name: ${req.name}`);
      const q = queues.get(req.name);
      if (!q) throw new RpcError(grpc.status.NOT_FOUND, `Queue does not exist: ${req.name}`);
      return queueView(q);
    },
    ListQueues(req: { parent: string; pageSize?: number; pageToken?: string }) {
      if (!LOCATION_RE.test(req.parent)) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid parent: ${req.parent}`);
      const all = [...queues.values()].filter((q) => q.name.startsWith(`${req.parent}/queues/`)).sort((a, b) => a.name.localeCompare(b.name));
      const { slice, nextPageToken } = page(all, req.pageSize, req.pageToken);
      return { queues: slice.map(queueView), nextPageToken };
    },
    CreateTask(req: { parent: string; task?: any; responseView?: string }) {
      const q = requireQueue(req.parent);
      const t = req.task;
      const hr = t?.httpRequest;
      if (!hr) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Only HTTP tasks (task.httpRequest) are supported');
      if (!/^https?:\/\//.test(hr.url ?? '')) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'task.httpRequest.url must be an http(s) URL');
      if (hr.oauthToken) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'oauthToken is not supported here; use oidcToken');
      const now = Date.now();
      let name: string = t.name ?? '';
      if (name) {
        const m = TASK_RE.exec(name);
        if (!m || m[1] !== q.name) throw new RpcError(grpc.status.INVALID_ARGUMENT, `Invalid task name: ${name}`);
        if (tasks.has(name) || isReserved(name, now)) throw new RpcError(grpc.status.ALREADY_EXISTS, `Task already exists: ${name}`);
      } else {
        do name = `${q.name}/tasks/${randomInt(1e9, 1e10 - 1)}${randomInt(1e9, 1e10 - 1)}`;
        while (tasks.has(name));
      }
      const requested = toMs(t.scheduleTime) ?? 0;
      if (requested > now + MAX_SCHEDULE_AHEAD_MS) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'scheduleTime is more than 30 days ahead');
      const scheduleTime = requested > now ? requested : now;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries((hr.headers ?? {}) as Record<string, string>)) headers[k] = v;
      const oidc = hr.oidcToken
        ? { serviceAccountEmail: hr.oidcToken.serviceAccountEmail as string, audience: (hr.oidcToken.audience as string) || '' }
        : undefined;
      if (oidc && !oidc.serviceAccountEmail) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'oidcToken.serviceAccountEmail is required');
      const rec: TaskRecord = {
        name,
        queue: q.name,
        url: hr.url,
        method: !hr.httpMethod || hr.httpMethod === 'HTTP_METHOD_UNSPECIFIED' ? 'POST' : hr.httpMethod,
        headers,
        body: Buffer.from(hr.body ?? Buffer.alloc(0)),
        oidc,
        createTime: now,
        scheduleTime,
        dueAt: now + (scheduleTime - now) * timeScale,
        dispatchDeadlineMs: toMs(t.dispatchDeadline) || DEFAULT_DISPATCH_DEADLINE_MS,
        dispatchCount: 0,
        responseCount: 0,
        executionCount: 0,
        inFlight: false,
      };
      tasks.set(name, rec);
      pump();
      return taskView(rec, req.responseView ?? 'BASIC');
    },
    GetTask(req: { name: string; responseView?: string }) {
      const rec = tasks.get(req.name);
      if (!rec) throw new RpcError(grpc.status.NOT_FOUND, `Task does not exist: ${req.name}`);
      return taskView(rec, req.responseView ?? 'BASIC');
    },
    ListTasks(req: { parent: string; responseView?: string; pageSize?: number; pageToken?: string }) {
      requireQueue(req.parent);
      const all = [...tasks.values()].filter((r) => r.queue === req.parent).sort((a, b) => a.scheduleTime - b.scheduleTime || a.name.localeCompare(b.name));
      const { slice, nextPageToken } = page(all, req.pageSize, req.pageToken);
      return { tasks: slice.map((r) => taskView(r, req.responseView ?? 'BASIC')), nextPageToken };
    },
    DeleteTask(req: { name: string }) {
      const rec = tasks.get(req.name);
      if (!rec) throw new RpcError(grpc.status.NOT_FOUND, `Task does not exist: ${req.name}`);
      retire(rec);
      pump();
      checkIdle();
      return {};
    },
  };
  /* eslint-enable @typescript-eslint/no-explicit-any */

  // ---------- dispatcher ----------

  function checkIdle(): void {
    if (tasks.size > 0 || inFlight > 0) return;
    for (const w of idleWaiters.splice(0)) w.resolve();
  }

  function retryPolicy(queueName: string) {
    const rc = queues.get(queueName)?.retryConfig ?? {};
    return {
      maxAttempts: rc.maxAttempts ?? defaults.maxAttempts,
      minBackoffMs: rc.minBackoffMs ?? defaults.minBackoffMs,
      maxBackoffMs: rc.maxBackoffMs ?? defaults.maxBackoffMs,
      maxDoublings: rc.maxDoublings ?? defaults.maxDoublings,
    };
  }

  /** Starts every due task the concurrency limit allows, then arms one timer for the next. */
  function pump(): void {
    if (stopped) return;
    const now = Date.now();
    let next = Infinity;
    if (!paused) {
      const due = [...tasks.values()].filter((r) => !r.inFlight).sort((a, b) => a.dueAt - b.dueAt);
      for (const rec of due) {
        if (rec.dueAt > now) {
          next = rec.dueAt;
          break;
        }
        if (inFlight >= maxConcurrent) break;
        const fault = dispatchFault?.({ name: rec.name, queue: rec.queue, url: rec.url, body: rec.body, attempt: rec.dispatchCount + 1 });
        if (dropRemaining > 0 || fault === 'drop') {
          if (fault !== 'drop') dropRemaining--;
          deliveries.push({ taskName: rec.name, queue: rec.queue, url: rec.url, attempt: rec.dispatchCount + 1, status: null, outcome: 'dropped', at: now });
          retire(rec);
          continue;
        }
        void deliver(rec, fault);
      }
    }
    if (next !== timerDueAt) {
      if (timer) clearTimeout(timer);
      timer = undefined;
      timerDueAt = next;
      if (next !== Infinity) {
        timer = setTimeout(
          () => {
            timer = undefined;
            timerDueAt = Infinity;
            pump();
          },
          Math.min(MAX_TIMER_MS, Math.max(0, next - now)),
        );
      }
    }
    checkIdle();
  }

  /** An extra delivery of the same request: recorded, but it never changes the task's state. */
  async function deliverDuplicate(rec: TaskRecord, headers: Record<string, string>, attempt: number): Promise<void> {
    inFlight++;
    const at = Date.now();
    let status: number | null = null;
    let error: string | undefined;
    try {
      if (stopped) throw new Error('server stopped');
      status = (await send(rec, headers)).status;
    } catch (e) {
      error = e instanceof Error ? (e as NodeJS.ErrnoException).code ?? e.name : 'error';
    }
    inFlight--;
    if (stopped) return;
    deliveries.push({ taskName: rec.name, queue: rec.queue, url: rec.url.split('?')[0], attempt, status, outcome: 'duplicate', at, ...(error ? { error } : {}) });
    pump();
  }

  async function deliver(rec: TaskRecord, fault?: DispatchFault): Promise<void> {
    rec.inFlight = true;
    inFlight++;
    const attempt = rec.dispatchCount + 1;
    const dispatchTime = Date.now();
    const [queueShort, taskShort] = [rec.queue.split('/').pop() ?? '', rec.name.split('/').pop() ?? ''];
    const headers: Record<string, string> = { ...rec.headers };
    // Cloud Tasks owns these headers and overrides whatever the task set.
    for (const k of Object.keys(headers)) {
      const lower = k.toLowerCase();
      if (lower === 'host' || lower === 'content-length' || lower === 'user-agent' || lower.startsWith('x-cloudtasks-') || lower.startsWith('x-google-') || lower.startsWith('x-appengine-')) {
        delete headers[k];
      }
    }
    if (rec.body.length > 0 && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/octet-stream';
    headers['User-Agent'] = 'Google-Cloud-Tasks';
    headers['X-CloudTasks-QueueName'] = queueShort;
    headers['X-CloudTasks-TaskName'] = taskShort;
    headers['X-CloudTasks-TaskRetryCount'] = String(rec.dispatchCount);
    headers['X-CloudTasks-TaskExecutionCount'] = String(rec.executionCount);
    headers['X-CloudTasks-TaskETA'] = (rec.scheduleTime / 1000).toFixed(6);
    if (rec.previousResponse !== undefined) headers['X-CloudTasks-TaskPreviousResponse'] = String(rec.previousResponse);

    let status: number | null = null;
    let retryAfterMs: number | undefined;
    let error: string | undefined;
    try {
      if (rec.oidc) {
        const sub = numericSubject(rec.oidc.serviceAccountEmail);
        const token = await opts.oidcIssuer.sign({
          aud: rec.oidc.audience || rec.url,
          azp: sub,
          sub,
          email: rec.oidc.serviceAccountEmail,
          email_verified: true,
        });
        headers.Authorization = `Bearer ${token}`;
      }
      if (stopped) throw new Error('server stopped');
      if (fault === 'duplicate') void deliverDuplicate(rec, { ...headers }, attempt);
      const res = await send(rec, headers);
      if (fault === 'duplicate-after') void deliverDuplicate(rec, { ...headers }, attempt);
      status = res.status;
      retryAfterMs = parseRetryAfter(res.retryAfter, Date.now());
    } catch (e) {
      // Only the error's kind: a URL's query string could hold credentials.
      error = e instanceof Error ? (e as NodeJS.ErrnoException).code ?? e.name : 'error';
    }
    inFlight--;
    rec.inFlight = false;
    if (stopped) return;

    const now = Date.now();
    const base = { taskName: rec.name, queue: rec.queue, url: rec.url.split('?')[0], attempt, status, at: dispatchTime, ...(error ? { error } : {}) };
    if (tasks.get(rec.name) !== rec) {
      deliveries.push({ ...base, outcome: 'deleted-meanwhile' });
      pump();
      return;
    }
    rec.dispatchCount = attempt;
    const record: AttemptRecord = { scheduleTime: rec.scheduleTime, dispatchTime, responseTime: status === null ? undefined : now, status };
    rec.firstAttempt ??= record;
    rec.lastAttempt = record;
    if (status !== null) {
      rec.responseCount++;
      rec.previousResponse = status;
      if (status < 500) rec.executionCount++;
    }
    const policy = retryPolicy(rec.queue);
    if (status !== null && status >= 200 && status < 300) {
      deliveries.push({ ...base, outcome: 'done' });
      retire(rec);
    } else if (attempt >= policy.maxAttempts) {
      deliveries.push({ ...base, outcome: 'gave-up' });
      retire(rec);
    } else {
      const doublings = Math.min(attempt - 1, policy.maxDoublings);
      let waitMs = Math.min(policy.minBackoffMs * 2 ** doublings, policy.maxBackoffMs);
      // A throttling answer says when to come back; honour it over the computed backoff.
      if ((status === 503 || status === 429) && retryAfterMs !== undefined) waitMs = retryAfterMs;
      const scaled = waitMs * timeScale;
      rec.scheduleTime = now + waitMs;
      rec.dueAt = now + scaled;
      deliveries.push({ ...base, outcome: 'retry', nextDelayMs: scaled });
    }
    pump();
  }

  function send(rec: TaskRecord, headers: Record<string, string>): Promise<{ status: number; retryAfter?: string }> {
    const url = new URL(rec.url);
    const isHttps = url.protocol === 'https:';
    const abort = new AbortController();
    aborts.add(abort);
    return new Promise<{ status: number; retryAfter?: string }>((resolve, reject) => {
      const req = (isHttps ? https : http).request(
        url,
        { method: rec.method, headers: { ...headers, 'Content-Length': String(rec.body.length) }, agent: isHttps ? httpsAgent : httpAgent, signal: abort.signal, timeout: rec.dispatchDeadlineMs },
        (res) => {
          // The answer's body does not matter; drain it so the socket closes.
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('dispatch deadline exceeded'), { code: 'DEADLINE_EXCEEDED' })));
      req.on('error', reject);
      req.end(rec.body);
    }).finally(() => aborts.delete(abort));
  }

  // ---------- gRPC server ----------

  const protos = JSON.parse(readFileSync(PROTOS_JSON, 'utf8')) as Parameters<GrpcClient['loadProtoJSON']>[0];
  const pkg = new GrpcClient().loadProtoJSON(protos) as unknown as {
    google: { cloud: { tasks: { v2: { CloudTasks: { service: grpc.ServiceDefinition } } } } };
  };
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    implementation[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        callback(null, handler(call.request));
      } catch (e) {
        if (e instanceof RpcError) callback({ code: e.code, details: e.message });
        else callback({ code: grpc.status.INTERNAL, details: e instanceof Error ? e.message : String(e) });
      }
    };
  }
  // Methods left out (UpdateQueue, PauseQueue, RunTask, IAM...) answer UNIMPLEMENTED.
  const server = new grpc.Server();
  server.addService(pkg.google.cloud.tasks.v2.CloudTasks.service, implementation);
  const bindHost = opts.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );

  return {
    host: `${bindHost}:${port}`,
    port,
    deliveries,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (const a of aborts) a.abort();
      httpAgent.destroy();
      httpsAgent.destroy();
      for (const w of idleWaiters.splice(0)) w.reject(new Error('Cloud Tasks server stopped'));
      await new Promise<void>((resolve) => {
        // Give open client channels a moment to finish, then cut them.
        const force = setTimeout(() => server.forceShutdown(), 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
    pendingCount: () => tasks.size,
    inFlightCount: () => inFlight,
    idle() {
      if (tasks.size === 0 && inFlight === 0) return Promise.resolve();
      if (stopped) return Promise.reject(new Error('Cloud Tasks server stopped'));
      return new Promise<void>((resolve, reject) => idleWaiters.push({ resolve, reject }));
    },
    tasks: () =>
      [...tasks.values()].map((r) => ({
        name: r.name,
        queue: r.queue,
        url: r.url,
        method: r.method,
        headers: { ...r.headers },
        body: Buffer.from(r.body),
        createTime: r.createTime,
        scheduleTime: r.scheduleTime,
        dueAt: r.dueAt,
        dispatchCount: r.dispatchCount,
        responseCount: r.responseCount,
        inFlight: r.inFlight,
      })),
    pause() {
      paused = true;
      pump();
    },
    resume() {
      paused = false;
      pump();
    },
    dropNext(n: number) {
      dropRemaining += n;
    },
    setDispatchFault(hook) {
      dispatchFault = hook;
    },
    ensureQueue(name: string) {
      if (!QUEUE_RE.test(name)) throw new Error(`Invalid queue name: ${name}`);
      ensureQueue(name);
    },
  };
}
