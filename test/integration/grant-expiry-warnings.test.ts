/**
 * Warnings that time-based access ends soon, on the Firestore emulator: a grant stored with its
 * `warnAt` (GRANT_EXPIRY_WARNING_DAYS before its end) is warned once, by an event in the outbox
 * carrying Google's renewal link, whatever number of sweeps run at once; a revoked or renewed
 * grant is not warned about the old end.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { FirestoreEventOutbox } from '../../functions/src/adapters/firestore-outbox';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { paths } from '../../functions/src/adapters/firestore-paths';
import { userIdHash, type PipelineEvent } from '../../functions/src/domain/events';
import type { Grant } from '../../functions/src/domain/model';
import { createLogger } from '../../functions/src/logging';
import { authorizationStatus, renewalUrlOf } from '../../functions/src/pipeline/authorization-status';
import { EventRelay } from '../../functions/src/pipeline/event-relay';
import { GrantExpiryWarnings, warnAtOf } from '../../functions/src/pipeline/grant-expiry-warnings';
import { Sweeper } from '../../functions/src/pipeline/sweeper';

const DAY = 86_400_000;
const CLIENT_ID = '123456789012-abc.apps.googleusercontent.com';
const T0 = Date.UTC(2100, 0, 1);
let db: Firestore;
let store: FirestoreExportStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-grant-expiry' });
  store = new FirestoreExportStore(db, { events: true });
});

afterAll(async () => {
  await db?.terminate();
});

function timeBased(userId: string, days: number, over: Partial<Grant> = {}): Grant {
  const expiresAt = T0 + days * DAY;
  return {
    userId,
    refreshToken: { keyVersion: 'k', wrappedKey: 'w', ciphertext: 'c' },
    resources: ['myactivity.search', 'youtube.playlists'],
    oneTimeResources: [],
    timeBasedResources: ['youtube.playlists', 'myactivity.search'],
    state: 'ACTIVE',
    expiresAt,
    warnAt: warnAtOf(expiresAt, 7),
    consentedAt: T0,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

const warnings = (now: number) => new GrantExpiryWarnings({ store, renewalUrl: renewalUrlOf(CLIENT_ID), logger: createLogger({ level: 'silent' }), now: () => now });
const outboxOf = async (userId: string): Promise<PipelineEvent[]> =>
  (await db.collection('outbox').get()).docs.map((d) => d.get('event') as PipelineEvent).filter((e) => e.attributes.userIdHash === userIdHash(userId));

describe('expiry warnings of time-based access', () => {
  it('warns once, 7 days before a 30-day grant ends, with the renewal link, under parallel sweeps', async () => {
    const userId = `warn-${randomBytes(4).toString('hex')}`;
    await store.putGrant(timeBased(userId, 30));
    // Eight days before the end: not yet.
    expect(await warnings(T0 + 22 * DAY).run()).toBe(0);
    const at = T0 + 23 * DAY + 1;
    const counts = await Promise.all(Array.from({ length: 6 }, () => warnings(at).run()));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1);
    const events = await outboxOf(userId);
    expect(events).toEqual([
      {
        id: `authorization/${userIdHash(userId)}/expiring/${T0 + 30 * DAY}`,
        type: 'portability.authorization.expiring',
        source: `authorizations/${userIdHash(userId)}`,
        time: new Date(at).toISOString(),
        attributes: { type: 'portability.authorization.expiring', userIdHash: userIdHash(userId) },
        data: { expiresAt: new Date(T0 + 30 * DAY).toISOString(), timeBasedResources: ['myactivity.search', 'youtube.playlists'], renewalUrl: 'https://myaccount.google.com/connections/link?project_number=123456789012' },
      },
    ]);
    expect(JSON.stringify(events)).not.toContain(userId);
    // Later sweeps read nothing: the grant no longer carries warnAt.
    expect(await warnings(at + DAY).run()).toBe(0);
    const stored = (await db.doc(paths.grant(userId)).get()).data() as Grant;
    expect(stored.warnAt).toBeUndefined();
    expect(stored.expiryWarnedAt).toBe(at);
  });

  it('through the sweeper: a revoked grant is not warned (and stops being read), a renewed one is warned about its new end', async () => {
    const revoked = `warn-${randomBytes(4).toString('hex')}`;
    const renewed = `warn-${randomBytes(4).toString('hex')}`;
    await store.putGrant(timeBased(revoked, 180, { state: 'NEEDS_CONSENT' }));
    await store.putGrant(timeBased(renewed, 180));
    // Renewed before the warning: consent again stores a new grant with a new end.
    await store.putGrant(timeBased(renewed, 360));
    const at = T0 + 175 * DAY;
    const sweep = (now: number) =>
      new Sweeper({ store, queue: { enqueue: async () => undefined }, policy: { initialSeconds: 300, maxSeconds: 3600 }, graceSeconds: 600, logger: createLogger({ level: 'silent' }), now: () => now, expiryWarnings: warnings(now) }).sweep();
    await Promise.all([sweep(at), sweep(at)]);
    expect(await outboxOf(revoked)).toEqual([]);
    expect(await outboxOf(renewed)).toEqual([]);
    expect((await db.doc(paths.grant(revoked)).get()).get('warnAt')).toBeUndefined();
    await sweep(T0 + 353 * DAY + 1);
    expect((await outboxOf(renewed)).map((e) => (e.data as { expiresAt: string }).expiresAt)).toEqual([new Date(T0 + 360 * DAY).toISOString()]);
  });

  it('GET /v1/authorizations says expiresSoon within the warning period only', () => {
    const g = timeBased('u', 30);
    const status = (now: number) => authorizationStatus(g, { clientId: CLIENT_ID, testingMode: false, expiryWarningDays: 7, now: () => now });
    expect(status(T0 + 22 * DAY).expiresSoon).toBe(false);
    expect(status(T0 + 23 * DAY).expiresSoon).toBe(true);
    expect(status(T0 + 23 * DAY).renewalUrl).toBe('https://myaccount.google.com/connections/link?project_number=123456789012');
    expect(status(T0 + 30 * DAY).expiresSoon).toBe(false);
    expect(authorizationStatus({ ...g, timeBasedResources: [], oneTimeResources: g.resources }, { clientId: CLIENT_ID, testingMode: false, expiryWarningDays: 7, now: () => T0 + 29 * DAY }).expiresSoon).toBe(false);
  });

  it('hands the warnings it wrote to the relay, which publishes them and empties the outbox; says so in the log', async () => {
    const userId = `warn-${randomBytes(4).toString('hex')}`;
    await store.putGrant(timeBased(userId, 30));
    const published: PipelineEvent[][] = [];
    const relay = new EventRelay({ publisher: async () => ({ publish: async (events) => void published.push([...events]) }), outbox: new FirestoreEventOutbox(db), logger: createLogger({ level: 'silent' }) });
    const logs: string[] = [];
    const at = T0 + 23 * DAY + 1;
    const run = () => new GrantExpiryWarnings({ store, renewalUrl: renewalUrlOf(CLIENT_ID), relay, logger: createLogger({ level: 'info', destination: { write: (l: string) => (logs.push(l), true) } }), now: () => at }).run();
    expect(await run()).toBeGreaterThanOrEqual(1);
    const mine = published.flat().filter((e) => e.attributes.userIdHash === userIdHash(userId));
    expect(mine.map((e) => e.type)).toEqual(['portability.authorization.expiring']);
    expect(await outboxOf(userId)).toEqual([]);
    expect(logs.map((l) => JSON.parse(l) as { message: string; warnings: number })).toEqual([expect.objectContaining({ message: 'time-based access ends soon: warnings written', warnings: published.flat().length })]);
    // Nothing due: nothing relayed, nothing logged.
    const before = published.length;
    expect(await run()).toBe(0);
    expect(published.slice(before).flat()).toEqual([]);
    expect(logs).toHaveLength(1);
  });
});
