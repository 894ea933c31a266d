/**
 * A local stand-in for the Google Data Portability API and for the signed Cloud Storage URLs its
 * archives are served from. It is the only thing in the project that pretends to be Google, so it
 * follows /work/shared/DATA-PORTABILITY-API.md: the same routes, names, states, error bodies
 * (`{error: {code, message, status, details: [ErrorInfo]}}`) and rules (one-time exhaustion,
 * 24-hour cooldown, ALREADY_EXISTS with the running job's id, retry only on FAILED at most 3 times,
 * cancel only IN_PROGRESS, reset revokes the grant).
 *
 * Time comes from the `now` clock, so a job that "takes three days" or a URL that "expires after
 * six hours" is tested in milliseconds. Job states are derived lazily from the clock whenever a
 * job is looked at; there are no timers.
 *
 * Simplifications (documented so nobody relies on them being Google's behaviour):
 * - One-time exhaustion and the time-based cooldown are kept per Google user and resource, across
 *   grants, and cleared by `authorization.reset` (the docs: reset "lets the app initiate again
 *   after new consent"). A new consent without reset stays exhausted.
 * - `metadata.previous_job_ids` is a comma-separated list.
 * - Download URLs are `http://127.0.0.1:PORT/download/{id}?X-Goog-…` (real ones are
 *   `https://storage.googleapis.com/{bucket}/{object}?X-Goog-…`), signed with an HMAC instead of RSA.
 *
 * Faults (for tests), all one-shot counters unless said otherwise:
 * - `failNextJobs(resource, n, googleUserId?)`: the next n jobs (new or retried) that include the
 *   resource end FAILED; with a Google user, only that user's jobs (deterministic under concurrency).
 * - `urlsPerJob(resource, n)`: jobs created from now on for the resource return n archives
 *   (n >= 2: the first is a small archive-browser zip, then data zips). Sticky.
 * - `markIncomplete(resource, incomplete = true)`: archives of jobs created from now on say, in
 *   their `Portability/archive_browser.json`, that Google marked the service incomplete. Sticky.
 * - `jobDuration(resource, ms)`: jobs created from now on for the resource take ms. Sticky.
 * - `jobDurationFor(googleUserId, ms)`: the same for one Google user's jobs (wins over the above).
 * - `failNextCalls(method, status, count, retryAfterSeconds?)`: the next count calls of a method
 *   ('download' included) answer status (429/500/503/…) with Google's body and `Retry-After`.
 * - `expireNextDownloadAfterBytes(n)`: "the URL expired during the copy": the next download sends
 *   its headers (full Content-Length) and n body bytes, then the connection is cut; that URL is
 *   expired from then on (400 ExpiredToken), so the copier must fetch fresh URLs with getState.
 * - `expireAllUrls()`: every URL issued so far answers 400 ExpiredToken.
 * - `interruptDownload(url, {afterFraction, expire?, onCut?})`: like the above, but for the next
 *   download of that one URL (so concurrent copies cannot take each other's fault): the connection
 *   is cut after that fraction of the body; the URL stays valid unless `expire`. `onCut` runs when
 *   the cut happens (the chaos run kills the copying "instance" then).
 * - `throttleDownloads(bytesPerSecond | undefined)`: downloads of that resource's archives are
 *   sent at about that rate (a slow source, so a test can act while a copy runs). Sticky.
 * - `retriesAllowed(n)`: Google lets each original job be retried n times from now on instead of
 *   `maxRetries` (3), so a test can tell the pipeline's own retry cap from Google's. Sticky.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isKnownResourceGroup } from '../functions/src/domain/resource-groups';
import type { GoogleAccounts, SimAccessType, SimGrant } from './google-accounts';
import { writeZipArchive } from './zip-archive';

export type SimMethod = 'initiate' | 'getState' | 'retry' | 'cancel' | 'reset' | 'checkAccessType' | 'download';
export type SimJobState = 'IN_PROGRESS' | 'COMPLETE' | 'FAILED' | 'CANCELLED';

export interface PortabilityApiSimulatorOptions {
  accounts: GoogleAccounts;
  /** Clock in epoch ms; default: the accounts' clock (Date.now unless the accounts were given one). */
  now?: () => number;
  /** How long a job stays IN_PROGRESS (default 3000 ms). */
  jobDurationMs?: number;
  /** Lifetime of a signed URL (default 6 h). */
  urlTtlMs?: number;
  /** How long archives stay downloadable after the job completed (default 14 days). */
  dataTtlMs?: number;
  /** Approximate size of each data zip (default ~2 MB). */
  archiveBytes?: number;
  /** Where zips are written; default a fresh temp dir, removed by stop(). */
  dataDir?: string;
  /** Length of the time-based cooldown "day" (default 24 h). */
  dayMs?: number;
  /** Retries allowed per original job (default 3). */
  maxRetries?: number;
}

