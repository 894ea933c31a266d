/**
 * The public API's use cases, for one verified caller: authorize, start, read, list and cancel
 * exports, and revoke. Input reaching here is already shape-checked by the HTTP layer; this layer
 * checks it against the user's grant and state, and writes nothing when it refuses.
 */
import { createHash } from 'node:crypto';
import type { ExportLimits } from '../domain/admission';
import { classifyApiError } from '../domain/api-error-classification';
import { AuthorizationCodeError, conflict, ConsentRevokedError, invalid, isTransientError, notFound, RequestError, UnavailableError } from '../domain/errors';
import { exportWindowProblem } from '../domain/export-window';
import { ERASURE_IN_PROGRESS } from '../domain/erasure';
import type { ExportRecord, Grant, Job } from '../domain/model';
import { ID_PATTERN, newId } from '../domain/ids';
import { callInFlight, CONSENT_REVOKED, newJob } from '../domain/job';
import type { ArchiveBucket } from '../domain/ports/archive-copier';
import type { ExportStore } from '../domain/ports/export-store';
import type { OAuthTokenClient } from '../domain/ports/google-oauth';
import type { PortabilityApi } from '../domain/ports/portability-api';
import type { SecretCipher } from '../domain/ports/secret-cipher';
import type { TaskQueue } from '../domain/ports/task-queues';
import { jobObjectPrefix } from '../domain/object-names';
import { groupsInScopes } from '../domain/resource-groups';
import type { PollingPolicy } from '../domain/polling-policy';
import type { Logger } from '../logging';
import type { AuditTrail } from './audit-trail';
import type { EventRelay } from './event-relay';
import { consentGranted, consentRevoked } from '../domain/audit-drafts';
import type { AuditDraft } from '../domain/audit';
import { warnAtOf } from './grant-expiry-warnings';
import { JobTransitions } from './job-transitions';
import { quotaUserOf, type AccessTokens } from './access-tokens';
import type { ConsentFlow, StartedConsent } from './consent-flow';
import { toExportView, type ExportView } from './export-views';

export interface StartExportInput {
  resources?: string[];
  startTime?: string;
  endTime?: string;
}

export interface ExportServiceDeps {
  /** Started consents: the state and PKCE verifier each code exchange must come with. */
  consent: ConsentFlow;
  store: ExportStore;
  // Made on first use: reading exports needs none of them.
  api: () => Promise<PortabilityApi>;
  oauth: () => Promise<OAuthTokenClient>;
  tokens: AccessTokens;
  cipher: () => Promise<SecretCipher>;
  queue: () => Promise<TaskQueue>;
  logger: Logger;
  /** Per-user abuse limits on starting exports (429 with Retry-After beyond them). */
  limits?: ExportLimits;
  /** Made on first use: a reset removes what unfinished copies wrote. */
  archives?: () => Promise<ArchiveBucket>;
  /** When the checks of a job whose cancel finds its Google job still to stop are due. */
  policy: PollingPolicy;
  now?: () => number;
  /** Told after a job ended (a cancelled or revoked scheduled job folds into its schedule). */
  onJobFinished?: (job: Job) => Promise<void>;
  /** Publishes the events of jobs and exports a cancel or reset ended. */
  relay?: EventRelay;
  /** GRANT_EXPIRY_WARNING_DAYS: a time-based grant is stored with the time its warning is due. */
  grantExpiryWarningDays?: number;
  /** ARCHIVE_RETENTION_DAYS: when each archive shown expires. */
  archiveRetentionDays?: number;
  /** Seals the audit drafts the changes wrote, after their commit. */
  audit?: Pick<AuditTrail, 'sealAfterCommit'>;
}

export class ExportService {
  private readonly now: () => number;
  private readonly jobs: JobTransitions;

  constructor(private readonly deps: ExportServiceDeps) {
    this.now = deps.now ?? Date.now;
    const { store, queue, policy, logger, onJobFinished, relay, audit } = deps;
    this.jobs = new JobTransitions({ store, queue, policy, logger, now: this.now, onJobFinished, relay, audit });
  }

