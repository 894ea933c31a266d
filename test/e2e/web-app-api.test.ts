/**
 * The API pieces the web app needs, through the public API on the local stack: the resource-group
 * catalogue, and the caller's current grant (requested vs granted after a partial consent,
 * one-time vs time-based, expiry, the Testing-mode warning, nothing connected), with the CORS
 * answer for the web app's origin and no other.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RESOURCE_GROUPS, scopeOf } from '../../functions/src/domain/resource-groups';
import { LOCAL_REDIRECT_URI, startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { webAppEnv } from '../../local-stack/web-server';
import { api, authorizedUser } from '../support/api-client';

const WEB_ORIGIN = 'http://localhost:5999';
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({ firestoreEmulatorHost: inject('firestoreEmulatorHost'), projectId: 'demo-web-app-api', logLevel: 'silent', env: webAppEnv(WEB_ORIGIN, { OAUTH_REDIRECT_URIS: LOCAL_REDIRECT_URI }) });
});

afterAll(async () => {
  await stack?.stop();
});

type Entry = { id: string; title: string; description: string; scope: string; product: string; timeFilter: boolean };

describe('GET /v1/resource-groups', () => {
  it('lists every group once with a title, a description, its scope, its product and whether time filters apply', async () => {
    const token = await stack.idToken('cat');
    const res = await api<{ resourceGroups: Entry[] }>(stack, token, 'GET', '/v1/resource-groups');
    expect(res.status).toBe(200);
    const groups = res.body.resourceGroups;
    expect(groups.map((g) => g.id)).toEqual([...RESOURCE_GROUPS]);
    for (const g of groups) {
      expect(g.title.length, g.id).toBeGreaterThan(3);
      expect(g.description, g.id).toMatch(/\.$/);
      expect(g.scope).toBe(scopeOf(g.id));
      expect(g.product.length, g.id).toBeGreaterThan(2);
    }
    expect(groups.find((g) => g.id === 'myactivity.search')).toMatchObject({ product: 'My Activity', timeFilter: true });
    expect(groups.find((g) => g.id === 'chrome.history')).toMatchObject({ product: 'Chrome', timeFilter: true });
    expect(groups.find((g) => g.id === 'youtube.subscriptions')).toMatchObject({ product: 'YouTube', timeFilter: false });
    expect(new Set(groups.map((g) => g.title)).size).toBe(groups.length);
  });

  it('refuses query parameters and anonymous callers', async () => {
    expect((await api(stack, await stack.idToken('cat'), 'GET', '/v1/resource-groups?lang=de')).status).toBe(400);
    expect((await api(stack, undefined, 'GET', '/v1/resource-groups')).status).toBe(401);
  });
});

describe('GET /v1/authorizations', () => {
  it('answers NONE before any consent and after access is withdrawn', async () => {
    const token = await stack.idToken('newcomer');
    const res = await api(stack, token, 'GET', '/v1/authorizations');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ state: 'NONE', grantedResources: [], notGrantedResources: [], accessType: 'ONE_TIME', oneTimeResources: [], timeBasedResources: [], testingMode: false, warnings: [], expiresSoon: false });
  });

  it('tells requested from granted after a partial one-time consent', async () => {
    const { token } = await authorizedUser(stack, 'pat', ['myactivity.search', 'chrome.history', 'youtube.subscriptions'], { granted: ['chrome.history', 'myactivity.search'] });
    const res = await api<Record<string, unknown>>(stack, token, 'GET', '/v1/authorizations');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      state: 'ACTIVE',
      requestedResources: ['chrome.history', 'myactivity.search', 'youtube.subscriptions'],
      grantedResources: ['chrome.history', 'myactivity.search'],
      notGrantedResources: ['youtube.subscriptions'],
      accessType: 'ONE_TIME',
      testingMode: false,
      warnings: [],
    });
    expect(res.body.expiresAt).toBeUndefined();
    expect(res.body.renewalUrl).toBeUndefined();

    expect((await api(stack, token, 'POST', '/v1/authorizations:reset', {})).status).toBe(200);
    expect((await api(stack, token, 'GET', '/v1/authorizations')).body).toMatchObject({ state: 'NONE' });
  });

  it('gives a time-based grant its expiry, and warns when Google ends it within 7 days (a Testing-mode client)', async () => {
    const thirty = await authorizedUser(stack, 'tess', ['myactivity.search'], { accessType: 'TIME_BASED' });
    const t = (await api<Record<string, unknown>>(stack, thirty.token, 'GET', '/v1/authorizations')).body;
    // 30 days away: not within GRANT_EXPIRY_WARNING_DAYS (7).
    expect(t).toMatchObject({ accessType: 'TIME_BASED', timeBasedResources: ['myactivity.search'], testingMode: false, warnings: [], expiresSoon: false });
    const days = (Date.parse(t.expiresAt as string) - Date.parse(t.grantedAt as string)) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    // The simulator's consent screen knob for a grant Google ends after 7 days.
    const token = await stack.idToken('tim');
    const started = (await api<{ authorizationUrl: string }>(stack, token, 'POST', '/v1/authorizations:start', { resources: ['chrome.history'], redirectUri: stack.config.consent.redirectUris[0] })).body;
    const url = new URL(started.authorizationUrl);
    for (const [k, v] of [['login_hint', 'google-tim'], ['sim_access_type', 'TIME_BASED'], ['sim_days', '7']]) url.searchParams.set(k as string, v as string);
    const back = new URL((await fetch(url, { redirect: 'manual' })).headers.get('location') as string).searchParams;
    expect((await api(stack, token, 'POST', '/v1/authorizations', { code: back.get('code'), state: back.get('state') })).status).toBe(201);
    const w = (await api<{ testingMode: boolean; warnings: Array<{ code: string }>; expiresSoon: boolean }>(stack, token, 'GET', '/v1/authorizations')).body;
    expect(w.testingMode).toBe(true);
    // Ends within the 7-day warning period: the web app shows the renewal notice.
    expect(w.expiresSoon).toBe(true);
    expect(w.warnings.map((x) => x.code)).toEqual(['TESTING_MODE_7_DAYS']);
  });

  it('lets the web app\'s origin read it across origins, and no other origin', async () => {
    const token = await stack.idToken('cors');
    const ok = await api(stack, token, 'GET', '/v1/authorizations', undefined, { Origin: WEB_ORIGIN });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(WEB_ORIGIN);
    const other = await api(stack, token, 'GET', '/v1/authorizations', undefined, { Origin: 'http://localhost:5998' });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});
