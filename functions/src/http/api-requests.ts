/**
 * What the public API accepts: the schema of every body, query and header it reads, and how a
 * request's JSON body is read (a body the framework's parser refused, an odd Content-Type, an
 * empty body). A refusal is a RequestError naming the field, answered 400 or 415.
 */
import { z } from 'zod';
import { RequestError } from '../domain/errors';
import { isKnownResourceGroup } from '../domain/resource-groups';
import { parseRfc3339 } from '../domain/rfc3339';
import { urlString } from '../zod-helpers';
import { header, type HttpRequest } from './http-types';

/** Strict RFC 3339 (a real date and time of day, years 0001-9999): Google refuses anything looser. */
export const timestamp = z.string().superRefine((s, ctx) => {
  const parsed = parseRfc3339(s);
  if (!parsed.ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.reason });
});

/** Known resource groups, 1 to 100 (every body that names groups). */
export const resourceList = z
  .array(z.string().max(100).refine(isKnownResourceGroup, 'is not a known Data Portability resource group'))
  .min(1)
  .max(100);

export const authorizationStartBody = z.strictObject({
  resources: resourceList,
  redirectUri: urlString.pipe(z.string().max(2048)),
});

export const authorizationBody = z.strictObject({
  code: z.string().min(1).max(2048),
  state: z.string({ required_error: 'Required: send the state POST /v1/authorizations:start answered' }).min(1).max(200),
});

export const exportBody = z.strictObject({
  resources: resourceList.optional(),
  startTime: timestamp.optional(),
  endTime: timestamp.optional(),
});

export const emptyBody = z.strictObject({});

export const scheduleBody = z.strictObject({
  resources: resourceList.optional(),
  // Google allows one export per group every 24 hours; 180 days is the longest grant.
  everyHours: z.number().int().min(24).max(24 * 180).optional(),
  startTime: timestamp.optional(),
});

export const listQuery = z.strictObject({
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
  pageToken: z.string().max(200).regex(/^[A-Za-z0-9_-]+$/, 'is not a page token this API issued').optional(),
});

/** `{n}` of an archive download: its place in the job's archives, from 0. */
export const archiveIndex = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,5})$/, 'must be an archive index: a whole number from 0')
  .transform(Number);

/** `?page=k` of a manifest's entries, from 0. */
export const manifestQuery = z.strictObject({
  page: z.string().regex(/^(0|[1-9][0-9]{0,5})$/, 'must be a page number: a whole number from 0').transform(Number).default('0'),
});

export const idempotencyKey = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** User ids become object-name prefixes: only ids of this shape are accepted from the issuer. */
export const USER_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown, where: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.join('.') ?? '';
  const field =
    issue?.code === 'unrecognized_keys' ? `${where ? `${where}.` : ''}${issue.keys.join(',')}` : [where, path].filter((s) => s !== '').join('.') || where;
  const message = issue?.code === 'unrecognized_keys' ? `Unknown field(s): ${issue.keys.join(', ')}` : `${field || 'request'}: ${issue?.message ?? 'invalid'}`;
  throw new RequestError(400, 'INVALID_ARGUMENT', message, field || undefined);
}

export function jsonBody(req: HttpRequest, allowEmpty: boolean): unknown {
  if (req.bodyError) {
    const { status, type } = req.bodyError;
    if (status === 415) throw new RequestError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json in UTF-8 without Content-Encoding', 'body');
    throw new RequestError(400, 'INVALID_ARGUMENT', type === 'entity.parse.failed' ? 'The body is not valid JSON' : 'The body could not be read', 'body');
  }
  const raw = req.rawBody;
  const empty = raw === undefined || raw.length === 0;
  // Bytes were sent but no parser kept them (an odd Content-Type): refuse rather than act as if empty.
  const sent = (header(req, 'content-length') ?? '0') !== '0' || header(req, 'transfer-encoding') !== undefined;
  if (empty && sent && !/^application\/json\b/i.test(header(req, 'content-type') ?? '')) {
    throw new RequestError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
  }
  if (empty) {
    if (allowEmpty) return {};
    throw new RequestError(400, 'INVALID_ARGUMENT', 'A JSON body is required', 'body');
  }
  const type = header(req, 'content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) throw new RequestError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
  if (req.body === undefined || typeof req.body !== 'object' || req.body === null || Buffer.isBuffer(req.body) || Array.isArray(req.body)) {
    throw new RequestError(400, 'INVALID_ARGUMENT', 'The body must be a JSON object', 'body');
  }
  return req.body;
}