  /** Google's consent URL for these groups, bound to this user by a single-use state and PKCE. */
  async startAuthorization(userId: string, input: { resources: string[]; redirectUri: string }): Promise<StartedConsent> {
    return this.deps.consent.start(userId, input);
  }

  /**
   * Exchanges a code only under a state this user started (claimed once, before anything else), with
   * that consent's redirect URI and PKCE verifier: a code minted for someone else's consent fails.
   */
  async authorize(userId: string, code: string, state: string): Promise<{ resources: string[]; oneTimeResources: string[]; timeBasedResources: string[] }> {
    const consent = await this.deps.consent.claim(userId, state);
    let tokens;
    try {
      tokens = await (await this.deps.oauth()).exchangeCode(code, consent.redirectUri, consent.codeVerifier);
    } catch (err) {
      if (err instanceof AuthorizationCodeError || err instanceof ConsentRevokedError) {
        throw new RequestError(400, 'INVALID_AUTHORIZATION_CODE', `Google did not accept the authorization code: ${err.message}`, 'code');
      }
      if (isTransientError(err)) throw new UnavailableError('Google\'s token endpoint is unavailable; start the consent again');
      throw err;
    }
    if (!tokens.refreshToken) {
      throw new RequestError(
        400,
        'NO_REFRESH_TOKEN',
        'Google returned no refresh token: request the code with access_type=offline and prompt=consent, then send the new code',
        'code',
      );
    }
    const resources = groupsInScopes(tokens.scope);
    if (resources.length === 0) {
      throw new RequestError(400, 'NO_DATAPORTABILITY_SCOPES', 'The user granted none of the dataportability.* scopes', 'code');
    }
    let access;
    try {
      access = await (await this.deps.api()).checkAccessType(tokens.accessToken, quotaUserOf(userId));
    } catch (err) {
      throw this.apiFailure(err);
    }
    const now = this.now();
    const previous = await this.deps.store.getGrant(userId);
    const grant: Grant = {
      userId,
      refreshToken: await (await this.deps.cipher()).encrypt(tokens.refreshToken, userId),
      resources,
      requestedResources: consent.resources,
      consentedAt: now,
      oneTimeResources: access.oneTimeResources,
      timeBasedResources: access.timeBasedResources,
      state: 'ACTIVE',
      ...(tokens.refreshTokenExpiresAt !== undefined ? { expiresAt: tokens.refreshTokenExpiresAt } : {}),
      ...(tokens.refreshTokenExpiresAt !== undefined && access.timeBasedResources.length > 0 && this.deps.grantExpiryWarningDays !== undefined
        ? { warnAt: warnAtOf(tokens.refreshTokenExpiresAt, this.deps.grantExpiryWarningDays) }
        : {}),
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
    };
    await this.storeGrant(userId, tokens.accessToken, grant, [consentGranted(grant, now)]);
    await this.deps.audit?.sealAfterCommit(userId);
    this.deps.tokens.remember(userId, tokens.accessToken, tokens.expiresAt);
    this.deps.logger.info({ userId, resources: resources.length, timeBased: access.timeBasedResources.length }, 'authorization stored');
    return { resources, oneTimeResources: access.oneTimeResources, timeBasedResources: access.timeBasedResources };
  }

  /**
   * Stores the grant, unless the user's erasure began during the exchange (409): then the grant
   * Google just issued is reset at once, so none outlives the erasure at Google either.
   */
  private async storeGrant(userId: string, accessToken: string, grant: Grant, audit: AuditDraft[]): Promise<void> {
    try {
      await this.deps.store.putGrant(grant, audit);
    } catch (err) {
      if (err instanceof RequestError && err.code === ERASURE_IN_PROGRESS) {
        await (await this.deps.api()).resetAuthorization(accessToken, quotaUserOf(userId)).catch((e: unknown) => this.deps.logger.warn({ err: e }, 'could not reset the grant refused by an erasure'));
      }
      throw err;
    }
  }

