/** The seam that says who calls the API: verifies the frontend's ID tokens. */

export interface IdTokenVerifier {
  /** Returns the verified subject (`sub`); throws UnauthenticatedError otherwise. */
  verify(idToken: string): Promise<{ userId: string }>;
  /** Optional: fetch signing keys ahead of the first token. */
  warm?(): Promise<void>;
}
