/**
 * Secret versions read from Secret Manager (AccessSecretVersion), checked against the payload's
 * CRC32C and cached per instance: a webhook secret is read once per version and instance, not
 * once per delivery. A failed read is not cached. Secrets are never logged.
 */
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import type { SecretSource } from '../domain/ports/webhooks';
import { Crc32c } from './crc32c';
import { grpcEmulatorOptions } from './grpc-emulator';

/** How long a version named `latest` (or any) is kept before it is read again. */
export const SECRET_CACHE_MS = 10 * 60_000;

/** With `emulatorHost` (SECRET_MANAGER_EMULATOR_HOST) the client speaks plaintext gRPC to the local stand-in. */
export function createSecretManagerClient(emulatorHost?: string): SecretManagerServiceClient {
  return emulatorHost ? new SecretManagerServiceClient(grpcEmulatorOptions(emulatorHost, 'SECRET_MANAGER_EMULATOR_HOST')) : new SecretManagerServiceClient();
}

const crc32c = (b: Buffer): number => Buffer.from(new Crc32c().update(b).digestBase64(), 'base64').readUInt32BE(0);

export class SecretManagerSource implements SecretSource {
  private readonly cache = new Map<string, { value: Promise<string>; until: number }>();

  constructor(
    private readonly client: Pick<SecretManagerServiceClient, 'accessSecretVersion'>,
    private readonly now: () => number = Date.now,
  ) {}

  access(versionName: string): Promise<string> {
    const at = this.now();
    const hit = this.cache.get(versionName);
    if (hit && hit.until > at) return hit.value;
    const value = this.read(versionName).catch((err: unknown) => {
      this.cache.delete(versionName);
      throw err;
    });
    this.cache.set(versionName, { value, until: at + SECRET_CACHE_MS });
    return value;
  }

  private async read(name: string): Promise<string> {
    const [version] = await this.client.accessSecretVersion({ name });
    const data = version.payload?.data;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data ?? new Uint8Array());
    const expected = version.payload?.dataCrc32c;
    if (expected !== null && expected !== undefined && Number(String(expected)) !== crc32c(bytes)) {
      throw new Error(`Secret Manager answered a corrupted payload for ${name} (CRC32C mismatch)`);
    }
    return bytes.toString('utf8');
  }
}
