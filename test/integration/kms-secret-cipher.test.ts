/**
 * The KMS envelope cipher through the real KeyManagementServiceClient, against the local gRPC
 * KMS stand-in: round trips, key rotation, context binding, tampering, and the local-key fallback.
 */
import { randomBytes } from 'node:crypto';
import type { KeyManagementServiceClient } from '@google-cloud/kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKmsClient, KmsSecretCipher } from '../../functions/src/adapters/kms-secret-cipher';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { startKmsServer, type KmsServer } from '../../local-stack/kms-server';

const KEY = 'projects/demo-kms/locations/europe-west1/keyRings/portability/cryptoKeys/refresh-tokens';
const OTHER_KEY = 'projects/demo-kms/locations/europe-west1/keyRings/portability/cryptoKeys/other';
const SECRET = '1//0refresh-token-' + randomBytes(24).toString('base64url');

let kms: KmsServer;
let client: KeyManagementServiceClient;

beforeAll(async () => {
  kms = await startKmsServer();
  kms.createKey(KEY);
  kms.createKey(OTHER_KEY);
  client = createKmsClient(kms.host);
});

afterAll(async () => {
  await client?.close();
  await kms?.stop();
});

describe('KmsSecretCipher', () => {
  it('wraps a fresh data key per secret with KMS and stores only ciphertext and the key version', async () => {
    const cipher = new KmsSecretCipher({ client, keyName: KEY });
    const a = await cipher.encrypt(SECRET, 'alice');
    const b = await cipher.encrypt(SECRET, 'alice');
    expect(a.keyVersion).toBe(`${KEY}/cryptoKeyVersions/1`);
    expect(a.wrappedKey).not.toBe(b.wrappedKey);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    const stored = JSON.stringify(a);
    expect(stored).not.toContain(SECRET);
    expect(stored).not.toContain(Buffer.from(SECRET).toString('base64'));
    expect(await cipher.decrypt(a, 'alice')).toBe(SECRET);
    expect(kms.calls.filter((c) => c.method === 'Encrypt' && c.code === 0).length).toBeGreaterThanOrEqual(2);
  });

  it('keeps old secrets readable after a rotation, and wraps new ones with the new primary', async () => {
    const cipher = new KmsSecretCipher({ client, keyName: KEY });
    const before = await cipher.encrypt(SECRET, 'bob');
    const v2 = kms.rotate(KEY);
    const after = await cipher.encrypt(SECRET, 'bob');
    expect(before.keyVersion).toBe(`${KEY}/cryptoKeyVersions/1`);
    expect(after.keyVersion).toBe(v2);
    expect(await cipher.decrypt(before, 'bob')).toBe(SECRET);
    expect(await cipher.decrypt(after, 'bob')).toBe(SECRET);
  });

  it('refuses ciphertext moved to another user (associated data), tampered, or under a disabled version', async () => {
    const cipher = new KmsSecretCipher({ client, keyName: OTHER_KEY });
    const s = await cipher.encrypt(SECRET, 'carol');
    await expect(cipher.decrypt(s, 'mallory')).rejects.toThrow(/INVALID_ARGUMENT: Decryption failed/);
    const body = Buffer.from(s.ciphertext, 'base64');
    body[14] = (body[14] as number) ^ 1;
    await expect(cipher.decrypt({ ...s, ciphertext: body.toString('base64') }, 'carol')).rejects.toThrow('unable to authenticate data');
    const wrapped = Buffer.from(s.wrappedKey, 'base64');
    wrapped[wrapped.length - 1] = (wrapped[wrapped.length - 1] as number) ^ 1;
    await expect(cipher.decrypt({ ...s, wrappedKey: wrapped.toString('base64') }, 'carol')).rejects.toThrow(/INVALID_ARGUMENT: Decryption failed/);
    kms.disableVersion(s.keyVersion);
    await expect(cipher.decrypt(s, 'carol')).rejects.toThrow(/FAILED_PRECONDITION|not enabled/);
  });

  it('reads secrets stored under the local key when given it as a fallback, and nothing else', async () => {
    const local = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
    const old = await local.encrypt(SECRET, 'dave');
    expect(await new KmsSecretCipher({ client, keyName: KEY, fallback: local }).decrypt(old, 'dave')).toBe(SECRET);
    await expect(new KmsSecretCipher({ client, keyName: KEY }).decrypt(old, 'dave')).rejects.toThrow(/not wrapped by Cloud KMS/);
  });

  it('refuses a key name that is not a CryptoKey', () => {
    expect(() => new KmsSecretCipher({ client, keyName: `${KEY}/cryptoKeyVersions/1` })).toThrow(/KMS_KEY_NAME/);
  });
});
