/**
 * The consent flow on the real Firestore consent-state store, with a controllable clock: which
 * redirect URIs and how many groups it takes, what it stores (the verifier encrypted, bound to the
 * user and the state), and how it refuses a state that is malformed, someone else's, expired or used.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { CONSENT_STATE_COLLECTION, FirestoreConsentStateStore } from '../../functions/src/adapters/firestore-consent-state-store';
import { LocalKeySecretCipher } from '../../functions/src/adapters/local-key-secret-cipher';
import { MAX_AUTHORIZATION_URL_LENGTH, pkceChallenge, stateKey } from '../../functions/src/domain/consent-url';
import { ConsentFlow } from '../../functions/src/pipeline/consent-flow';
import { refusalOf } from '../support/rejections';

const REDIRECT = 'http://localhost:5173/oauth/callback';
const OTHER_REDIRECT = 'https://app.example/callback';
const T0 = Date.UTC(2100, 0, 1);
const TTL_S = 600;
const cipher = new LocalKeySecretCipher(randomBytes(32).toString('base64'));
let db: ReturnType<typeof createFirestore>;
let store: FirestoreConsentStateStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-consent-flow' });
  store = new FirestoreConsentStateStore(db);
});

const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;

function flow(clock: { t: number }): ConsentFlow {
  return new ConsentFlow({ store, cipher: async () => cipher, authUrl: 'https://accounts.google.test/o/oauth2/auth', clientId: 'cid', redirectUris: [REDIRECT, OTHER_REDIRECT], stateTtlSeconds: TTL_S, now: () => clock.t });
}


describe('starting a consent', () => {
  it('asks Google for each group once, sorted, and stores the started consent with its verifier encrypted until the state expires', async () => {
    const clock = { t: T0 };
    const userId = newUser();
    const started = await flow(clock).start(userId, { resources: ['myactivity.search', 'chrome.history', 'myactivity.search'], redirectUri: OTHER_REDIRECT });
    expect(started.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(started.expiresAt).toBe(new Date(T0 + TTL_S * 1000).toISOString());
    const url = new URL(started.authorizationUrl);
    expect(url.searchParams.get('state')).toBe(started.state);
    expect(url.searchParams.get('redirect_uri')).toBe(OTHER_REDIRECT);
    expect(url.searchParams.get('scope')).toContain('dataportability.chrome.history https://www.googleapis.com/auth/dataportability.myactivity.search');
    const doc = (await db.collection(CONSENT_STATE_COLLECTION).doc(stateKey(started.state)).get()).data();
    expect(doc).toMatchObject({ userId, resources: ['chrome.history', 'myactivity.search'], redirectUri: OTHER_REDIRECT, createdAt: T0, expiresAt: T0 + TTL_S * 1000 });
    const verifier = await cipher.decrypt(doc?.codeVerifier, `consent-state:${stateKey(started.state)}:${userId}`);
    expect(pkceChallenge(verifier)).toBe(url.searchParams.get('code_challenge'));
    const claimed = await flow(clock).claim(userId, started.state);
    expect(claimed).toEqual({ redirectUri: OTHER_REDIRECT, resources: ['chrome.history', 'myactivity.search'], codeVerifier: verifier });
  });

  it('refuses a redirect URI it is not configured with, and more groups than one consent URL takes; stores nothing', async () => {
    const userId = newUser();
    expect(await refusalOf(flow({ t: T0 }).start(userId, { resources: ['chrome.history'], redirectUri: 'http://evil.example/cb' }))).toMatchObject({
      status: 400,
      code: 'REDIRECT_URI_NOT_ALLOWED',
      field: 'redirectUri',
    });
    const many = Array.from({ length: 60 }, (_, i) => `group-with-a-long-name-${String(i).padStart(2, '0')}`);
    const tooMany = await refusalOf(flow({ t: T0 }).start(userId, { resources: many, redirectUri: REDIRECT }));
    expect(tooMany).toMatchObject({ status: 400, code: 'TOO_MANY_RESOURCES', field: 'resources' });
    expect(tooMany.message).toMatch(new RegExp(`^resources: the consent URL for 60 groups would be \\d+ characters, more than the ${MAX_AUTHORIZATION_URL_LENGTH} `));
    expect((await db.collection(CONSENT_STATE_COLLECTION).where('userId', '==', userId).get()).size).toBe(0);
  });
});

describe('claiming a consent', () => {
  it('refuses a malformed state, another user\'s, an expired one and a used one, each with its own code', async () => {
    const clock = { t: T0 };
    const owner = newUser();
    const { state } = await flow(clock).start(owner, { resources: ['chrome.history'], redirectUri: REDIRECT });
    expect(await refusalOf(flow(clock).claim(owner, 'short'))).toMatchObject({ status: 400, code: 'INVALID_STATE', field: 'state' });
    expect(await refusalOf(flow(clock).claim(owner, randomBytes(32).toString('base64url')))).toMatchObject({ code: 'INVALID_STATE' });
    expect(await refusalOf(flow(clock).claim(newUser(), state))).toMatchObject({ code: 'INVALID_STATE' });
    clock.t = T0 + TTL_S * 1000;
    expect(await refusalOf(flow(clock).claim(owner, state))).toMatchObject({ code: 'STATE_EXPIRED', field: 'state', message: `The consent was not completed within ${TTL_S} seconds: start it again` });

    clock.t = T0;
    const second = await flow(clock).start(owner, { resources: ['chrome.history'], redirectUri: REDIRECT });
    clock.t = T0 + TTL_S * 1000 - 1;
    await flow(clock).claim(owner, second.state);
    expect(await refusalOf(flow(clock).claim(owner, second.state))).toMatchObject({ code: 'STATE_ALREADY_USED', field: 'state' });
  });

  it('forget removes every consent the user started, and only theirs', async () => {
    const clock = { t: T0 };
    const userId = newUser();
    const other = newUser();
    const mine = await flow(clock).start(userId, { resources: ['chrome.history'], redirectUri: REDIRECT });
    const theirs = await flow(clock).start(other, { resources: ['chrome.history'], redirectUri: REDIRECT });
    await flow(clock).forget(userId);
    expect(await refusalOf(flow(clock).claim(userId, mine.state))).toMatchObject({ code: 'INVALID_STATE' });
    expect((await flow(clock).claim(other, theirs.state)).redirectUri).toBe(REDIRECT);
  });
});

describe('the consent URL\'s length', () => {
  it('takes a URL of exactly the limit and refuses one character more; each refusal says what to do', async () => {
    const userId = newUser();
    const clock = { t: T0 };
    // The URL's length depends only on the inputs (state and challenge have fixed lengths).
    const base = (await flow(clock).start(userId, { resources: ['x'], redirectUri: REDIRECT })).authorizationUrl.length;
    const sized = (extra: number) => flow(clock).start(userId, { resources: [`x${'a'.repeat(extra)}`], redirectUri: REDIRECT });
    expect((await sized(MAX_AUTHORIZATION_URL_LENGTH - base)).authorizationUrl).toHaveLength(MAX_AUTHORIZATION_URL_LENGTH);
    expect(await refusalOf(sized(MAX_AUTHORIZATION_URL_LENGTH - base + 1))).toMatchObject({ code: 'TOO_MANY_RESOURCES' });
    expect(await refusalOf(flow(clock).start(userId, { resources: ['x'], redirectUri: 'http://evil.example/cb' }))).toMatchObject({
      message: 'redirectUri: is not one of the redirect URIs this API is configured with',
    });
    expect(await refusalOf(flow(clock).claim(userId, 'short'))).toMatchObject({ message: 'This state was not issued to you: start the consent with POST /v1/authorizations:start' });
    const { state } = await flow(clock).start(userId, { resources: ['x'], redirectUri: REDIRECT });
    await flow(clock).claim(userId, state);
    expect(await refusalOf(flow(clock).claim(userId, state))).toMatchObject({ message: 'This state was already used: start a new consent' });
  });
});
