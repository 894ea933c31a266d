/**
 * WEBHOOK_ENDPOINTS: the apps told by signed HTTP POSTs, as a JSON list of
 * `{id, url, secret}`. What can be decided from the text is decided when the configuration is
 * parsed (https only, no user info, no loopback or private address literal, a Secret Manager
 * version for every endpoint, unique ids); whether a host name resolves to a public address needs
 * DNS and is checked by `assertWebhookHostsPublic` before the first delivery is enqueued.
 */
import { z } from 'zod';
import { isIP } from 'node:net';
import type { WebhookEndpoint } from './domain/ports/webhooks';
import { isPublicAddress, publicAddresses, defaultLookup, type HostLookup } from './adapters/address-guard';

export type { WebhookEndpoint };

const SECRET_VERSION = /^projects\/[^/]+\/secrets\/[^/]+\/versions\/(\d+|latest)$/;
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

const endpoint = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'id: lowercase letters, digits and -, at most 63 characters'),
  url: z.string().refine((s) => URL.canParse(s), 'url: not an absolute URL'),
  secret: z.string({ required_error: 'secret: required (a Secret Manager secret version: projects/…/secrets/…/versions/…)' }).regex(SECRET_VERSION, 'secret: must be projects/…/secrets/…/versions/N (or latest)'),
});

/** Why `url` may not be a webhook endpoint, or undefined. `allowLocalHttp`: the local stack's http://127.0.0.1 receivers. */
export function webhookUrlProblem(url: string, allowLocalHttp: boolean): string | undefined {
  const u = new URL(url);
  const host = u.hostname.toLowerCase();
  const local = LOOPBACK_NAMES.has(host);
  if (u.username || u.password) return 'must not carry user info';
  if (u.hash) return 'must not have a fragment';
  if (allowLocalHttp && local) return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : `scheme ${u.protocol} is not allowed`;
  if (u.protocol !== 'https:') return `must be https (got ${u.protocol})`;
  if (local) return `the host ${host} is a loopback address`;
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) && !isPublicAddress(bare)) return `the host ${bare} is not a public address`;
  return undefined;
}

/** The zod schema of WEBHOOK_ENDPOINTS (a JSON string); `allowLocalHttp` is checked afterwards, in parseConfig. */
export const webhookEndpointsSchema = z.string().transform((s, ctx): WebhookEndpoint[] => {
  let raw: unknown;
  try {
    raw = JSON.parse(s);
  } catch {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not JSON: expected a list of {"id", "url", "secret"}' });
    return z.NEVER;
  }
  const parsed = z.array(endpoint).max(20, 'at most 20 endpoints').safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `[${i.path.join('.')}] ${i.message}` });
    return z.NEVER;
  }
  const ids = parsed.data.map((e) => e.id);
  const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (repeated.length > 0) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `ids must be unique (repeated: ${[...new Set(repeated)].join(', ')})` });
  return parsed.data;
});

/** Problems of the endpoints as text allows seeing them: one line per endpoint. */
export function webhookEndpointProblems(endpoints: readonly WebhookEndpoint[], allowLocalHttp: boolean): string[] {
  return endpoints.flatMap((e) => {
    const problem = webhookUrlProblem(e.url, allowLocalHttp);
    return problem ? [`WEBHOOK_ENDPOINTS: endpoint ${e.id}: url ${problem}`] : [];
  });
}

/**
 * Resolves every endpoint's host and returns the problems: a host that does not resolve or resolves
 * to a non-public address. Loopback hosts allowed by `allowLocalHttp` are not looked up.
 */
export async function webhookHostProblems(endpoints: readonly WebhookEndpoint[], allowLocalHttp: boolean, lookup: HostLookup = defaultLookup): Promise<string[]> {
  const problems = await Promise.all(
    endpoints.map(async (e) => {
      const host = new URL(e.url).hostname.toLowerCase();
      if (allowLocalHttp && LOOPBACK_NAMES.has(host)) return undefined;
      try {
        await publicAddresses(host, lookup, (reason) => new Error(reason));
        return undefined;
      } catch (err) {
        return `WEBHOOK_ENDPOINTS: endpoint ${e.id}: ${(err as Error).message}`;
      }
    }),
  );
  return problems.filter((p): p is string => p !== undefined);
}
