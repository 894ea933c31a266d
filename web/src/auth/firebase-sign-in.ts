/**
 * Sign-in with Firebase Authentication (Google as the provider), the API's default issuer
 * (`https://securetoken.google.com/<project>`). A popup, so the page keeps its state.
 */
import { initializeApp } from 'firebase/app';
import { browserLocalPersistence, getAuth, GoogleAuthProvider, setPersistence, signInWithPopup, signOut, type Auth, type User } from 'firebase/auth';
import type { AuthSettings } from '../runtime-config';
import type { SignedInUser, SignIn } from './sign-in';

const userOf = (u: User): SignedInUser => ({ displayName: u.email ?? u.displayName ?? u.uid });

export class FirebaseSignIn implements SignIn {
  readonly asksForName = false;

  private constructor(private readonly auth: Auth) {}

  static async create(settings: Extract<AuthSettings, { mode: 'firebase' }>): Promise<FirebaseSignIn> {
    const app = initializeApp({ apiKey: settings.apiKey, authDomain: settings.authDomain, projectId: settings.projectId, ...(settings.appId ? { appId: settings.appId } : {}) });
    const auth = getAuth(app);
    await setPersistence(auth, browserLocalPersistence);
    await auth.authStateReady();
    return new FirebaseSignIn(auth);
  }

  async current(): Promise<SignedInUser | undefined> {
    return this.auth.currentUser ? userOf(this.auth.currentUser) : undefined;
  }

  async signIn(): Promise<SignedInUser> {
    const { user } = await signInWithPopup(this.auth, new GoogleAuthProvider());
    return userOf(user);
  }

  async signOut(): Promise<void> {
    await signOut(this.auth);
  }

  async idToken(): Promise<string> {
    const u = this.auth.currentUser;
    if (!u) throw new Error('Not signed in');
    return u.getIdToken();
  }
}
