/**
 * Envelope encryption with a key held in configuration (the local stack and tests; production
 * wraps data keys with Cloud KMS instead). Each secret gets its own random AES-256 data key; the
 * data key is wrapped by the master key; the document holds only ciphertext and the key version.
 */
import { randomBytes } from 'node:crypto';
import type { EncryptedSecret } from '../domain/model';
import type { SecretCipher } from '../domain/ports/secret-cipher';
import { open, seal } from './aes-gcm';

export class LocalKeySecretCipher implements SecretCipher {
  private readonly masterKey: Buffer;

  constructor(
    masterKeyBase64: string,
    private readonly keyVersion = 'local-v1',
  ) {
    this.masterKey = Buffer.from(masterKeyBase64, 'base64');
    if (this.masterKey.length !== 32) throw new Error('TOKEN_ENCRYPTION_KEY must be 32 bytes, base64-encoded');
  }

  async encrypt(plaintext: string, context: string): Promise<EncryptedSecret> {
    const dataKey = randomBytes(32);
    const aad = Buffer.from(context, 'utf8');
    return {
      keyVersion: this.keyVersion,
      wrappedKey: seal(this.masterKey, dataKey, Buffer.from(`dek:${context}`, 'utf8')).toString('base64'),
      ciphertext: seal(dataKey, Buffer.from(plaintext, 'utf8'), aad).toString('base64'),
    };
  }

  async decrypt(secret: EncryptedSecret, context: string): Promise<string> {
    if (secret.keyVersion !== this.keyVersion) throw new Error(`Unknown key version ${secret.keyVersion}`);
    const dataKey = open(this.masterKey, Buffer.from(secret.wrappedKey, 'base64'), Buffer.from(`dek:${context}`, 'utf8'));
    return open(dataKey, Buffer.from(secret.ciphertext, 'base64'), Buffer.from(context, 'utf8')).toString('utf8');
  }
}
