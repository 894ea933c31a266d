/**
 * Sign-in against the local stack's issuer (the OAuth simulator's `POST /id-token`): a name is an
 * account. The token is kept in sessionStorage so a reload, or the return from the consent
 * screen, finds the person still signed in.
 */
import type { SignedInUser, SignIn } from './sign-in';

const KEY = 'portability.localSignIn';

interface Stored {
  userId: string;
  idToken: string;
  /** epoch ms */
  expiresAt: number;
}

export class LocalSignIn implements SignIn {
  readonly asksForName = true;

  constructor(private readonly idTokenUrl: string) {}

  private stored(): Stored | undefined {
    try {
      const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Stored | null;
      return s && typeof s.userId === 'string' ? s : undefined;
    } catch {
      return undefined;
    }
  }

  async current(): Promise<SignedInUser | undefined> {
    const s = this.stored();
    return s ? { displayName: s.userId } : undefined;
  }

  async signIn(name?: string): Promise<SignedInUser> {
    const userId = (name ?? '').trim();
    const res = await fetch(this.idTokenUrl, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId }) });
    const body = (await res.json().catch(() => ({}))) as { idToken?: string; expiresIn?: number; error_description?: string };
    if (!res.ok || !body.idToken) throw new Error(body.error_description ?? `Sign-in failed (HTTP ${res.status})`);
    const stored: Stored = { userId, idToken: body.idToken, expiresAt: Date.now() + (body.expiresIn ?? 3600) * 1000 };
    sessionStorage.setItem(KEY, JSON.stringify(stored));
    return { displayName: userId };
  }

  async signOut(): Promise<void> {
    sessionStorage.removeItem(KEY);
  }

  async idToken(): Promise<string> {
    const s = this.stored();
    if (!s) throw new Error('Not signed in');
    // A minute before it expires, a new one (the local issuer signs on request).
    if (s.expiresAt - Date.now() < 60_000) await this.signIn(s.userId);
    return (this.stored() as Stored).idToken;
  }
}
