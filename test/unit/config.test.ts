import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../functions/src/config';
import { minimalEnv } from '../support/config-env';

const minimal = minimalEnv;

describe('configuration', () => {
  it('parses a minimal environment with production defaults', () => {
    const c = parseConfig(minimal);
    expect(c.apiRoot).toBe('https://dataportability.googleapis.com/');
    expect(c.auth).toEqual({
      issuer: 'https://securetoken.google.com/demo-config',
      audience: 'demo-config',
      jwksUrl: 'https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com',
    });
    expect(c.archive).toMatchObject({ bucket: 'my-archives', urlHosts: ['storage.googleapis.com'], allowHttp: false });
    expect(c.polling).toMatchObject({ initialSeconds: 300, maxSeconds: 3600 });
  });

  it('lists every bad variable at once', () => {
    try {
      parseConfig({ ...minimal, ARCHIVE_BUCKET: 'Bad Bucket', POLL_INITIAL_SECONDS: '-1', OAUTH_CLIENT_ID: '' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).toMatch(/ARCHIVE_BUCKET/);
      expect(problems).toMatch(/POLL_INITIAL_SECONDS/);
      expect(problems).toMatch(/OAUTH_CLIENT_ID/);
    }
  });

  it('refuses an initial poll interval above the maximum', () => {
    expect(() => parseConfig({ ...minimal, POLL_INITIAL_SECONDS: '4000' })).toThrow(/POLL_INITIAL_SECONDS/);
  });

  it('reads the consent settings: the authorization endpoint, the redirect URI allow-list, the state lifetime', () => {
    expect(parseConfig(minimal).consent).toEqual({ authUrl: 'https://accounts.google.com/o/oauth2/v2/auth', redirectUris: [], stateTtlSeconds: 600 });
    const c = parseConfig({ ...minimal, OAUTH_REDIRECT_URIS: 'https://app.example/oauth/callback, http://localhost:5173/cb', OAUTH_STATE_TTL_SECONDS: '900' });
    expect(c.consent).toMatchObject({ redirectUris: ['https://app.example/oauth/callback', 'http://localhost:5173/cb'], stateTtlSeconds: 900 });
    for (const bad of ['http://app.example/cb', 'https://app.example/cb#frag', 'not a url', 'javascript:alert(1)']) {
      expect(() => parseConfig({ ...minimal, OAUTH_REDIRECT_URIS: `https://ok.example/cb,${bad}` }), bad).toThrow(/OAUTH_REDIRECT_URIS/);
    }
    expect(() => parseConfig({ ...minimal, OAUTH_STATE_TTL_SECONDS: '10' })).toThrow(/OAUTH_STATE_TTL_SECONDS/);
  });
});
