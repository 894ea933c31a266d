/**
 * Envelope encryption with Cloud KMS (production). Each secret gets its own random AES-256 data
 * key, generated here; the secret is sealed with it (AES-256-GCM, the user id as associated
 * data), and the data key is wrapped by KMS `Encrypt` under the configured CryptoKey. The stored
 * document holds only the ciphertext, the wrapped key and the CryptoKeyVersion that wrapped it.
 *
 * Unwrapping calls KMS `Decrypt` with the CryptoKey name: KMS reads the version from the
 * ciphertext itself, so rotating the key (a new primary version) keeps older grants readable.
 * The plaintext data key never leaves this process and is never stored.
 */
import { randomBytes } from 'node:crypto';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { grpcEmulatorOptions } from './grpc-emulator';
import type { EncryptedSecret } from '../domain/model';
import type { SecretCipher } from '../domain/ports/secret-cipher';
import { open, seal } from './aes-gcm';
import { Crc32c } from './crc32c';

const KEY_RE = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+$/;
const VERSION_RE = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+)\/cryptoKeyVersions\/\d+$/;

/** The slice of KeyManagementServiceClient this cipher uses. */
export type KmsClient = Pick<KeyManagementServiceClient, 'encrypt' | 'decrypt'>;

export interface KmsSecretCipherOptions {
  client: KmsClient;
  /** `projects/…/locations/…/keyRings/…/cryptoKeys/…` */
  keyName: string;
  /** Reads secrets stored under another scheme (e.g. `local-v1` from before KMS was configured). */
  fallback?: SecretCipher;
}

/** A KMS client; with `emulatorHost` (host:port) it speaks plaintext gRPC to a local stand-in. */
export function createKmsClient(emulatorHost?: string): KeyManagementServiceClient {
  if (!emulatorHost) return new KeyManagementServiceClient();
  return new KeyManagementServiceClient(grpcEmulatorOptions(emulatorHost, 'KMS emulator host'));
}

function crc32c(b: Buffer): number {
  return Buffer.from(new Crc32c().update(b).digestBase64(), 'base64').readUInt32BE(0);
}

const toBuffer = (v: Uint8Array | string | null | undefined): Buffer =>
  v === null || v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v);

const int64 = (v: { value?: unknown } | null | undefined): number | undefined =>
  v && v.value !== undefined && v.value !== null ? Number(String(v.value)) : undefined;

export class KmsSecretCipher implements SecretCipher {
  constructor(private readonly opts: KmsSecretCipherOptions) {
    if (!KEY_RE.test(opts.keyName)) throw new Error('KMS_KEY_NAME must be projects/…/locations/…/keyRings/…/cryptoKeys/…');
  }

  async encrypt(plaintext: string, context: string): Promise<EncryptedSecret> {
    const dataKey = randomBytes(32);
    try {
      const aad = Buffer.from(`dek:${context}`, 'utf8');
      const [res] = await this.opts.client.encrypt({
        name: this.opts.keyName,
        plaintext: dataKey,
        additionalAuthenticatedData: aad,
        plaintextCrc32c: { value: crc32c(dataKey) },
        additionalAuthenticatedDataCrc32c: { value: crc32c(aad) },
      });
      const wrapped = toBuffer(res.ciphertext);
      // KMS's integrity fields: a request or answer corrupted in transit must not be stored.
      if (!res.verifiedPlaintextCrc32c || int64(res.ciphertextCrc32c) !== crc32c(wrapped)) {
        throw new Error('Cloud KMS Encrypt failed its integrity check');
      }
      if (!res.name || !VERSION_RE.test(res.name)) throw new Error('Cloud KMS Encrypt answered no key version');
      return {
        keyVersion: res.name,
        wrappedKey: wrapped.toString('base64'),
        ciphertext: seal(dataKey, Buffer.from(plaintext, 'utf8'), Buffer.from(context, 'utf8')).toString('base64'),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  async decrypt(secret: EncryptedSecret, context: string): Promise<string> {
    const m = VERSION_RE.exec(secret.keyVersion);
    if (!m) {
      if (this.opts.fallback) return this.opts.fallback.decrypt(secret, context);
      throw new Error('The secret was not wrapped by Cloud KMS');
    }
    const wrapped = Buffer.from(secret.wrappedKey, 'base64');
    // The CryptoKey the secret names (it may be an older key than the configured one); KMS picks the version.
    const [res] = await this.opts.client.decrypt({
      name: m[1] as string,
      ciphertext: wrapped,
      additionalAuthenticatedData: Buffer.from(`dek:${context}`, 'utf8'),
      ciphertextCrc32c: { value: crc32c(wrapped) },
    });
    const dataKey = toBuffer(res.plaintext);
    try {
      if (int64(res.plaintextCrc32c) !== crc32c(dataKey)) throw new Error('Cloud KMS Decrypt failed its integrity check');
      return open(dataKey, Buffer.from(secret.ciphertext, 'base64'), Buffer.from(context, 'utf8')).toString('utf8');
    } finally {
      dataKey.fill(0);
    }
  }
}
