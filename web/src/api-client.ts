/**
 * The public API, as the web app calls it. Every failure becomes an ApiError whose message is a
 * sentence for a person (the API's own `error.message`, or a plain one when the API could not be
 * reached): the pages never show a stack or raw JSON.
 */
import type { SignIn } from './auth/sign-in';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Archive {
  bucket: string;
  name: string;
  size: number;
  crc32c: string;
  md5Hash?: string;
}
export interface JobView {
  jobId: string;
  resource: string;
  state: 'INITIATING' | 'WAITING' | 'COPYING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
  attempts: number;
  bytesCopied?: number;
  /** While copying, when the archives' URLs declared their sizes. */
  bytesTotal?: number;
  archives?: Archive[];
  error?: { code: string; message: string; retryAt?: string };
  /** What the archives' manifests found (Google marked a service incomplete, a damaged archive). */
  warnings?: JobWarning[];
}
export interface JobWarning {
  code: 'SERVICE_INCOMPLETE' | 'ARCHIVE_NOT_ZIP' | 'ARCHIVE_DAMAGED' | 'ARCHIVE_BROWSER_UNREADABLE';
  /** Which archive, from 0. */
  archive: number;
  message: string;
  service?: string;
}
export interface ExportView {
  exportId: string;
  state: 'RUNNING' | 'SUCCEEDED' | 'PARTIAL' | 'FAILED' | 'CANCELLED';
  resources: string[];
  createdAt: string;
  jobs: JobView[];
  scheduleId?: string;
}
export interface ResourceGroup {
  id: string;
  title: string;
  description: string;
  product: string;
  timeFilter: boolean;
}
export interface AuthorizationStatus {
  state: 'ACTIVE' | 'NEEDS_CONSENT' | 'NONE';
  requestedResources?: string[];
  grantedResources: string[];
  notGrantedResources: string[];
  accessType: 'ONE_TIME' | 'TIME_BASED' | 'MIXED';
  timeBasedResources: string[];
  grantedAt?: string;
  expiresAt?: string;
  testingMode: boolean;
  warnings: Array<{ code: string; message: string }>;
  renewalUrl?: string;
  /** Time-based access ends within the app's warning period: show the renewal link. */
  expiresSoon?: boolean;
}
export interface ScheduleView {
  scheduleId: string;
  state: string;
  resources: string[];
  everyHours: number;
  runCount: number;
  nextRunAt?: string;
  endsAt?: string;
  reason?: { code: string; message: string };
}

export class Api {
  constructor(
    private readonly baseUrl: string,
    private readonly signIn: SignIn,
    private readonly unreachable: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const token = await this.signIn.idToken();
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch {
      throw new ApiError(0, 'UNREACHABLE', this.unreachable);
    }
    if (res.status === 204) return undefined as T;
    const parsed = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined;
    if (!res.ok) {
      throw new ApiError(res.status, parsed?.error?.code ?? `HTTP_${res.status}`, parsed?.error?.message ?? `${this.unreachable} (HTTP ${res.status})`);
    }
    return parsed as T;
  }

  resourceGroups = () => this.call<{ resourceGroups: ResourceGroup[] }>('GET', '/v1/resource-groups').then((r) => r.resourceGroups);
  authorization = () => this.call<AuthorizationStatus>('GET', '/v1/authorizations');
  startConsent = (resources: string[], redirectUri: string) => this.call<{ authorizationUrl: string }>('POST', '/v1/authorizations:start', { resources, redirectUri });
  authorize = (code: string, state: string) => this.call<{ resources: string[] }>('POST', '/v1/authorizations', { code, state });
  revoke = () => this.call<{ reset: true }>('POST', '/v1/authorizations:reset', {});
  startExport = () => this.call<ExportView>('POST', '/v1/exports', {});
  exports = () => this.call<{ exports: ExportView[] }>('GET', '/v1/exports?pageSize=10').then((r) => r.exports);
  export = (id: string) => this.call<ExportView>('GET', `/v1/exports/${encodeURIComponent(id)}`);
  cancel = (id: string) => this.call<ExportView>('POST', `/v1/exports/${encodeURIComponent(id)}:cancel`, {});
  /** A short-lived signed URL of archive `n` (from 0) of a SUCCEEDED job. */
  downloadLink = (id: string, jobId: string, n: number) =>
    this.call<{ url: string; expiresAt: string }>('POST', `/v1/exports/${encodeURIComponent(id)}/jobs/${encodeURIComponent(jobId)}/archives/${n}:download`, {});
  deleteExport = (id: string) => this.call<void>('DELETE', `/v1/exports/${encodeURIComponent(id)}`);
  createSchedule = () => this.call<ScheduleView>('POST', '/v1/schedules', {});
  schedules = () => this.call<{ schedules: ScheduleView[] }>('GET', '/v1/schedules').then((r) => r.schedules);
  stopSchedule = (id: string) => this.call<{ deleted: true }>('DELETE', `/v1/schedules/${encodeURIComponent(id)}`);
}