  async startExport(userId: string, input: StartExportInput, idempotencyKey?: string): Promise<{ view: ExportView; created: boolean }> {
    const grant = await this.deps.store.getGrant(userId);
    if (!grant) throw conflict('NO_AUTHORIZATION', 'No Google authorization is stored for this user: POST /v1/authorizations first');
    if (grant.state !== 'ACTIVE') throw conflict('NEEDS_CONSENT', 'The Google authorization expired or was revoked: the user must consent again');
    const resources = input.resources ? [...new Set(input.resources)].sort() : [...grant.resources].sort();
    const missing = resources.filter((r) => !grant.resources.includes(r));
    if (missing.length > 0) throw invalid('resources', `Not granted by the user: ${missing.join(', ')}`);
    if (resources.length === 0) throw invalid('resources', 'At least one resource group is required');
    const window = exportWindowProblem(input, this.now());
    if (window) throw invalid(window.field, window.message);
    const requestHash = createHash('sha256').update(JSON.stringify({ resources, startTime: input.startTime, endTime: input.endTime })).digest('hex');
    const now = this.now();
    const exportId = newId();
    const record: ExportRecord = {
      id: exportId,
      userId,
      state: 'RUNNING',
      resources,
      ...(input.startTime ? { startTime: input.startTime } : {}),
      ...(input.endTime ? { endTime: input.endTime } : {}),
      createdAt: now,
      updatedAt: now,
      requestHash,
    };
    const jobs = resources.map((resource) =>
      newJob({ id: newId(), exportId, userId, resource, ...(input.startTime ? { startTime: input.startTime } : {}), ...(input.endTime ? { endTime: input.endTime } : {}) }, now),
    );
    // Limits and the one-export-per-group rule are decided in the transaction that creates it.
    const result = await this.deps.store.createExport(record, jobs, idempotencyKey ? { userId, key: idempotencyKey } : undefined, {
      ...(this.deps.limits ? { limits: this.deps.limits } : {}),
    });
    if (!result.created && result.record.requestHash !== requestHash) {
      throw conflict('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used for a different request');
    }
    // On a replay too: a crash after the commit may have lost these; the queue drops duplicates.
    for (const job of result.jobs) {
      if (job.state === 'INITIATING') await (await this.deps.queue()).enqueue({ step: 'initiate', jobId: job.id, seq: job.seq, delaySeconds: 0 });
    }
    if (result.created) {
      await this.deps.audit?.sealAfterCommit(userId);
      this.deps.logger.info({ userId, exportId, resources }, 'export started');
    }
    return { view: toExportView(result.record, result.jobs, this.deps.archiveRetentionDays), created: result.created };
  }

  async getExport(userId: string, exportId: string): Promise<ExportView> {
    const record = await this.ownExport(userId, exportId);
    return toExportView(record, await this.deps.store.listJobs(exportId), this.deps.archiveRetentionDays);
  }

  async listExports(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: ExportView[]; nextPageToken?: string }> {
    const { exports, nextPageToken } = await this.deps.store.listExportsWithJobs(userId, page);
    const views = exports.map(({ record, jobs }) => toExportView(record, jobs, this.deps.archiveRetentionDays));
    return { exports: views, nextPageToken };
  }

