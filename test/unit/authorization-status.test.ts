import { describe, expect, it } from 'vitest';
import type { Grant } from '../../functions/src/domain/model';
import { authorizationStatus, projectNumberOf, renewalUrlOf } from '../../functions/src/pipeline/authorization-status';

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
});
