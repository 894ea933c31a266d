/**
 * The one seam between the app and who signs people in: Firebase Authentication in production
 * (the API's default issuer), the local stack's issuer on a developer's machine. The rest of the
 * app sees only this interface.
 */
import type { AuthSettings } from '../runtime-config';

export interface SignedInUser {
  /** What the app shows: the local account name, or the Firebase user's e-mail. */
  displayName: string;
}

export interface SignIn {
  /** The user signed in now (restored after a reload), or undefined. */
  current(): Promise<SignedInUser | undefined>;
  /** Local: `name` is the test account to sign in as; Firebase: opens Google's sign-in. */
  signIn(name?: string): Promise<SignedInUser>;
  signOut(): Promise<void>;
  /** A fresh ID token for the API's `Authorization: Bearer`. */
  idToken(): Promise<string>;
  /** The local sign-in asks for an account name; Firebase's does not. */
  readonly asksForName: boolean;
}

export async function createSignIn(settings: AuthSettings): Promise<SignIn> {
  if (settings.mode === 'local') {
    const { LocalSignIn } = await import('./local-sign-in');
    return new LocalSignIn(settings.idTokenUrl);
  }
  // Loaded only in production: the local build never fetches the Firebase SDK.
  const { FirebaseSignIn } = await import('./firebase-sign-in');
  return FirebaseSignIn.create(settings);
}
