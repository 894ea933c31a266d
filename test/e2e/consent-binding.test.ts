/**
 * Consent is bound to the caller (issue 11, item 10: authorization-code injection). Through the
 * public API on the local stack: a code is exchanged only under a state that POST
 * /v1/authorizations:start issued to the same user, once, before it expires, with that consent's
 * redirect URI and PKCE verifier; the OAuth simulator checks PKCE as Google does. Every refusal
 * is a 400 with its own code, and leaves the stored grants and consents as they were.
 */
import { createHash } from 'node:crypto';
import { Firestore, Timestamp } from '@google-cloud/firestore';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { MAX_AUTHORIZATION_URL_LENGTH } from '../../functions/src/domain/consent-url';
import { RESOURCE_GROUPS, scopeOf } from '../../functions/src/domain/resource-groups';
import { startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api, consentAtGoogle, objectNames, REDIRECT, startConsent, waitForExport, type ExportBody } from '../support/api-client';

const PROJECT = 'demo-consent-binding';
let stack: LocalStack;
let db: Firestore;
/** The functions' clock runs this far ahead of the real one (the expiry test moves it). */
let clockOffsetMs = 0;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: PROJECT,
    jobDurationMs: 300,
    archiveBytes: 50_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 2,
    taskTimeScale: 0.2,
    logLevel: 'silent',
    overrides: { now: () => Date.now() + clockOffsetMs },
  });
  db = new Firestore({ projectId: PROJECT });
});

afterAll(async () => {
  await db?.terminate();
  await stack?.stop();
});

afterEach(() => {
  clockOffsetMs = 0;
});

type ErrorBody = { error: { code: string; message: string; field?: string } };

/** Every document of the collections a refused authorization must leave alone. */
async function snapshot(): Promise<string> {
  const out: Record<string, unknown> = {};
  for (const c of ['grants', 'consentStates']) {
    const docs = await db.collection(c).get();
    out[c] = docs.docs.map((d) => [d.id, d.data()]).sort();
  }
  return JSON.stringify(out);
}

const tokenCalls = () => stack.oauth.calls.filter((c) => c.grantType === 'authorization_code').length;

async function authorize(token: string, body: unknown) {
  return api<ErrorBody & Record<string, unknown>>(stack, token, 'POST', '/v1/authorizations', body);
}

describe('POST /v1/authorizations:start', () => {
  it('answers a consent URL for exactly those groups, with state, PKCE S256, offline access and no other scope', async () => {
    const token = await stack.idToken('uma');
    const before = Date.now();
    const started = await startConsent(stack, token, ['myactivity.search', 'chrome.history', 'myactivity.search']);
    const url = new URL(started.authorizationUrl);
    expect(url.origin + url.pathname).toBe(stack.oauth.authUrl);
    const q = url.searchParams;
    expect(q.get('scope')?.split(' ')).toEqual([scopeOf('chrome.history'), scopeOf('myactivity.search')]);
    expect(Object.fromEntries([...q].filter(([k]) => k !== 'scope' && k !== 'code_challenge'))).toEqual({
      client_id: stack.env.OAUTH_CLIENT_ID,
      redirect_uri: REDIRECT,
      response_type: 'code',
      access_type: 'offline',
      prompt: 'consent',
      state: started.state,
      code_challenge_method: 'S256',
    });
    // base64url of a SHA-256: 43 characters.
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(started.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const expiresAt = Date.parse(started.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 600_000 - 1000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600_000 + 1000);

    // Stored under the state's hash, never the state; the verifier only as ciphertext.
    const doc = await db.doc(`consentStates/${createHash('sha256').update(started.state).digest('hex')}`).get();
    expect(doc.exists).toBe(true);
    const raw = JSON.stringify(doc.data());
    expect(raw).not.toContain(started.state);
    expect(Object.keys(doc.data()?.codeVerifier as object).sort()).toEqual(['ciphertext', 'keyVersion', 'wrappedKey']);
    expect(doc.data()).toMatchObject({ resources: ['chrome.history', 'myactivity.search'], redirectUri: REDIRECT });
    expect(doc.get('expireAt')).toBeInstanceOf(Timestamp);

    // Google's consent screen (the simulator refuses what Google refuses) takes the URL as it is.
    await expect(consentAtGoogle(started.authorizationUrl, 'google-uma')).resolves.toMatchObject({ state: started.state });
  });

  it('refuses a redirect URI that is not configured, and too many groups for one consent URL; stores nothing', async () => {
    const token = await stack.idToken('vic');
    const before = await snapshot();
    for (const redirectUri of ['https://evil.example/oauth/callback', `${REDIRECT}/`, `${REDIRECT}?next=evil`, 'http://localhost:5174/oauth/callback']) {
      const res = await api<ErrorBody>(stack, token, 'POST', '/v1/authorizations:start', { resources: ['myactivity.search'], redirectUri });
      expect(res.status, redirectUri).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'REDIRECT_URI_NOT_ALLOWED', field: 'redirectUri' });
    }
    const all = await api<ErrorBody>(stack, token, 'POST', '/v1/authorizations:start', { resources: [...RESOURCE_GROUPS], redirectUri: REDIRECT });
    expect(all.status).toBe(400);
    expect(all.body.error).toMatchObject({ code: 'TOO_MANY_RESOURCES', field: 'resources' });
    expect(all.body.error.message).toContain(String(MAX_AUTHORIZATION_URL_LENGTH));
    expect(await snapshot()).toBe(before);

    // The limit is the URL's length: the first groups that fit are one consent.
    const fit = await api<{ authorizationUrl: string }>(stack, token, 'POST', '/v1/authorizations:start', { resources: RESOURCE_GROUPS.slice(0, 15), redirectUri: REDIRECT });
    expect(fit.status).toBe(201);
    expect(fit.body.authorizationUrl.length).toBeLessThanOrEqual(MAX_AUTHORIZATION_URL_LENGTH);
  });
});

