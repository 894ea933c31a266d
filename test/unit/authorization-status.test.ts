import { describe, expect, it } from 'vitest';
import type { Grant } from '../../functions/src/domain/model';
import { AuthorizationStatusReader, authorizationStatus, projectNumberOf, renewalUrlOf } from '../../functions/src/pipeline/authorization-status';

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T10:00:00Z');
const grant = (g: Partial<Grant> = {}): Grant => ({
  userId: 'u',
  refreshToken: { keyVersion: 1, wrappedKey: 'w', ciphertext: 'c' } as unknown as Grant['refreshToken'],
  resources: ['myactivity.search'],
  oneTimeResources: ['myactivity.search'],
  timeBasedResources: [],
  state: 'ACTIVE',
  createdAt: T0 - 90 * DAY,
  updatedAt: T0 + DAY,
  consentedAt: T0,
  ...g,
});
const CLIENT = '123456789012-abc.apps.googleusercontent.com';

describe('authorizationStatus', () => {
  it('reads the project number from a Google OAuth client id for the renewal link', () => {
    expect(projectNumberOf(CLIENT)).toBe('123456789012');
    expect(renewalUrlOf(CLIENT)).toBe('https://myaccount.google.com/connections/link?project_number=123456789012');
    expect(renewalUrlOf('local-client.apps.googleusercontent.com')).toBeUndefined();
  });

  it('one-time: no expiry and no renewal link, unless Testing mode ends it 7 days after the consent', () => {
    const s = authorizationStatus(grant(), { clientId: CLIENT, testingMode: false });
    expect(s).toMatchObject({ accessType: 'ONE_TIME', grantedAt: new Date(T0).toISOString(), testingMode: false, warnings: [] });
    expect(s.expiresAt).toBeUndefined();
    expect(s.renewalUrl).toBeUndefined();
    const testing = authorizationStatus(grant(), { clientId: CLIENT, testingMode: true });
    expect(testing.expiresAt).toBe(new Date(T0 + 7 * DAY).toISOString());
    expect(testing.warnings.map((w) => w.code)).toEqual(['TESTING_MODE_7_DAYS']);
  });

  it('time-based: Google\'s expiry, the renewal link, and the Testing-mode inference from a short grant', () => {
    const tb = { oneTimeResources: [], timeBasedResources: ['myactivity.search'] };
    const long = authorizationStatus(grant({ ...tb, expiresAt: T0 + 180 * DAY }), { clientId: CLIENT, testingMode: false });
    expect(long).toMatchObject({ accessType: 'TIME_BASED', expiresAt: new Date(T0 + 180 * DAY).toISOString(), testingMode: false, renewalUrl: renewalUrlOf(CLIENT) });
    // 30 or 180 days are the only choices: a grant ending after 7 days is a Testing-mode client's.
    const short = authorizationStatus(grant({ ...tb, expiresAt: T0 + 7 * DAY }), { clientId: CLIENT, testingMode: false });
    expect(short.testingMode).toBe(true);
    // Told Testing mode, a 30-day choice still ends after 7 days.
    expect(authorizationStatus(grant({ ...tb, expiresAt: T0 + 30 * DAY }), { clientId: CLIENT, testingMode: true }).expiresAt).toBe(new Date(T0 + 7 * DAY).toISOString());
  });

  it('partial consent: what was asked for and not granted; mixed access', () => {
    const s = authorizationStatus(
      grant({ resources: ['chrome.history', 'myactivity.search'], requestedResources: ['youtube.music', 'myactivity.search', 'chrome.history'], oneTimeResources: ['chrome.history'], timeBasedResources: ['myactivity.search'] }),
      { clientId: CLIENT, testingMode: false },
    );
    expect(s).toMatchObject({ requestedResources: ['chrome.history', 'myactivity.search', 'youtube.music'], notGrantedResources: ['youtube.music'], accessType: 'MIXED' });
    // A grant stored before the API kept the request: nothing is claimed as not granted.
    expect(authorizationStatus(grant(), { clientId: CLIENT, testingMode: false }).notGrantedResources).toEqual([]);
  });

  it('lists every group sorted, whatever order Google returned them in', () => {
    const s = authorizationStatus(
      grant({ resources: ['youtube.music', 'chrome.history', 'myactivity.search'], requestedResources: ['youtube.playlists', 'youtube.music', 'chrome.history', 'myactivity.search'], oneTimeResources: ['youtube.music', 'chrome.history'], timeBasedResources: ['myactivity.search', 'chrome.autofill'] }),
      { clientId: CLIENT, testingMode: false },
    );
    expect(s).toMatchObject({
      grantedResources: ['chrome.history', 'myactivity.search', 'youtube.music'],
      requestedResources: ['chrome.history', 'myactivity.search', 'youtube.music', 'youtube.playlists'],
      notGrantedResources: ['youtube.playlists'],
      oneTimeResources: ['chrome.history', 'youtube.music'],
      timeBasedResources: ['chrome.autofill', 'myactivity.search'],
    });
    expect(authorizationStatus(grant(), { clientId: CLIENT, testingMode: false }).requestedResources).toBeUndefined();
  });

  it('dates the consent from its last update when the grant predates consentedAt', () => {
    const s = authorizationStatus(grant({ consentedAt: undefined }), { clientId: CLIENT, testingMode: true });
    expect(s.grantedAt).toBe(new Date(T0 + DAY).toISOString());
    expect(s.expiresAt).toBe(new Date(T0 + 8 * DAY).toISOString());
  });

  it('infers Testing mode from a time-based grant ending within 7 days and an hour of the consent, not later, not for one-time access', () => {
    const tb = { oneTimeResources: [], timeBasedResources: ['myactivity.search'] };
    const at = (ms: number) => authorizationStatus(grant({ ...tb, expiresAt: T0 + ms }), { clientId: CLIENT, testingMode: false });
    expect(at(7 * DAY + 3_600_000)).toMatchObject({ testingMode: true, expiresAt: new Date(T0 + 7 * DAY).toISOString() });
    expect(at(7 * DAY + 3_600_000).warnings).toEqual([
      { code: 'TESTING_MODE_7_DAYS', message: "This app's Google OAuth client is in Testing mode: Google ends the access after 7 days, whatever was chosen on the consent screen." },
    ]);
    expect(at(7 * DAY + 3_600_001)).toMatchObject({ testingMode: false, warnings: [], expiresAt: new Date(T0 + 7 * DAY + 3_600_001).toISOString() });
    // Google's own end comes first when it is earlier than the Testing-mode end.
    expect(at(5 * DAY).expiresAt).toBe(new Date(T0 + 5 * DAY).toISOString());
    // One-time access with an end recorded: no inference (and no renewal link).
    const once = authorizationStatus(grant({ expiresAt: T0 + DAY }), { clientId: CLIENT, testingMode: false });
    expect(once).toMatchObject({ testingMode: false, expiresAt: new Date(T0 + DAY).toISOString() });
    expect(once.renewalUrl).toBeUndefined();
  });

  it('expiresSoon: only active time-based access, only within the warning days before an end still ahead, only when warnings are configured', () => {
    const tb = grant({ oneTimeResources: [], timeBasedResources: ['myactivity.search'], expiresAt: T0 + 30 * DAY });
    const soon = (g: Grant, now: number, days: number | null = 7) => authorizationStatus(g, { clientId: CLIENT, testingMode: false, now: () => now, ...(days !== null ? { expiryWarningDays: days } : {}) }).expiresSoon;
    expect(soon(tb, T0 + 23 * DAY)).toBe(true);
    expect(soon(tb, T0 + 23 * DAY - 1)).toBe(false);
    expect(soon(tb, T0 + 30 * DAY - 1)).toBe(true);
    expect(soon(tb, T0 + 30 * DAY)).toBe(false);
    expect(soon(tb, T0 + 29 * DAY, null)).toBe(false);
    expect(soon(tb, T0 + 29 * DAY, 0)).toBe(false);
    expect(soon({ ...tb, state: 'NEEDS_CONSENT' }, T0 + 29 * DAY)).toBe(false);
    // Without an end there is nothing to warn about.
    expect(soon({ ...tb, expiresAt: undefined }, T0 + 29 * DAY, 100_000)).toBe(false);
  });

  it('reads the project number only from a client id that starts with 6 to 20 digits and a dash', () => {
    expect(projectNumberOf('123456-x.apps.googleusercontent.com')).toBe('123456');
    expect(projectNumberOf('12345-x.apps.googleusercontent.com')).toBeUndefined();
    expect(projectNumberOf(`${'1'.repeat(20)}-x`)).toBe('1'.repeat(20));
    expect(projectNumberOf(`${'1'.repeat(21)}-x`)).toBeUndefined();
    expect(projectNumberOf('x123456789012-abc')).toBeUndefined();
    expect(projectNumberOf('123456789012abc')).toBeUndefined();
  });
});

describe('AuthorizationStatusReader', () => {
  const reader = (g: Grant | undefined, testingMode: boolean) => new AuthorizationStatusReader({ store: { getGrant: async (id) => (g && id === g.userId ? g : undefined) }, clientId: CLIENT, testingMode, now: () => T0 });

  it('answers NONE with empty lists for a user with no grant, saying whether the client is in Testing mode', async () => {
    const none = { state: 'NONE', grantedResources: [], notGrantedResources: [], accessType: 'ONE_TIME', oneTimeResources: [], timeBasedResources: [], warnings: [], expiresSoon: false };
    expect(await reader(undefined, false).read('u')).toEqual({ ...none, testingMode: false });
    expect(await reader(undefined, true).read('u')).toEqual({ ...none, testingMode: true });
  });

  it("reads the caller's own grant", async () => {
    const g = grant({ oneTimeResources: [], timeBasedResources: ['myactivity.search'], expiresAt: T0 + 30 * DAY });
    expect(await reader(g, false).read('u')).toEqual(authorizationStatus(g, { clientId: CLIENT, testingMode: false, now: () => T0 }));
    expect((await reader(g, false).read('someone-else')).state).toBe('NONE');
  });
});