export interface SimCall {
  method: SimMethod;
  /** HTTP status answered. */
  status: number;
  jobId?: string;
  quotaUser?: string;
  at: number;
}

export interface SimArchive {
  path: string;
  size: number;
  crc32c: string;
  md5: string;
  kind: 'data' | 'archive-browser';
}

export interface SimJobView {
  id: string;
  googleUserId: string;
  grantId: string;
  resources: string[];
  accessType: SimAccessType;
  state: SimJobState;
  createdAt: number;
  /** When it left IN_PROGRESS (by the clock). */
  finishedAt?: number;
  startTime?: string;
  endTime?: string;
  exportTime: string;
  /** The first job of a retry chain (itself when not a retry). */
  originalJobId: string;
  retryOf?: string;
  archiveCount: number;
  /** Present once generated (after the job was seen COMPLETE). */
  archives?: SimArchive[];
}

export interface SimFaults {
  failNextJobs(resource: string, times: number, googleUserId?: string): void;
  urlsPerJob(resource: string, n: number): void;
  /** Archives of jobs created from now on for the resource say, in `Portability/archive_browser.json`, that Google marked it incomplete. Sticky. */
  markIncomplete(resource: string, incomplete?: boolean): void;
  jobDuration(resource: string, ms: number): void;
  /** Jobs created from now on for this Google user take ms, whatever the resource. Sticky; wins over jobDuration. */
  jobDurationFor(googleUserId: string, ms: number): void;
  failNextCalls(method: SimMethod, status: number, count: number, retryAfterSeconds?: number): void;
  expireNextDownloadAfterBytes(bytes: number): void;
  expireAllUrls(): void;
  interruptDownload(url: string, opts: { afterFraction: number; expire?: boolean; onCut?: () => void }): void;
  throttleDownloads(resource: string, bytesPerSecond: number | undefined): void;
  retriesAllowed(n: number): void;
  /** Clears every fault. */
  clear(): void;
}

export interface PortabilityApiSimulator {
  /** e.g. `http://127.0.0.1:PORT/` (the API root, like `https://dataportability.googleapis.com/`) */
  apiRoot: string;
  /** `127.0.0.1:PORT`: the host of the signed archive URLs (for an allow-list) */
  archiveHost: string;
  stop(): Promise<void>;
  faults: SimFaults;
  jobs(): SimJobView[];
  /** Every API call and download, in order. Never holds tokens or URLs. */
  calls: SimCall[];
}

interface Job {
  id: string;
  googleUserId: string;
  grantId: string;
  resources: string[];
  accessType: SimAccessType;
  state: SimJobState;
  createdAt: number;
  durationMs: number;
  willFail: boolean;
  finishedAt?: number;
  startTime?: string;
  endTime?: string;
  exportTime: string;
  originalJobId: string;
  retryOf?: string;
  archiveCount: number;
  /** Resources its archives' index marks incomplete. */
  incomplete: string[];
  archives?: SimArchive[];
  archivesPromise?: Promise<SimArchive[]>;
}

interface IssuedUrl {
  jobId: string;
  index: number;
  expired: boolean;
}

class HttpError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
    readonly reason?: string,
    readonly metadata: Record<string, string> = {},
    readonly domain = 'dataportability.googleapis.com',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const RPC_METHOD: Record<Exclude<SimMethod, 'download'>, string> = {
  initiate: 'google.dataportability.v1.DataPortabilityService.InitiatePortabilityArchive',
  getState: 'google.dataportability.v1.DataPortabilityService.GetPortabilityArchiveState',
  retry: 'google.dataportability.v1.DataPortabilityService.RetryPortabilityArchive',
  cancel: 'google.dataportability.v1.DataPortabilityService.CancelPortabilityArchive',
  reset: 'google.dataportability.v1.DataPortabilityService.ResetAuthorization',
  checkAccessType: 'google.dataportability.v1.DataPortabilityService.CheckAccessType',
};

const STATUS_NAME: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
const MAX_BODY = 1024 * 1024;

function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

/** `20261122T100000Z`, the X-Goog-Date format. */
function googDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function parseGoogDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : undefined;
}

