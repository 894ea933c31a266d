/**
 * V4 signed URLs through the storage client. In production the client has no private key and
 * signs through IAM `signBlob` as the function's own service account (which Terraform lets sign as
 * itself only); the local stack hands it a generated key, which its Cloud Storage stand-in trusts.
 */
import type { Storage } from '@google-cloud/storage';
import type { DownloadSigner } from '../domain/ports/download-signer';

export class CloudStorageDownloadSigner implements DownloadSigner {
  constructor(private readonly storage: Storage) {}

  async signedReadUrl(object: { bucket: string; name: string }, issuedAt: number, expiresAt: number): Promise<string> {
    const [url] = await this.storage
      .bucket(object.bucket)
      .file(object.name)
      .getSignedUrl({ version: 'v4', action: 'read', accessibleAt: issuedAt, expires: expiresAt });
    return url;
  }
}
