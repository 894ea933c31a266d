/**
 * The public HTTPS API (one function, JSON, for browser frontends): routing, CORS, the caller's
 * ID token, and a schema on every body, path, query and header it reads. It answers 4xx with
 * `{error: {code, message, field?}}` for anything a client can send; 500 only for our own faults.
 */
import { z } from 'zod';
import { RequestError, UnauthenticatedError, UnavailableError } from '../domain/errors';
import type { IdTokenVerifier } from '../domain/ports/caller-identity';
import { type Logger, traceFields } from '../logging';
import { RESOURCE_GROUP_CATALOGUE } from '../domain/resource-group-catalogue';
import type { ArchiveDownloads } from '../pipeline/archive-downloads';
import type { ArchiveManifestViews } from '../pipeline/archive-manifest-views';
import type { AuditTrail } from '../pipeline/audit-trail';
import type { AuthorizationStatusReader } from '../pipeline/authorization-status';
import type { ErasureService } from '../pipeline/erasure-service';
import type { ExportService } from '../pipeline/export-service';
import type { ExportDeletion } from '../pipeline/export-housekeeping';
import type { ScheduleService } from '../pipeline/schedule-service';
import { header, sendError, type HttpRequest, type HttpResponse } from './http-types';
import { archiveIndex, authorizationBody, authorizationStartBody, emptyBody, exportBody, idempotencyKey, jsonBody, listQuery, manifestQuery, parse, scheduleBody, USER_ID } from './api-requests';
import { BODY_TOO_LARGE_MESSAGE } from './request-body-guard';

export interface ApiHandlerDeps {
  service: ExportService;
  /** Scheduled exports (time-based access); without it the /v1/schedules routes answer 404. */
  schedules?: ScheduleService;
  verifier: IdTokenVerifier;
  corsOrigins: string[];
  projectId: string;
  logger: Logger;
  /** DELETE /v1/exports/{id}; without it the route answers 405. */
  deletion?: ExportDeletion;
  /** GET /v1/authorizations; without it the route answers 405. */
  authorizations?: Pick<AuthorizationStatusReader, 'read'>;
  /** POST /v1/exports/{id}/jobs/{jobId}/archives/{n}:download; without it the route answers 404. */
  downloads?: Pick<ArchiveDownloads, 'issue'>;
  /** GET /v1/exports/{id}/jobs/{jobId}/archives/{n}/manifest; without it the route answers 404. */
  manifests?: Pick<ArchiveManifestViews, 'read'>;
  /** GET /v1/audit and /v1/audit:verify; without it the routes answer 404. */
  audit?: Pick<AuditTrail, 'list' | 'verify'>;
  /** DELETE /v1/me and GET /v1/me/erasure; without it the routes answer 404. */
  erasure?: Pick<ErasureService, 'request' | 'status'>;
}

type Route = { method: string; pattern: RegExp; handle: (ctx: RouteContext, m: RegExpMatchArray) => Promise<void> };
interface RouteContext {
  req: HttpRequest;
  res: HttpResponse;
  userId: string;
}