function xmlError(code: string, message: string, details?: string): string {
  return `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>${message}</Message>${details ? `<Details>${details}</Details>` : ''}</Error>`;
}

export async function startPortabilityApiSimulator(opts: PortabilityApiSimulatorOptions): Promise<PortabilityApiSimulator> {
  const accounts = opts.accounts;
  const now = opts.now ?? (() => accounts.now());
  const defaultDurationMs = opts.jobDurationMs ?? 3000;
  const urlTtlMs = opts.urlTtlMs ?? 6 * 3_600_000;
  const dataTtlMs = opts.dataTtlMs ?? 14 * 86_400_000;
  const archiveBytes = opts.archiveBytes ?? 2 * 1024 * 1024;
  const dayMs = opts.dayMs ?? 86_400_000;
  let maxRetries = opts.maxRetries ?? 3;
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'portability-sim-')));
  const urlSecret = randomBytes(32);

  const jobs = new Map<string, Job>();
  const urls = new Map<string, IssuedUrl>();
  /** googleUserId → epoch ms of the last authorization.reset */
  const resetAt = new Map<string, number>();
  const calls: SimCall[] = [];

  const failJobs = new Map<string, number>();
  const urlCounts = new Map<string, number>();
  const incompleteResources = new Set<string>();
  const durations = new Map<string, number>();
  const userDurations = new Map<string, number>();
  const callFaults = new Map<SimMethod, { status: number; retryAfterSeconds?: number }[]>();
  let cutNextDownloadAfter: number | undefined;
  const downloadRates = new Map<string, number>();
  const userFailJobs = new Map<string, number>();
  const urlInterruptions = new Map<string, { afterFraction: number; expire: boolean; onCut?: () => void }>();
  const urlIdOf = (url: string): string => /\/download\/([0-9a-f]{1,64})(?:\?|$)/.exec(url)?.[1] ?? url;

  const faults: SimFaults = {
    failNextJobs: (resource, times, googleUserId) => {
      if (googleUserId === undefined) failJobs.set(resource, (failJobs.get(resource) ?? 0) + times);
      else userFailJobs.set(`${googleUserId}\n${resource}`, (userFailJobs.get(`${googleUserId}\n${resource}`) ?? 0) + times);
    },
    urlsPerJob: (resource, n) => void urlCounts.set(resource, Math.max(1, Math.floor(n))),
    markIncomplete: (resource, incomplete = true) => void (incomplete ? incompleteResources.add(resource) : incompleteResources.delete(resource)),
    jobDuration: (resource, ms) => void durations.set(resource, ms),
    jobDurationFor: (googleUserId, ms) => void userDurations.set(googleUserId, ms),
    failNextCalls: (method, status, count, retryAfterSeconds) => {
      const q = callFaults.get(method) ?? [];
      for (let i = 0; i < count; i++) q.push({ status, retryAfterSeconds });
      callFaults.set(method, q);
    },
    expireNextDownloadAfterBytes: (bytes) => {
      cutNextDownloadAfter = Math.max(0, Math.floor(bytes));
    },
    expireAllUrls: () => {
      for (const u of urls.values()) u.expired = true;
    },
    interruptDownload: (url, o) => {
      urlInterruptions.set(urlIdOf(url), { afterFraction: Math.min(1, Math.max(0, o.afterFraction)), expire: o.expire ?? false, ...(o.onCut ? { onCut: o.onCut } : {}) });
    },
    throttleDownloads: (resource, rate) => void (rate === undefined ? downloadRates.delete(resource) : downloadRates.set(resource, rate)),
    retriesAllowed: (n) => {
      maxRetries = Math.max(0, Math.floor(n));
    },
    clear: () => {
      maxRetries = opts.maxRetries ?? 3;
      downloadRates.clear();
      failJobs.clear();
      urlCounts.clear();
      durations.clear();
      userDurations.clear();
      callFaults.clear();
      cutNextDownloadAfter = undefined;
      userFailJobs.clear();
      urlInterruptions.clear();
    },
  };

  // ---------- jobs ----------

  /** Moves a job along by the clock: IN_PROGRESS ends (COMPLETE or FAILED) once its duration passed. */
  function refresh(job: Job): Job {
    if (job.state === 'IN_PROGRESS' && now() >= job.createdAt + job.durationMs) {
      job.state = job.willFail ? 'FAILED' : 'COMPLETE';
      job.finishedAt = job.createdAt + job.durationMs;
    }
    return job;
  }

  function createJob(base: Omit<Job, 'id' | 'state' | 'createdAt' | 'durationMs' | 'willFail' | 'archiveCount' | 'incomplete' | 'originalJobId'> & { originalJobId?: string }): Job {
    let willFail = false;
    for (const r of base.resources) {
      const left = failJobs.get(r) ?? 0;
      if (left > 0) {
        failJobs.set(r, left - 1);
        willFail = true;
      }
      const key = `${base.googleUserId}\n${r}`;
      const userLeft = userFailJobs.get(key) ?? 0;
      if (userLeft > 0) {
        userFailJobs.set(key, userLeft - 1);
        willFail = true;
      }
    }
    const id = randomUUID();
    const job: Job = {
      ...base,
      id,
      originalJobId: base.originalJobId ?? id,
      state: 'IN_PROGRESS',
      createdAt: now(),
      durationMs: userDurations.get(base.googleUserId) ?? Math.max(0, ...base.resources.map((r) => durations.get(r) ?? defaultDurationMs)),
      willFail,
      archiveCount: Math.max(1, ...base.resources.map((r) => urlCounts.get(r) ?? 1)),
      incomplete: base.resources.filter((r) => incompleteResources.has(r)),
    };
    jobs.set(id, job);
    return job;
  }

  function ensureArchives(job: Job): Promise<SimArchive[]> {
    job.archivesPromise ??= (async () => {
      const out: SimArchive[] = [];
      for (let i = 0; i < job.archiveCount; i++) {
        const kind = job.archiveCount >= 2 && i === 0 ? 'archive-browser' : 'data';
        const file = path.join(dataDir, `${job.id}-${i}.zip`);
        const r = await writeZipArchive(file, {
          seed: `${job.id}/${i}`,
          approxBytes: kind === 'archive-browser' ? Math.min(archiveBytes, 32 * 1024) : archiveBytes,
          resource: job.resources.join('+'),
          kind,
          incompleteServices: job.incomplete,
        });
        out.push({ path: file, size: r.size, crc32c: r.crc32c, md5: r.md5, kind });
      }
      job.archives = out;
      return out;
    })();
    return job.archivesPromise;
  }

  function view(job: Job): SimJobView {
    refresh(job);
    return {
      id: job.id,
      googleUserId: job.googleUserId,
      grantId: job.grantId,
      resources: [...job.resources],
      accessType: job.accessType,
      state: job.state,
      createdAt: job.createdAt,
      finishedAt: job.finishedAt,
      startTime: job.startTime,
      endTime: job.endTime,
      exportTime: job.exportTime,
      originalJobId: job.originalJobId,
      retryOf: job.retryOf,
      archiveCount: job.archiveCount,
      archives: job.archives?.map((a) => ({ ...a })),
    };
  }

  function signUrl(urlId: string, date: string, expires: string): string {
    return createHmac('sha256', urlSecret).update(`${urlId}\n${date}\n${expires}`).digest('hex');
  }

  function issueUrl(job: Job, index: number): string {
    const urlId = randomBytes(16).toString('hex');
    urls.set(urlId, { jobId: job.id, index, expired: false });
    const t = now();
    const date = googDate(t);
    const expires = String(Math.ceil(urlTtlMs / 1000));
    const q = new URLSearchParams({
      'X-Goog-Algorithm': 'GOOG4-RSA-SHA256',
      'X-Goog-Credential': `portability-archives@sim.iam.gserviceaccount.com/${date.slice(0, 8)}/auto/storage/goog4_request`,
      'X-Goog-Date': date,
      'X-Goog-Expires': expires,
      'X-Goog-SignedHeaders': 'host',
      'X-Goog-Signature': signUrl(urlId, date, expires),
    });
    return `http://${archiveHost}/download/${urlId}?${q.toString()}`;
  }

  // ---------- API handlers ----------

  function authenticate(req: http.IncomingMessage, method: Exclude<SimMethod, 'download'>): SimGrant {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    const www = { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/", error="invalid_token"' };
    const meta = { service: 'dataportability.googleapis.com', method: RPC_METHOD[method] };
    if (!m) {
      throw new HttpError(
        401,
        'UNAUTHENTICATED',
        'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        'CREDENTIALS_MISSING',
        meta,
        'googleapis.com',
        www,
      );
    }
    const grant = accounts.resolveAccessToken(m[1]);
    if (!grant) {
      const known = accounts.accessTokens.get(m[1]);
      const expired = known !== undefined && known.expiresAt <= now();
      throw new HttpError(
        401,
        'UNAUTHENTICATED',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        expired ? 'ACCESS_TOKEN_EXPIRED' : 'ACCESS_TOKEN_TYPE_UNSUPPORTED',
        meta,
        'googleapis.com',
        www,
      );
    }
    return grant;
  }

  function checkBodyKeys(body: Record<string, unknown>, allowed: string[]): void {
    for (const k of Object.keys(body)) {
      if (!allowed.includes(k)) throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid JSON payload received. Unknown name "${k}": Cannot find field.`);
    }
  }

  function parseTime(field: string, v: unknown): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) {
      throw new HttpError(400, 'INVALID_ARGUMENT', `Invalid value at '${field}' (type.googleapis.com/google.protobuf.Timestamp), Field '${field}', Illegal timestamp format; timestamps must end with 'Z' or have a valid timezone offset.`);
    }
    return Date.parse(v);
  }

  function ownJob(grant: SimGrant, jobId: string): Job {
    const job = jobs.get(jobId);
    // Jobs belong to the Google user (and project), not to one grant: a new consent still sees them.
    if (!job || job.googleUserId !== grant.googleUserId) throw new HttpError(404, 'NOT_FOUND', 'Requested entity was not found.');
    return refresh(job);
  }

  function sinceReset(job: Job): boolean {
    return job.createdAt >= (resetAt.get(job.googleUserId) ?? -Infinity);
  }

  function initiate(grant: SimGrant, body: Record<string, unknown>): { archiveJobId: string; accessType: string } {
    checkBodyKeys(body, ['resources', 'startTime', 'endTime']);
    const resources = body.resources;
    if (!Array.isArray(resources) || resources.length === 0 || !resources.every((r) => typeof r === 'string' && r.length > 0)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument: resources must name at least one resource group.');
    }
    const unknown = resources.filter((r: string) => !isKnownResourceGroup(r));
    if (unknown.length > 0) throw new HttpError(400, 'INVALID_ARGUMENT', `Request contains an invalid argument: unknown resource group "${String(unknown[0])}".`);
    const start = parseTime('start_time', body.startTime);
    const end = parseTime('end_time', body.endTime);
    if (start !== undefined && end !== undefined && !(start < end)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument: start_time must be before end_time.');
    }
    const wanted = [...new Set(resources as string[])].sort();
    if (!wanted.every((r) => grant.resources.includes(r))) {
      throw new HttpError(403, 'PERMISSION_DENIED', 'The requested resources are not authorized by the OAuth token.');
    }
    for (const j of jobs.values()) refresh(j);

    const same = [...jobs.values()].find(
      (j) => j.grantId === grant.grantId && j.state === 'IN_PROGRESS' && j.resources.length === wanted.length && j.resources.every((r, i) => r === wanted[i]),
    );
    if (same) {
      const reason = grant.accessType === 'ONE_TIME' ? 'ALREADY_EXISTS_ONE_TIME' : 'ALREADY_EXISTS_TIME_BASED';
      throw new HttpError(409, 'ALREADY_EXISTS', `An archive job for the requested resources already exists: ${same.id}.`, reason, { job_id: same.id });
    }
    const userJobs = [...jobs.values()].filter((j) => j.googleUserId === grant.googleUserId && sinceReset(j) && j.resources.some((r) => wanted.includes(r)));
    if (grant.accessType === 'ONE_TIME') {
      const used = userJobs.filter((j) => j.accessType === 'ONE_TIME' && j.state === 'COMPLETE');
      if (used.length > 0) {
        throw new HttpError(
          429,
          'RESOURCE_EXHAUSTED',
          'Requested resources have already been exported with one-time access; the user must authorize again.',
          'RESOURCE_EXHAUSTED_ONE_TIME',
          { previous_job_ids: used.map((j) => j.id).join(',') },
        );
      }
    } else {
      const recent = userJobs.filter((j) => j.accessType === 'TIME_BASED' && (j.state === 'COMPLETE' || j.state === 'IN_PROGRESS'));
      const last = Math.max(-Infinity, ...recent.map((j) => j.createdAt));
      if (now() < last + dayMs) {
        throw new HttpError(
          400,
          'FAILED_PRECONDITION',
          'Requested resources have already been exported in the last 24 hours with time-based access.',
          'RESOURCE_EXHAUSTED_TIME_BASED',
          { timestamp_after_24hrs: rfc3339(last + dayMs) },
        );
      }
    }
    const job = createJob({
      googleUserId: grant.googleUserId,
      grantId: grant.grantId,
      resources: wanted,
      accessType: grant.accessType,
      startTime: start === undefined ? undefined : rfc3339(start),
      endTime: end === undefined ? undefined : rfc3339(end),
      exportTime: rfc3339(end ?? now()),
    });
    return { archiveJobId: job.id, accessType: grant.accessType === 'ONE_TIME' ? 'ACCESS_TYPE_ONE_TIME' : 'ACCESS_TYPE_TIME_BASED' };
  }

  async function getState(grant: SimGrant, jobId: string): Promise<Record<string, unknown>> {
    const job = ownJob(grant, jobId);
    const out: Record<string, unknown> = { name: `archiveJobs/${job.id}/portabilityArchiveState`, state: job.state };
    // proto3 JSON omits empty repeated fields: urls only appear on COMPLETE.
    if (job.state === 'COMPLETE') {
      const archives = await ensureArchives(job);
      out.urls = archives.map((_, i) => issueUrl(job, i));
    }
    if (job.startTime) out.startTime = job.startTime;
    out.exportTime = job.exportTime;
    return out;
  }

  function retry(grant: SimGrant, jobId: string): { archiveJobId: string } {
    const job = ownJob(grant, jobId);
    if (job.state !== 'FAILED') {
      throw new HttpError(400, 'FAILED_PRECONDITION', `Only a FAILED archive job can be retried; this job is ${job.state}.`);
    }
    const used = [...jobs.values()].filter((j) => j.originalJobId === job.originalJobId && j.retryOf !== undefined).length;
    if (used >= maxRetries) {
      throw new HttpError(400, 'FAILED_PRECONDITION', `The archive job has already been retried ${maxRetries} times.`);
    }
    const next = createJob({
      googleUserId: job.googleUserId,
      grantId: job.grantId,
      resources: job.resources,
      accessType: job.accessType,
      startTime: job.startTime,
      endTime: job.endTime,
      exportTime: job.exportTime,
      originalJobId: job.originalJobId,
      retryOf: job.id,
    });
    return { archiveJobId: next.id };
  }

  function cancel(grant: SimGrant, jobId: string): Record<string, never> {
    const job = ownJob(grant, jobId);
    if (job.state !== 'IN_PROGRESS') {
      throw new HttpError(400, 'FAILED_PRECONDITION', `Only an IN_PROGRESS archive job can be cancelled; this job is ${job.state}.`);
    }
    job.state = 'CANCELLED';
    job.finishedAt = now();
    return {};
  }

  function reset(grant: SimGrant): Record<string, never> {
    accounts.revoke(grant.grantId);
    resetAt.set(grant.googleUserId, now());
    return {};
  }

  function checkAccessType(grant: SimGrant): { oneTimeResources: string[]; timeBasedResources: string[] } {
    return grant.accessType === 'ONE_TIME'
      ? { oneTimeResources: [...grant.resources], timeBasedResources: [] }
      : { oneTimeResources: [], timeBasedResources: [...grant.resources] };
  }

  // ---------- HTTP plumbing ----------

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body, null, 2);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function sendApiError(res: http.ServerResponse, e: HttpError): void {
    const details = e.reason ? [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: e.reason, domain: e.domain, metadata: e.metadata }] : [];
    sendJson(res, e.httpStatus, { error: { code: e.httpStatus, message: e.message, status: e.status, details } }, e.headers);
  }

  function injectedFault(method: SimMethod): HttpError | undefined {
    const f = callFaults.get(method)?.shift();
    if (!f) return undefined;
    const headers: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'Retry-After': String(f.retryAfterSeconds) } : {};
    if (f.status === 429) {
      return new HttpError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric and limit of service dataportability.googleapis.com.', 'RATE_LIMIT_EXCEEDED', { service: 'dataportability.googleapis.com' }, 'googleapis.com', headers);
    }
    const status = STATUS_NAME[f.status] ?? (f.status >= 500 ? 'UNAVAILABLE' : 'INVALID_ARGUMENT');
    const message = f.status === 503 ? 'The service is currently unavailable.' : f.status === 500 ? 'Internal error encountered.' : `Injected fault ${f.status}.`;
    return new HttpError(f.status, status, message, undefined, {}, undefined, headers);
  }

  async function readJsonBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > MAX_BODY) throw new HttpError(413, 'INVALID_ARGUMENT', 'Request payload size exceeds the limit.');
      chunks.push(c);
    }
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (text === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received. Unexpected token.');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new HttpError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received. Expected an object.');
    }
    return parsed as Record<string, unknown>;
  }

  interface Route {
    method: Exclude<SimMethod, 'download'>;
    verb: 'GET' | 'POST';
    jobId?: string;
  }

  function route(verb: string, pathname: string): Route | undefined {
    let m: RegExpExecArray | null;
    if (verb === 'POST' && pathname === '/v1/portabilityArchive:initiate') return { method: 'initiate', verb };
    if (verb === 'POST' && pathname === '/v1/authorization:reset') return { method: 'reset', verb };
    if (verb === 'POST' && pathname === '/v1/accessType:check') return { method: 'checkAccessType', verb };
    if (verb === 'GET' && (m = /^\/v1\/archiveJobs\/([^/:]+)\/portabilityArchiveState$/.exec(pathname))) return { method: 'getState', verb, jobId: m[1] };
    if (verb === 'POST' && (m = /^\/v1\/archiveJobs\/([^/:]+):retry$/.exec(pathname))) return { method: 'retry', verb, jobId: m[1] };
    if (verb === 'POST' && (m = /^\/v1\/archiveJobs\/([^/:]+):cancel$/.exec(pathname))) return { method: 'cancel', verb, jobId: m[1] };
    return undefined;
  }

  async function handleApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, pathname: string): Promise<void> {
    const r = route(req.method ?? '', pathname);
    if (!r) {
      sendApiError(res, new HttpError(404, 'NOT_FOUND', `The requested URL ${pathname} was not found on this server.`));
      return;
    }
    const quotaUser = url.searchParams.get('quotaUser') ?? undefined;
    const call: SimCall = { method: r.method, status: 0, at: now() };
    if (r.jobId) call.jobId = r.jobId;
    if (quotaUser !== undefined) call.quotaUser = quotaUser;
    calls.push(call);
    try {
      if (quotaUser !== undefined && quotaUser.length > 40) throw new HttpError(400, 'INVALID_ARGUMENT', 'quotaUser must be at most 40 characters.');
      const fault = injectedFault(r.method);
      if (fault) throw fault;
      const grant = authenticate(req, r.method);
      const body = r.verb === 'POST' ? await readJsonBody(req) : {};
      if (r.method !== 'initiate') checkBodyKeys(body, []);
      let result: unknown;
      switch (r.method) {
        case 'initiate': {
          const out = initiate(grant, body);
          call.jobId = out.archiveJobId;
          result = out;
          break;
        }
        case 'getState':
          result = await getState(grant, r.jobId as string);
          break;
        case 'retry':
          result = retry(grant, r.jobId as string);
          break;
        case 'cancel':
          result = cancel(grant, r.jobId as string);
          break;
        case 'reset':
          result = reset(grant);
          break;
        case 'checkAccessType':
          result = checkAccessType(grant);
          break;
      }
      call.status = 200;
      sendJson(res, 200, result);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'INTERNAL', 'Internal error encountered.');
      if (!(err instanceof HttpError)) console.error('portability-api-simulator: unexpected error', err);
      call.status = e.httpStatus;
      sendApiError(res, e);
    }
  }

  function sendXml(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'Content-Type': 'application/xml; charset=UTF-8', 'Content-Length': Buffer.byteLength(body), ...headers });
    res.end(body);
  }

  async function handleDownload(req: http.IncomingMessage, res: http.ServerResponse, url: URL, urlId: string): Promise<void> {
    const call: SimCall = { method: 'download', status: 0, at: now() };
    calls.push(call);
    const fail = (status: number, code: string, message: string, details?: string, headers?: Record<string, string>) => {
      call.status = status;
      sendXml(res, status, xmlError(code, message, details), headers);
    };
    const fault = injectedFault('download');
    if (fault) {
      const code = fault.httpStatus === 429 ? 'SlowDown' : fault.httpStatus === 503 ? 'ServiceUnavailable' : 'InternalError';
      fail(fault.httpStatus, code, 'We encountered an internal error. Please try again.', undefined, fault.headers);
      return;
    }
    const issued = urls.get(urlId);
    if (issued) call.jobId = issued.jobId;
    const p = url.searchParams;
    const date = p.get('X-Goog-Date') ?? '';
    const expires = p.get('X-Goog-Expires') ?? '';
    const given = Buffer.from(p.get('X-Goog-Signature') ?? '', 'utf8');
    const expected = Buffer.from(signUrl(urlId, date, expires), 'utf8');
    if (!issued || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      fail(403, 'SignatureDoesNotMatch', 'Access denied.', 'The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.');
      return;
    }
    const dateMs = parseGoogDate(date);
    if (dateMs === undefined || !/^\d+$/.test(expires)) {
      fail(400, 'AuthorizationQueryParametersError', 'Invalid argument.', 'X-Goog-Date or X-Goog-Expires is malformed.');
      return;
    }
    const expiredAt = dateMs + Number(expires) * 1000;
    if (issued.expired || now() >= expiredAt) {
      fail(400, 'ExpiredToken', 'Invalid argument.', `The provided token has expired. Request signature expired at: ${rfc3339(Math.min(expiredAt, now()))}`);
      return;
    }
    const job = jobs.get(issued.jobId);
    if (!job || job.finishedAt === undefined || now() >= job.finishedAt + dataTtlMs) {
      fail(404, 'NoSuchKey', 'The specified key does not exist.', 'The archive is no longer available.');
      return;
    }
    const archive = (await ensureArchives(job))[issued.index];
    const size = archive.size;
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/zip',
      'Accept-Ranges': 'bytes',
      // x-goog-hash is the whole object's, also on a range response (as GCS does).
      'x-goog-hash': `crc32c=${archive.crc32c},md5=${archive.md5}`,
      'x-goog-stored-content-length': size,
      'x-goog-stored-content-encoding': 'identity',
      ETag: `"${Buffer.from(archive.md5, 'base64').toString('hex')}"`,
      'Content-Disposition': `attachment; filename="${job.resources.join('+')}-${issued.index + 1}.zip"`,
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec((req.headers.range ?? '').trim());
    if (range && (range[1] !== '' || range[2] !== '')) {
      if (range[1] === '') {
        start = Math.max(0, size - Number(range[2]));
      } else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
      if (start >= size || start > end) {
        fail(416, 'InvalidRange', 'The requested range cannot be satisfied.', undefined, { 'Content-Range': `bytes */${size}` });
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
    call.status = status;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || end < start) {
      res.end();
      return;
    }
    const interruption = urlInterruptions.get(urlId);
    urlInterruptions.delete(urlId);
    let cut = cutNextDownloadAfter;
    let expire = true;
    if (interruption) {
      cut = Math.floor((end - start + 1) * interruption.afterFraction);
      expire = interruption.expire;
    } else {
      cutNextDownloadAfter = undefined;
    }
    const rate = job.resources.map((r) => downloadRates.get(r)).find((r) => r !== undefined);
    if (cut === undefined && rate !== undefined) {
      // One small chunk at a time, each after the pause the rate allows.
      const chunk = Math.max(1, Math.min(16 * 1024, Math.floor(rate / 4)));
      const stream = createReadStream(archive.path, { start, end, highWaterMark: chunk });
      stream.on('data', (c) => {
        stream.pause();
        res.write(c);
        setTimeout(() => stream.resume(), (c.length / rate) * 1000);
      });
      stream.on('end', () => res.end());
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      return;
    }
    if (cut === undefined) {
      const stream = createReadStream(archive.path, { start, end });
      stream.on('error', () => res.destroy());
      stream.pipe(res);
      return;
    }
    // The URL "expires mid-copy" (or the copier dies): send `cut` bytes, then drop the connection.
    if (expire) issued.expired = true;
    const cutNow = (): void => {
      res.destroy();
      interruption?.onCut?.();
    };
    if (cut === 0) {
      res.flushHeaders();
      setImmediate(cutNow);
      return;
    }
    const stream = createReadStream(archive.path, { start, end: Math.min(end, start + cut - 1) });
    stream.on('data', (chunk) => res.write(chunk));
    stream.on('error', () => res.destroy());
    stream.on('end', () => res.write('', cutNow));
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      pathname = url.pathname;
    }
    const dl = /^\/download\/([0-9a-f]{1,64})$/.exec(pathname);
    const work = dl && (req.method === 'GET' || req.method === 'HEAD') ? handleDownload(req, res, url, dl[1]) : handleApi(req, res, url, pathname);
    work.catch((err: unknown) => {
      console.error('portability-api-simulator: request failed', err);
      if (!res.headersSent) sendJson(res, 500, { error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL', details: [] } });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const archiveHost = `127.0.0.1:${port}`;

  return {
    apiRoot: `http://127.0.0.1:${port}/`,
    archiveHost,
    faults,
    calls,
    jobs: () => [...jobs.values()].map(view),
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Let archives being written finish before their directory goes.
      await Promise.allSettled([...jobs.values()].map((j) => j.archivesPromise));
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