  /**
   * Cancels the export's jobs that have not reached their archive yet (INITIATING, and WAITING
   * through archiveJobs.cancel). A job already copying finishes: its archive exists. A job whose
   * initiate or retry is in flight is marked, and its step cancels the new Google job
   * (domain/job.ts, the `cancelled` event).
   */
  async cancelExport(userId: string, exportId: string): Promise<ExportView> {
    const record = await this.ownExport(userId, exportId);
    const jobs = await this.deps.store.listJobs(exportId);
    if (record.state !== 'RUNNING' && record.state !== 'CANCELLED') {
      throw conflict('EXPORT_FINISHED', `The export already ended as ${record.state}`);
    }
    for (const job of jobs) {
      if (job.state !== 'INITIATING' && job.state !== 'WAITING') continue;
      // Google's job is cancelled first, unless a call that starts one is in flight (its step then cancels it).
      let cancelledAtGoogle: string | undefined;
      if (job.state === 'WAITING' && job.archiveJobId && !callInFlight(job, this.now())) {
        try {
          const token = await this.deps.tokens.forUser(userId);
          await (await this.deps.api()).cancel(token, job.archiveJobId, quotaUserOf(userId));
        } catch (err) {
          const cls = err instanceof ConsentRevokedError ? undefined : classifyApiError(err);
          if (cls?.kind === 'transient') throw new UnavailableError('Google did not answer the cancellation; try again', cls.retryAfterSeconds ?? 30);
          // Not cancellable (it ended meanwhile, or the grant is gone): nothing more can happen at Google.
          this.deps.logger.info({ jobId: job.id, reason: cls?.kind ?? 'consent-revoked' }, 'archive job not cancellable at Google');
        }
        cancelledAtGoogle = job.archiveJobId;
      }
      await this.jobs.apply(job.id, { type: 'cancelled', cancelledAtGoogle });
    }
    this.deps.logger.info({ userId, exportId }, 'export cancellation requested');
    return this.getExport(userId, exportId);
  }

  /**
   * authorization.reset at Google; then every job of the user that has not ended fails
   * CONSENT_REVOKED at once (a copy in flight sees it at its next progress write and stops), what
   * unfinished copies wrote is removed, and last the stored grant is forgotten. Sent again after a
   * crash, it finishes the work (the grant is still there until the end).
   */
  async resetAuthorization(userId: string): Promise<{ reset: true }> {
    const grant = await this.deps.store.getGrant(userId);
    if (!grant) throw notFound('Authorization');
    try {
      const token = await this.deps.tokens.forUser(userId);
      await (await this.deps.api()).resetAuthorization(token, quotaUserOf(userId));
    } catch (err) {
      // A grant Google already dropped needs no reset; anything transient must not lose the grant.
      if (!(err instanceof ConsentRevokedError)) {
        const cls = classifyApiError(err);
        if (cls.kind !== 'unauthenticated') throw this.apiFailure(err);
      }
    }
    const revoked = await this.endLiveJobs(userId);
    await this.deps.store.deleteGrant(userId, [consentRevoked(grant, this.now(), 'user')]);
    await this.deps.audit?.sealAfterCommit(userId);
    await this.deps.consent.forget(userId);
    this.deps.tokens.forget(userId);
    this.deps.logger.info({ userId, jobsEnded: revoked }, 'authorization reset');
    return { reset: true };
  }

  private async endLiveJobs(userId: string): Promise<number> {
    let ended = 0;
    for (const live of await this.deps.store.liveJobsOfUser(userId)) {
      const updated = await this.jobs.apply(live.id, { type: 'failed', error: CONSENT_REVOKED });
      if (!updated.applied) continue;
      ended++;
      if (updated.before.state === 'COPYING' && this.deps.archives) await (await this.deps.archives()).deletePrefix(jobObjectPrefix(live));
    }
    return ended;
  }

  private async ownExport(userId: string, exportId: string): Promise<ExportRecord> {
    if (!ID_PATTERN.test(exportId)) throw notFound('Export');
    const record = await this.deps.store.getExport(exportId);
    // Another user's export answers exactly like a missing one.
    if (!record || record.userId !== userId) throw notFound('Export');
    return record;
  }

  private apiFailure(err: unknown): Error {
    const cls = classifyApiError(err);
    if (cls.kind === 'transient') return new UnavailableError('The Data Portability API is unavailable; try again', cls.retryAfterSeconds ?? 30);
    if (cls.kind === 'unauthenticated') return new RequestError(403, 'NEEDS_CONSENT', 'Google rejected the authorization: the user must consent again');
    return err instanceof Error ? err : new Error(String(err));
  }
}