describe('POST /v1/authorizations {code, state}', () => {
  it('Mallory cannot store a code minted for the victim, under the victim\'s state or her own; the victim still can', async () => {
    const victim = await stack.idToken('victim');
    const mallory = await stack.idToken('mallory');
    // The victim starts a consent and approves at Google; Mallory gets hold of the redirect (code and state).
    const victimConsent = await startConsent(stack, victim, ['youtube.subscriptions']);
    const stolen = await consentAtGoogle(victimConsent.authorizationUrl, 'google-victim');
    const before = await snapshot();
    const callsBefore = tokenCalls();

    // Under the victim's state: not hers. Nothing reaches Google, the victim's state stays usable.
    const asVictim = await authorize(mallory, stolen);
    expect(asVictim.status).toBe(400);
    expect(asVictim.body.error).toMatchObject({ code: 'INVALID_STATE', field: 'state' });
    expect(tokenCalls()).toBe(callsBefore);

    // Under her own state: the exchange sends her verifier, which the victim's challenge refuses.
    const malloryConsent = await startConsent(stack, mallory, ['youtube.subscriptions']);
    const beforeOwn = await snapshot();
    const asMallory = await authorize(mallory, { code: stolen.code, state: malloryConsent.state });
    expect(asMallory.status).toBe(400);
    expect(asMallory.body.error).toMatchObject({ code: 'INVALID_AUTHORIZATION_CODE', field: 'code' });
    expect(stack.oauth.calls.at(-1)).toEqual({ grantType: 'authorization_code', status: 400, error: 'invalid_grant' });
    // Her state is spent (single use); no grant was stored for anyone.
    const afterOwn = JSON.parse(await snapshot()) as { grants: unknown[] };
    expect(afterOwn.grants).toEqual((JSON.parse(beforeOwn) as { grants: unknown[] }).grants);
    expect(afterOwn.grants).toEqual((JSON.parse(before) as { grants: unknown[] }).grants);

    // Mallory has no authorization, so no export of anyone's data.
    const attempt = await api<ErrorBody>(stack, mallory, 'POST', '/v1/exports', {});
    expect(attempt.status).toBe(409);
    expect(attempt.body.error.code).toBe('NO_AUTHORIZATION');

    // The victim completes their own consent with the same code, and their export lands under their name only.
    const mine = await authorize(victim, stolen);
    expect(mine.status).toBe(201);
    const exp = await api<ExportBody>(stack, victim, 'POST', '/v1/exports', {});
    expect(exp.status).toBe(202);
    expect((await waitForExport(stack, victim, exp.body.exportId)).state).toBe('SUCCEEDED');
    expect(await objectNames(stack, 'mallory/')).toEqual([]);
    expect((await objectNames(stack, 'victim/')).length).toBeGreaterThan(0);
    expect((await api<{ exports: unknown[] }>(stack, mallory, 'GET', '/v1/exports')).body.exports).toEqual([]);
  });

  it('refuses a replayed state, even with a fresh code; the stored grant stays as it was', async () => {
    const token = await stack.idToken('rosa');
    const started = await startConsent(stack, token, ['play.library']);
    const first = await consentAtGoogle(started.authorizationUrl, 'google-rosa');
    expect((await authorize(token, first)).status).toBe(201);
    const before = await snapshot();
    const callsBefore = tokenCalls();

    const replay = await authorize(token, first);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toMatchObject({ code: 'STATE_ALREADY_USED', field: 'state' });
    // A new code from the same consent URL (the user clicks again) under the used state.
    const again = await consentAtGoogle(started.authorizationUrl, 'google-rosa');
    const fresh = await authorize(token, again);
    expect(fresh.status).toBe(400);
    expect(fresh.body.error.code).toBe('STATE_ALREADY_USED');
    expect(tokenCalls()).toBe(callsBefore);
    expect(await snapshot()).toBe(before);
  });

  it('refuses an expired state (the functions\' clock moved past expiresAt)', async () => {
    const token = await stack.idToken('ezra');
    const started = await startConsent(stack, token, ['play.devices']);
    const consent = await consentAtGoogle(started.authorizationUrl, 'google-ezra');
    const before = await snapshot();
    clockOffsetMs = Date.parse(started.expiresAt) - Date.now() + 1;
    const late = await authorize(token, consent);
    expect(late.status).toBe(400);
    expect(late.body.error).toMatchObject({ code: 'STATE_EXPIRED', field: 'state' });
    expect(await snapshot()).toBe(before);
    // Not used up by the refusal: back within the window it works.
    clockOffsetMs = 0;
    expect((await authorize(token, consent)).status).toBe(201);
  });

  it('refuses a request without a state, and a state this API never issued', async () => {
    const token = await stack.idToken('nora');
    const started = await startConsent(stack, token, ['play.grouping']);
    const { code } = await consentAtGoogle(started.authorizationUrl, 'google-nora');
    const before = await snapshot();
    const callsBefore = tokenCalls();
    const cases: Array<[unknown, string, string]> = [
      [{ code }, 'INVALID_ARGUMENT', 'state'],
      [{ code, redirectUri: REDIRECT }, 'INVALID_ARGUMENT', 'state'],
      [{ code, state: '' }, 'INVALID_ARGUMENT', 'state'],
      [{ code, state: 'x'.repeat(43) }, 'INVALID_STATE', 'state'],
      [{ code, state: `${started.state}=` }, 'INVALID_STATE', 'state'],
    ];
    for (const [body, errorCode, field] of cases) {
      const res = await authorize(token, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatchObject({ code: errorCode, field });
    }
    expect(tokenCalls()).toBe(callsBefore);
    expect(await snapshot()).toBe(before);
  });

  it('parallel requests with one state: exactly one exchanges the code, the others are refused', async () => {
    const token = await stack.idToken('pat');
    const started = await startConsent(stack, token, ['play.installs']);
    const consent = await consentAtGoogle(started.authorizationUrl, 'google-pat');
    const callsBefore = tokenCalls();
    const answers = await Promise.all(Array.from({ length: 8 }, () => authorize(token, consent)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([201, 400, 400, 400, 400, 400, 400, 400]);
    for (const a of answers.filter((x) => x.status === 400)) expect(a.body.error.code).toBe('STATE_ALREADY_USED');
    expect(tokenCalls()).toBe(callsBefore + 1);
  });
});

describe('hostile bodies on the consent routes', () => {
  it('answers 200 seeded hostile requests with a JSON 4xx naming the problem, and stores nothing', async () => {
    const token = await stack.idToken('hostile');
    // A real state of this user: requests carry near misses of it (one that exists would rightly be claimed).
    const real = await startConsent(stack, token, ['myactivity.search']);
    let seed = 20261201;
    const r = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    const hostile = ["' OR '1'='1", '{"$ne": null}', '../../etc/passwd', '\u0000', 'a'.repeat(5000), '', ' ', 'javascript:alert(1)', 'http://169.254.169.254/', `${REDIRECT}#frag`, `${REDIRECT}/../cb`, REDIRECT.toUpperCase(), real.state.slice(1), `${real.state}\n`];
    const value = (): unknown => pick([pick(hostile), 42, null, true, [pick(hostile)], { $gt: '' }, pick(RESOURCE_GROUPS), [...RESOURCE_GROUPS, 'not.a.group']]);
    const before = await snapshot();
    const callsBefore = tokenCalls();
    const failures: string[] = [];
    for (let i = 0; i < 200; i++) {
      const start = r() < 0.5;
      const body = start
        ? { resources: r() < 0.5 ? [pick(RESOURCE_GROUPS)] : value(), redirectUri: value(), ...(r() < 0.2 ? { [pick(hostile)]: value() } : {}) }
        : { code: value(), state: r() < 0.3 ? pick([real.state.toUpperCase(), ` ${real.state}`, real.state.replace(/./, '+')]) : value(), ...(r() < 0.2 ? { redirectUri: REDIRECT } : {}) };
      const route = start ? '/v1/authorizations:start' : '/v1/authorizations';
      const res = await api<ErrorBody>(stack, token, 'POST', route, body);
      const ok = res.status >= 400 && res.status < 500 && typeof res.body?.error?.code === 'string' && res.body.error.message.length > 0;
      if (!ok) failures.push(`#${i} ${route} ${JSON.stringify(body).slice(0, 200)} -> ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    }
    expect(failures.slice(0, 5)).toEqual([]);
    expect(tokenCalls()).toBe(callsBefore);
    expect(await snapshot()).toBe(before);
  });
});
