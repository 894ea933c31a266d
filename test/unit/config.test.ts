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

describe('retention and expiry warnings', () => {
  const problemsOf = (env: Record<string, string>): string[] => {
    try {
      parseConfig({ ...minimal, ...env });
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };

  it('defaults: archives 30 days, records 90, the trail 365 more, warnings 7 days ahead', () => {
    const c = parseConfig(minimal);
    expect(c.retention).toEqual({ archiveDays: 30, recordDays: 90, auditDays: 365 });
    expect(c.grantExpiryWarningDays).toBe(7);
    expect(parseConfig({ ...minimal, ARCHIVE_RETENTION_DAYS: '3650', RECORD_RETENTION_DAYS: '3650', AUDIT_RETENTION_DAYS: '1', GRANT_EXPIRY_WARNING_DAYS: '30' }).retention).toEqual({ archiveDays: 3650, recordDays: 3650, auditDays: 1 });
  });

  it('refuses values out of range with a message that says the range', () => {
    for (const [name, value] of [
      ['ARCHIVE_RETENTION_DAYS', '0'],
      ['ARCHIVE_RETENTION_DAYS', '3651'],
      ['RECORD_RETENTION_DAYS', '-5'],
      ['AUDIT_RETENTION_DAYS', '1.5'],
      ['AUDIT_RETENTION_DAYS', 'forever'],
    ] as const) {
      expect(problemsOf({ [name]: value }), `${name}=${value}`).toEqual([`${name}: must be a whole number of days from 1 to 3650`]);
    }
    expect(problemsOf({ GRANT_EXPIRY_WARNING_DAYS: '31' })).toEqual(['GRANT_EXPIRY_WARNING_DAYS: must be a whole number of days from 1 to 30']);
  });

  it('refuses records kept shorter than the archives they list', () => {
    expect(problemsOf({ ARCHIVE_RETENTION_DAYS: '60', RECORD_RETENTION_DAYS: '59' })).toEqual([
      'RECORD_RETENTION_DAYS: must be at least ARCHIVE_RETENTION_DAYS (60), so no archive outlives the record that lists it',
    ]);
    expect(problemsOf({ ARCHIVE_RETENTION_DAYS: '60', RECORD_RETENTION_DAYS: '60' })).toEqual([]);
  });
});
