/**
 * Webhook secrets through the real `@google-cloud/secret-manager` client against the local
 * Secret Manager stand-in: read once per version and instance (cached), `latest` followed after
 * the cache time, a failed read not cached, errors that never quote a secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretManagerClient, SECRET_CACHE_MS, SecretManagerSource } from '../../functions/src/adapters/secret-manager-source';
import { startSecretManagerServer, type SecretManagerServer } from '../../local-stack/secret-manager-server';

let server: SecretManagerServer;
let client: ReturnType<typeof createSecretManagerClient>;

beforeAll(async () => {
  server = await startSecretManagerServer();
  client = createSecretManagerClient(server.host);
});

afterAll(async () => {
  await client?.close();
  await server?.stop();
});

describe('secrets from Secret Manager', () => {
  it('are read through the real client and cached per version', async () => {
    const v1 = server.addVersion('projects/demo-sm/secrets/app-webhook', 'whsec_first');
    let t = 1_000_000;
    const source = new SecretManagerSource(client, () => t);
    const [a, b] = await Promise.all([source.access(v1), source.access(v1)]);
    expect([a, b]).toEqual(['whsec_first', 'whsec_first']);
    expect(await source.access(v1)).toBe('whsec_first');
    expect(server.accessed.filter((n) => n === v1)).toHaveLength(1);

    const latest = 'projects/demo-sm/secrets/app-webhook/versions/latest';
    expect(await source.access(latest)).toBe('whsec_first');
    server.addVersion('projects/demo-sm/secrets/app-webhook', 'whsec_second');
    expect(await source.access(latest)).toBe('whsec_first');
    t += SECRET_CACHE_MS + 1;
    expect(await source.access(latest)).toBe('whsec_second');
  });

  it('do not cache a failed read, and fail with the gRPC error (no secret in it)', async () => {
    const source = new SecretManagerSource(client);
    const missing = 'projects/demo-sm/secrets/not-yet/versions/1';
    await expect(source.access(missing)).rejects.toMatchObject({ code: 5 });
    server.addVersion('projects/demo-sm/secrets/not-yet', 'whsec_now');
    expect(await source.access(missing)).toBe('whsec_now');

    const disabled = server.addVersion('projects/demo-sm/secrets/off', 'whsec_off');
    server.disableVersion(disabled);
    const err = (await new SecretManagerSource(client).access(disabled).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 9 });
    expect(String(err.message)).not.toContain('whsec_off');
  });
});
