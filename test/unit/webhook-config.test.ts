/**
 * WEBHOOK_ENDPOINTS is refused at start when an endpoint is not https, points at a loopback or
 * private address (as written, or once its host is resolved), or names no Secret Manager secret;
 * http://127.0.0.1 is allowed only with the local stack's WEBHOOK_ALLOW_LOCAL_HTTP.
 */
import { describe, expect, it } from 'vitest';
import { assertWebhookHostsPublic, ConfigError, parseConfig } from '../../functions/src/config';
import type { HostLookup } from '../../functions/src/adapters/address-guard';
import { minimalEnv } from '../support/config-env';

const minimal = { ...minimalEnv, WEBHOOK_FUNCTION_URL: 'https://europe-west1-demo-config.cloudfunctions.net/deliverWebhooks' };
const SECRET = 'projects/demo-config/secrets/app-webhook/versions/1';
const withEndpoints = (endpoints: unknown, extra: Record<string, string> = {}) => ({ ...minimal, WEBHOOK_ENDPOINTS: JSON.stringify(endpoints), ...extra });

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}

describe('webhook endpoints in the configuration', () => {
  it('are none by default, and parse a valid list', () => {
    expect(parseConfig(minimal).webhooks).toMatchObject({ endpoints: [], queue: 'portability-webhooks', maxAttempts: 12, timeoutSeconds: 10, allowLocalHttp: false });
    const c = parseConfig(withEndpoints([{ id: 'app', url: 'https://hooks.example.com/portability', secret: SECRET }]));
    expect(c.webhooks.endpoints).toEqual([{ id: 'app', url: 'https://hooks.example.com/portability', secret: SECRET }]);
  });

  it.each([
    ['http', { id: 'app', url: 'http://hooks.example.com/', secret: SECRET }, /endpoint app: url must be https \(got http:\)/],
    ['loopback name', { id: 'app', url: 'https://localhost/', secret: SECRET }, /endpoint app: url the host localhost is a loopback address/],
    ['loopback address', { id: 'app', url: 'https://127.0.0.1:8443/', secret: SECRET }, /loopback address/],
    ['private address', { id: 'app', url: 'https://10.1.2.3/', secret: SECRET }, /the host 10\.1\.2\.3 is not a public address/],
    ['metadata server', { id: 'app', url: 'https://169.254.169.254/', secret: SECRET }, /not a public address/],
    ['private IPv6', { id: 'app', url: 'https://[fd00::1]/', secret: SECRET }, /not a public address/],
    ['user info', { id: 'app', url: 'https://u:p@hooks.example.com/', secret: SECRET }, /must not carry user info/],
    ['no secret', { id: 'app', url: 'https://hooks.example.com/' }, /secret: required/],
    ['a secret that is not a version name', { id: 'app', url: 'https://hooks.example.com/', secret: 'whsec_abc' }, /secret: must be projects\/…\/secrets\/…\/versions\/N/],
    ['a bad id', { id: 'App!', url: 'https://hooks.example.com/', secret: SECRET }, /id: lowercase/],
  ])('refuse %s', (_what, endpoint, message) => {
    const problems = problemsOf(withEndpoints([endpoint]));
    expect(problems.join('\n')).toMatch(/WEBHOOK_ENDPOINTS/);
    expect(problems.join('\n')).toMatch(message);
  });

  it('refuse repeated ids, JSON that is not a list, and endpoints without the deliverer URL', () => {
    const e = { id: 'app', url: 'https://hooks.example.com/', secret: SECRET };
    expect(problemsOf(withEndpoints([e, e])).join('\n')).toMatch(/ids must be unique \(repeated: app\)/);
    expect(problemsOf({ ...minimal, WEBHOOK_ENDPOINTS: '{not json' }).join('\n')).toMatch(/WEBHOOK_ENDPOINTS: not JSON/);
    const { WEBHOOK_FUNCTION_URL: _u, ...noUrl } = withEndpoints([e]);
    expect(problemsOf(noUrl)).toEqual(['WEBHOOK_FUNCTION_URL: required when WEBHOOK_ENDPOINTS lists endpoints']);
  });

  it('allow http://127.0.0.1 only with WEBHOOK_ALLOW_LOCAL_HTTP (the local stack), never a private network', () => {
    const local = { id: 'dev', url: 'http://127.0.0.1:8123/hooks', secret: SECRET };
    expect(problemsOf(withEndpoints([local])).join('\n')).toMatch(/must be https/);
    expect(parseConfig(withEndpoints([local], { WEBHOOK_ALLOW_LOCAL_HTTP: 'true' })).webhooks.endpoints).toHaveLength(1);
    expect(problemsOf(withEndpoints([{ ...local, url: 'http://192.168.1.5/hooks' }], { WEBHOOK_ALLOW_LOCAL_HTTP: 'true' })).join('\n')).toMatch(/must be https/);
  });

  it('refuse at start a host that resolves to a private address or not at all, listing every bad endpoint', async () => {
    const lookup: HostLookup = async (host) => {
      if (host === 'hooks.example.com') return [{ address: '93.184.216.34', family: 4 }];
      if (host === 'internal.example.com') return [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.7', family: 4 }];
      throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    const ok = parseConfig(withEndpoints([{ id: 'app', url: 'https://hooks.example.com/', secret: SECRET }]));
    await expect(assertWebhookHostsPublic(ok, lookup)).resolves.toBeUndefined();
    const bad = parseConfig(
      withEndpoints([
        { id: 'app', url: 'https://hooks.example.com/', secret: SECRET },
        { id: 'inside', url: 'https://internal.example.com/', secret: SECRET },
        { id: 'gone', url: 'https://nowhere.example.com/', secret: SECRET },
      ]),
    );
    const err = await assertWebhookHostsPublic(bad, lookup).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      'WEBHOOK_ENDPOINTS: endpoint inside: the host internal.example.com resolves to a non-public address (10.0.0.7)',
      'WEBHOOK_ENDPOINTS: endpoint gone: the host nowhere.example.com did not resolve',
    ]);
  });
});
