/**
 * The cold-start warm-up: before its first request, a function fetches the signing keys its
 * callers' tokens need and opens its Firestore connection; the first request then uses them.
 * Built from the real configuration (the local stack's environment), the Firestore emulator and
 * a JWKS server that counts its requests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createComposition } from '../../functions/src/composition-root';
import { parseConfig } from '../../functions/src/config';
import type { HttpRequest, HttpResponse } from '../../functions/src/http/http-types';
import { createLogger } from '../../functions/src/logging';
import { createLocalOidcIssuer, type LocalOidcIssuer } from '../../local-stack/local-oidc-issuer';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';

let stack: LocalStack;
let issuer: LocalOidcIssuer;
let jwks: http.Server;
let hits = 0;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await startLocalStack({ projectId: 'demo-warm-up', logLevel: 'silent' });
  issuer = await createLocalOidcIssuer({ issuer: 'https://accounts.google.com' });
  jwks = http.createServer((_req, res) => {
    hits++;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(issuer.jwks()));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  env = { ...stack.env, TASKS_OIDC_ISSUER: issuer.issuer, TASKS_OIDC_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/` };
});

afterAll(async () => {
  jwks?.closeAllConnections();
  await new Promise<void>((resolve) => (jwks ? jwks.close(() => resolve()) : resolve()));
  await stack?.stop();
});

function call(handler: (req: HttpRequest, res: HttpResponse) => Promise<void>, req: HttpRequest): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    let status = 200;
    const res: HttpResponse = {
      headersSent: false,
      status: (c) => ((status = c), res),
      set: () => res,
      json: (body) => resolve({ status, body }),
      send: (body) => resolve({ status, body }),
      end: () => resolve({ status, body: undefined }),
    };
    handler(req, res).catch(reject);
  });
}

describe('warmUp(target)', () => {
  it('fetches the task callers’ signing keys once, before the first request, which then needs no fetch', async () => {
    const config = parseConfig(env);
    const composition = createComposition(config, { logger: createLogger({ level: 'silent' }) });
    hits = 0;
    await composition.warmUp('sweepJobs');
    expect(hits).toBe(1);
    const token = await issuer.sign({ aud: config.tasks.sweepUrl, email: config.tasks.serviceAccount, email_verified: true, sub: '1' }, 600);
    const first = await call(composition.sweepJobs, { method: 'POST', path: '/', headers: { authorization: `Bearer ${token}` }, query: {}, body: {} });
    expect(first.status).toBe(200);
    expect(hits).toBe(1);
    // A warm-up again (or of another function's keys) changes nothing for this one.
    await composition.warmUp('sweepJobs');
    expect(hits).toBe(1);
  });

  it('ignores an unknown target, and a warm-up that failed leaves the first request to fetch again', async () => {
    const composition = createComposition(parseConfig(env), { logger: createLogger({ level: 'silent' }) });
    await expect(composition.warmUp('noSuchFunction')).resolves.toBeUndefined();

    const broken = createComposition(parseConfig({ ...env, TASKS_OIDC_JWKS_URL: 'http://127.0.0.1:9/' }), { logger: createLogger({ level: 'silent' }) });
    await expect(broken.warmUp('checkArchiveJob')).rejects.toThrow(/ECONNREFUSED/);
    const config = parseConfig(env);
    const token = await issuer.sign({ aud: config.tasks.checkUrl, email: config.tasks.serviceAccount, email_verified: true, sub: '1' }, 600);
    // The keys are unreachable: the request is refused as it would be without a warm-up, not crashed.
    const refused = await call(broken.checkArchiveJob, { method: 'POST', path: '/', headers: { authorization: `Bearer ${token}` }, query: {}, body: {} });
    expect(refused.status).toBe(401);
  });
});
