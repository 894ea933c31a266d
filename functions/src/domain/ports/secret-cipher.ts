/** The seam to envelope encryption of secrets at rest (Cloud KMS in production, a local key offline). */
import type { EncryptedSecret } from '../model';

export interface SecretCipher {
  /** `context` (e.g. the user id) is bound as associated data: ciphertext moved to another user fails to decrypt. */
  encrypt(plaintext: string, context: string): Promise<EncryptedSecret>;
  decrypt(secret: EncryptedSecret, context: string): Promise<string>;
}