export function createApiHandler(deps: ApiHandlerDeps): (req: HttpRequest, res: HttpResponse) => Promise<void> {
  const { service } = deps;
  const routes: Route[] = [
    {
      method: 'GET',
      pattern: /^\/v1\/resource-groups$/,
      handle: async ({ req, res }) => {
        parse(z.strictObject({}), req.query, 'query');
        res.status(200).json({ resourceGroups: RESOURCE_GROUP_CATALOGUE });
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/authorizations:start$/,
      handle: async ({ req, res, userId }) => {
        const body = parse(authorizationStartBody, jsonBody(req, false), '');
        res.status(201).json(await service.startAuthorization(userId, body));
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/authorizations$/,
      handle: async ({ req, res, userId }) => {
        const body = parse(authorizationBody, jsonBody(req, false), '');
        const result = await service.authorize(userId, body.code, body.state);
        res.status(201).json(result);
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/authorizations:reset$/,
      handle: async ({ req, res, userId }) => {
        parse(emptyBody, jsonBody(req, true), '');
        res.status(200).json(await service.resetAuthorization(userId));
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/exports$/,
      handle: async ({ req, res, userId }) => {
        const body = parse(exportBody, jsonBody(req, true), '');
        const keyHeader = header(req, 'idempotency-key');
        const key = keyHeader === undefined ? undefined : parse(idempotencyKey, keyHeader, 'Idempotency-Key');
        const { view } = await service.startExport(userId, body, key);
        res.status(202).set('Location', `/v1/exports/${view.exportId}`).json(view);
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/exports$/,
      handle: async ({ req, res, userId }) => {
        const q = parse(listQuery, req.query, 'query');
        res.status(200).json(await service.listExports(userId, { limit: q.pageSize, pageToken: q.pageToken }));
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/exports\/([^/:]+)$/,
      handle: async ({ res, userId }, m) => {
        res.status(200).json(await service.getExport(userId, m[1] as string));
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/exports\/([^/:]+):cancel$/,
      handle: async ({ req, res, userId }, m) => {
        parse(emptyBody, jsonBody(req, true), '');
        res.status(200).json(await service.cancelExport(userId, m[1] as string));
      },
    },
  ];
  const { schedules } = deps;
  if (schedules) {
    routes.push(
      {
        method: 'POST',
        pattern: /^\/v1\/schedules$/,
        handle: async ({ req, res, userId }) => {
          const body = parse(scheduleBody, jsonBody(req, true), '');
          const view = await schedules.createSchedule(userId, body);
          res.status(201).set('Location', `/v1/schedules/${view.scheduleId}`).json(view);
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/schedules$/,
        handle: async ({ req, res, userId }) => {
          parse(z.strictObject({}), req.query, 'query');
          res.status(200).json(await schedules.listSchedules(userId));
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/schedules\/([^/:]+)$/,
        handle: async ({ res, userId }, m) => {
          res.status(200).json(await schedules.getSchedule(userId, m[1] as string));
        },
      },
      {
        method: 'DELETE',
        pattern: /^\/v1\/schedules\/([^/:]+)$/,
        handle: async ({ res, userId }, m) => {
          res.status(200).json(await schedules.deleteSchedule(userId, m[1] as string));
        },
      },
    );
  }

  const { authorizations } = deps;
  if (authorizations) {
    routes.push({
      method: 'GET',
      pattern: /^\/v1\/authorizations$/,
      handle: async ({ req, res, userId }) => {
        parse(z.strictObject({}), req.query, 'query');
        res.status(200).json(await authorizations.read(userId));
      },
    });
  }

  const { downloads } = deps;
  if (downloads) {
    routes.push({
      method: 'POST',
      pattern: /^\/v1\/exports\/([^/:]+)\/jobs\/([^/:]+)\/archives\/([^/:]+):download$/,
      handle: async ({ req, res, userId }, m) => {
        parse(emptyBody, jsonBody(req, true), '');
        const index = parse(archiveIndex, m[3], 'n');
        const origin = header(req, 'origin');
        res.status(200).json(await downloads.issue(userId, m[1] as string, m[2] as string, index, origin !== undefined ? { origin } : {}));
      },
    });
  }

  const { manifests } = deps;
  if (manifests) {
    routes.push({
      method: 'GET',
      pattern: /^\/v1\/exports\/([^/:]+)\/jobs\/([^/:]+)\/archives\/([^/:]+)\/manifest$/,
      handle: async ({ req, res, userId }, m) => {
        const { page } = parse(manifestQuery, req.query, 'query');
        const index = parse(archiveIndex, m[3], 'n');
        res.status(200).json(await manifests.read(userId, m[1] as string, m[2] as string, index, page));
      },
    });
  }
  const { audit } = deps;
  if (audit) {
    routes.push(
      {
        method: 'GET',
        pattern: /^\/v1\/audit$/,
        handle: async ({ req, res, userId }) => {
          const q = parse(listQuery, req.query, 'query');
          res.status(200).json(await audit.list(userId, { pageSize: q.pageSize, pageToken: q.pageToken }));
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/audit:verify$/,
        handle: async ({ req, res, userId }) => {
          parse(z.strictObject({}), req.query, 'query');
          res.status(200).json(await audit.verify(userId));
        },
      },
    );
  }

  const { deletion } = deps;
  if (deletion) {
    routes.push({
      method: 'DELETE',
      pattern: /^\/v1\/exports\/([^/:]+)$/,
      handle: async ({ req, res, userId }, m) => {
        parse(emptyBody, jsonBody(req, true), '');
        await deletion.delete(userId, m[1] as string);
        res.status(204).end();
      },
    });
  }

  const { erasure } = deps;
  if (erasure) {
    routes.push(
      {
        method: 'DELETE',
        pattern: /^\/v1\/me$/,
        handle: async ({ req, res, userId }) => {
          parse(emptyBody, jsonBody(req, true), '');
          res.status(202).set('Location', '/v1/me/erasure').json(await erasure.request(userId));
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/me\/erasure$/,
        handle: async ({ req, res, userId }) => {
          parse(z.strictObject({}), req.query, 'query');
          res.status(200).json(await erasure.status(userId));
        },
      },
    );
  }

  const cors = (req: HttpRequest, res: HttpResponse): boolean => {
    const origin = header(req, 'origin');
    if (origin === undefined) return true;
    if (!deps.corsOrigins.includes(origin)) return false;
    // A browser script may read these two of our headers only if told so (429/503 Retry-After, 201/202 Location).
    res.set('Access-Control-Allow-Origin', origin).set('Vary', 'Origin').set('Access-Control-Expose-Headers', 'Retry-After, Location');
    return true;
  };

  return async (req, res) => {
    const log = deps.logger.child(traceFields(deps.projectId, header(req, 'x-cloud-trace-context')));
    // On every answer, errors and 404s included: no cache keeps a user's data, no browser sniffs a type.
    res.set('Cache-Control', 'no-store').set('X-Content-Type-Options', 'nosniff');
    try {
      if (!cors(req, res)) return sendError(res, 403, 'ORIGIN_NOT_ALLOWED', 'This origin may not call the API');
      if (req.method === 'OPTIONS') {
        res
          .status(204)
          .set('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS')
          .set('Access-Control-Allow-Headers', 'Authorization, Content-Type, Idempotency-Key')
          .set('Access-Control-Max-Age', '3600');
        return res.end();
      }
      const path = normalizePath(req.path);
      const matching = routes.filter((r) => r.pattern.test(path));
      if (matching.length === 0) return sendError(res, 404, 'NOT_FOUND', `No such route: ${req.method} ${path.slice(0, 100)}`);
      const route = matching.find((r) => r.method === req.method);
      if (!route) {
        res.set('Allow', matching.map((r) => r.method).join(', '));
        return sendError(res, 405, 'METHOD_NOT_ALLOWED', `Use ${matching.map((r) => r.method).join(' or ')} on this route`);
      }
      // Before the caller is even authenticated: the guard read no more than the limit and parsed nothing.
      if (req.bodyError?.status === 413) throw new RequestError(413, 'BODY_TOO_LARGE', BODY_TOO_LARGE_MESSAGE);
      const userId = await authenticate(req, deps.verifier);
      await route.handle({ req, res, userId }, path.match(route.pattern) as RegExpMatchArray);
    } catch (err) {
      if (err instanceof RequestError) {
        if (err.retryAfterSeconds !== undefined) res.set('Retry-After', String(err.retryAfterSeconds));
        return sendError(res, err.status, err.code, err.message, err.field);
      }
      if (err instanceof UnauthenticatedError) {
        res.set('WWW-Authenticate', 'Bearer');
        return sendError(res, 401, 'UNAUTHENTICATED', err.message);
      }
      if (err instanceof UnavailableError) {
        res.set('Retry-After', String(err.retryAfterSeconds));
        return sendError(res, 503, 'UNAVAILABLE', err.message);
      }
      log.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'Internal error');
    }
  };
}

/** Cloud Functions URLs may keep the function's name in front of the path. */
function normalizePath(path: string): string {
  const p = path.replace(/^\/api(?=\/v1\/)/, '');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

async function authenticate(req: HttpRequest, verifier: IdTokenVerifier): Promise<string> {
  const auth = header(req, 'authorization');
  const m = auth?.match(/^Bearer ([A-Za-z0-9._~+/=-]+)$/);
  if (!m) throw new UnauthenticatedError('Send Authorization: Bearer <ID token>');
  const { userId } = await verifier.verify(m[1] as string);
  if (!USER_ID.test(userId)) throw new RequestError(403, 'PERMISSION_DENIED', 'This user id is not supported');
  return userId;
}
