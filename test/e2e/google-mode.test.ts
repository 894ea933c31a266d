/**
 * `npm start -- --google`: the local stack's functions composed for Google's real side. Checked on
 * the configuration they run with, and on the consent URL the API answers (nothing here calls
 * Google: the test never follows that URL).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GOOGLE_ENDPOINTS, googleModeEnv } from '../../local-stack/google-mode';
import { LOCAL_REDIRECT_URI, startLocalStack, type LocalStack } from '../../local-stack/local-stack';
import { api } from '../support/api-client';

const CLIENT_ID = '123456789012-abcdef.apps.googleusercontent.com';
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    firestoreEmulatorHost: inject('firestoreEmulatorHost'),
    projectId: 'demo-google-mode',
    logLevel: 'silent',
    env: googleModeEnv({ OAUTH_CLIENT_ID: CLIENT_ID, OAUTH_CLIENT_SECRET: 'real-secret-from-the-console' }),
  });
});

afterAll(async () => {
  await stack?.stop();
});

describe('npm start -- --google', () => {
  it('refuses to start without a real OAuth client', () => {
    expect(() => googleModeEnv({ OAUTH_CLIENT_ID: CLIENT_ID })).toThrow(/OAUTH_CLIENT_SECRET/);
    expect(() => googleModeEnv({})).toThrow(/OAUTH_CLIENT_ID/);
  });

  it('talks to Google\'s consent screen, token endpoint and API, and copies only from storage.googleapis.com over https into the local bucket', () => {
    const c = stack.config;
    expect(c.apiRoot).toBe(GOOGLE_ENDPOINTS.DATAPORTABILITY_API_ROOT);
    expect(c.oauth).toMatchObject({ clientId: CLIENT_ID, clientSecret: 'real-secret-from-the-console', tokenUrl: 'https://oauth2.googleapis.com/token' });
    expect(c.consent.authUrl).toBe('https://accounts.google.com/o/oauth2/v2/auth');
    expect(c.archive).toMatchObject({ urlHosts: ['storage.googleapis.com'], allowHttp: false, bucket: 'local-archives' });
    // The rest stays on this machine.
    expect(c.storageApiEndpoint).toBe(stack.gcs.endpoint);
    expect(c.firestoreEmulatorHost).toBe(stack.firestoreEmulatorHost);
    expect(c.tasks.emulatorHost).toBe(stack.tasks.host);
  });

  it('answers consent URLs at accounts.google.com for the real client, with the local callback', async () => {
    const token = await stack.idToken('gina');
    const res = await api<{ authorizationUrl: string }>(stack, token, 'POST', '/v1/authorizations:start', { resources: ['myactivity.search'], redirectUri: LOCAL_REDIRECT_URI });
    expect(res.status).toBe(201);
    const url = new URL(res.body.authorizationUrl);
    expect(url.origin + url.pathname).toBe('https://accounts.google.com/o/oauth2/v2/auth');
    expect(url.searchParams.get('client_id')).toBe(CLIENT_ID);
    expect(url.searchParams.get('redirect_uri')).toBe(LOCAL_REDIRECT_URI);
  });
});
