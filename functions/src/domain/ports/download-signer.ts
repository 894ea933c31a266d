/** The seam to whoever signs short-lived links to our bucket's objects (Cloud Storage V4 signed URLs). */

export interface DownloadSigner {
  /**
   * A GET link to this object, valid from `issuedAt` to `expiresAt` (epoch ms, whole seconds). The
   * link is a credential: whoever holds it reads the object, so it is never logged or stored.
   */
  signedReadUrl(object: { bucket: string; name: string }, issuedAt: number, expiresAt: number): Promise<string>;
}
