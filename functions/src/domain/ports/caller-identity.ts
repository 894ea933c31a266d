/** The seams that say who calls: the frontend's users (ID tokens), and Google's task and scheduler calls (OIDC tokens). */

export interface IdTokenVerifier {
  /** Returns the verified subject (`sub`); throws UnauthenticatedError otherwise. */
  verify(idToken: string): Promise<{ userId: string }>;
  /** Optional: fetch signing keys ahead of the first token. */
  warm?(): Promise<void>;
}

/** Why a private function refuses its caller: 401 without a valid token, 403 for the wrong invoker. */
export interface CallerRefusal {
  status: 401 | 403;
  message: string;
}

/** Checks the `Authorization` header of a request to a task, sweep or schedule function. */
export interface TaskCallerCheck {
  /** Undefined when the caller is the configured invoker. */
  check(authorization: string | undefined): Promise<CallerRefusal | undefined>;
  /** Fetches the signing keys ahead of the first token (a cold start overlaps it with loading). */
  warm?(): Promise<void>;
}
