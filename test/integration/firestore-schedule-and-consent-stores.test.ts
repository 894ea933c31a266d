/**
 * The schedule store and the consent-state store on the real Firestore emulator (a project of
 * their own, so the due-schedule query sees only these): admission of schedules through the
 * ledger, the orders and limits of their queries, whole-document updates, and single-use consents.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createFirestore } from '../../functions/src/adapters/firestore-client';
import { CONSENT_STATE_COLLECTION, FirestoreConsentStateStore } from '../../functions/src/adapters/firestore-consent-state-store';
import { FirestoreExportStore } from '../../functions/src/adapters/firestore-export-store';
import { FirestoreScheduleStore } from '../../functions/src/adapters/firestore-schedule-store';
import type { ConsentState } from '../../functions/src/domain/consent-state';
import { newSchedule, planRun } from '../../functions/src/domain/schedule';
import type { PipelineEvent } from '../../functions/src/domain/events';
import type { Schedule } from '../../functions/src/domain/model';
import { refusalOf } from '../support/rejections';

const T0 = Date.UTC(2100, 0, 1);
let db: ReturnType<typeof createFirestore>;
let schedules: FirestoreScheduleStore;
let consents: FirestoreConsentStateStore;

beforeAll(() => {
  process.env.FIRESTORE_EMULATOR_HOST = inject('firestoreEmulatorHost');
  db = createFirestore({ projectId: 'demo-firestore-schedule-store' });
  schedules = new FirestoreScheduleStore(db);
  consents = new FirestoreConsentStateStore(db);
});

const id = (): string => randomBytes(10).toString('hex');
const newUser = (): string => `u-${randomBytes(6).toString('hex')}`;
const scheduleOf = (userId: string, resources: string[], at = T0): Schedule => newSchedule({ id: id(), userId, resources }, at);

describe('the schedule store', () => {
  it('writes a change\'s events to the outbox in its transaction, only when apps are told', async () => {
    const told = new FirestoreScheduleStore(db, { events: true });
    const userId = newUser();
    const s = scheduleOf(userId, ['myactivity.search']);
    await told.createSchedule(s, 5);
    const outboxOf = async (): Promise<string[]> => (await db.collection('outbox').get()).docs.map((d) => (d.data() as { event: PipelineEvent }).event.id).filter((e) => e.startsWith(`schedule/${s.id}/`));
    expect(await told.changeSchedule(s.id, () => undefined, [])).toBeUndefined();
    const plan = planRun(s, { exists: true, active: true, timeBasedResources: ['myactivity.search'] }, new Set(), T0, id);
    const change = await told.changeSchedule(s.id, () => plan.schedule, []);
    expect(change?.events.map((e) => e.id)).toEqual([`schedule/${s.id}/run/1`]);
    expect(await outboxOf()).toEqual([`schedule/${s.id}/run/1`]);
    // The same change through a store that tells nobody: no event, nothing in the outbox.
    const quiet = await schedules.changeSchedule(s.id, (cur) => ({ ...cur, state: 'NEEDS_CONSENT', updatedAt: T0 + 1 }), []);
    expect(quiet?.events).toEqual([]);
    expect(await outboxOf()).toEqual([`schedule/${s.id}/run/1`]);
  });

  it('admits one active schedule per group and at most maxActive per user; an ended one frees its groups and its place', async () => {
    const userId = newUser();
    const first = scheduleOf(userId, ['chrome.history']);
    await schedules.createSchedule(first, 2);
    expect(await schedules.getSchedule(first.id)).toEqual(first);
    expect(await refusalOf(schedules.createSchedule(scheduleOf(userId, ['myactivity.search', 'chrome.history']), 2))).toMatchObject({
      status: 409,
      code: 'SCHEDULE_EXISTS',
      message: 'Already on an active schedule: chrome.history. Delete that schedule first',
    });
    await schedules.createSchedule(scheduleOf(userId, ['myactivity.search']), 2);
    expect(await refusalOf(schedules.createSchedule(scheduleOf(userId, ['youtube.subscriptions']), 2))).toMatchObject({ code: 'TOO_MANY_SCHEDULES' });
    await schedules.updateSchedule(first.id, (s) => ({ ...s, state: 'ENDED' }));
    await schedules.createSchedule(scheduleOf(userId, ['chrome.history']), 2);
    // Another user's schedules are theirs.
    await schedules.createSchedule(scheduleOf(newUser(), ['chrome.history']), 1);
  });

  it('lists a user\'s schedules newest first up to the limit, and forgets a deleted one', async () => {
    const userId = newUser();
    const made = [T0, T0 + 2, T0 + 1].map((at, i) => scheduleOf(userId, [`group-${i}`], at));
    for (const s of made) await schedules.createSchedule(s, 10);
    expect((await schedules.listSchedules(userId, 2)).map((s) => s.createdAt)).toEqual([T0 + 2, T0 + 1]);
    await schedules.deleteSchedule(made[1]!.id);
    expect(await schedules.getSchedule(made[1]!.id)).toBeUndefined();
    expect((await schedules.listSchedules(userId, 10)).map((s) => s.id)).toEqual([made[2]!.id, made[0]!.id]);
    expect(await schedules.updateSchedule(made[1]!.id, (s) => s)).toBeUndefined();
  });

  it('writes an update whole (fields the decision dropped go) and nothing when the decision is none', async () => {
    const s = scheduleOf(newUser(), ['chrome.history']);
    await schedules.createSchedule(s, 10);
    const { nextRunAt: _n, ...ended } = s;
    expect(await schedules.updateSchedule(s.id, () => ({ ...ended, state: 'ENDED' }))).toEqual({ ...ended, state: 'ENDED' });
    expect(await schedules.getSchedule(s.id)).toEqual({ ...ended, state: 'ENDED' });
    expect(await schedules.updateSchedule(s.id, () => undefined)).toBeUndefined();
    expect((await schedules.getSchedule(s.id))?.state).toBe('ENDED');
  });

  it('lists the active schedules due by a time, soonest first, up to the limit', async () => {
    const own = new FirestoreScheduleStore(createFirestore({ projectId: 'demo-firestore-due-schedules' }));
    const userId = newUser();
    const at = [T0 + 30, T0 + 10, T0 + 20, T0 + 40];
    const made = at.map((t, i) => ({ ...scheduleOf(userId, [`group-${i}`]), nextRunAt: t }));
    for (const s of made) await own.createSchedule(s, 10);
    await own.updateSchedule(made[2]!.id, (s) => ({ ...s, state: 'NEEDS_CONSENT' }));
    expect((await own.listDueSchedules(T0 + 30, 10)).map((s) => s.nextRunAt)).toEqual([T0 + 10, T0 + 30]);
    expect((await own.listDueSchedules(T0 + 40, 1)).map((s) => s.nextRunAt)).toEqual([T0 + 10]);
  });

  it('lists a schedule\'s runs, newest first, up to the limit', async () => {
    const exportsStore = new FirestoreExportStore(db);
    const userId = newUser();
    const scheduleId = id();
    for (const [run, at] of [
      [1, T0],
      [2, T0 + 2],
      [3, T0 + 1],
    ] as const) {
      await exportsStore.createExport({ id: id(), userId, state: 'RUNNING', resources: [], createdAt: at, updatedAt: at, scheduleId, run }, []);
    }
    await exportsStore.createExport({ id: id(), userId, state: 'RUNNING', resources: [], createdAt: T0 + 9, updatedAt: T0 + 9 }, []);
    expect((await schedules.listRuns(scheduleId, 2)).map((r) => r.run)).toEqual([2, 3]);
  });
});

describe('the consent-state store', () => {
  const state = (userId: string, over: Partial<ConsentState> = {}): ConsentState => ({
    userId,
    resources: ['chrome.history'],
    redirectUri: 'http://localhost/cb',
    codeVerifier: { keyVersion: 'k', ciphertext: 'v' } as unknown as ConsentState['codeVerifier'],
    createdAt: T0,
    expiresAt: T0 + 600_000,
    ...over,
  });

  it('keeps a record a day past its expiry, claims it once for its user, and drops the verifier when claimed', async () => {
    const userId = newUser();
    const key = id();
    await consents.create(key, state(userId));
    const stored = (await db.collection(CONSENT_STATE_COLLECTION).doc(key).get()).data();
    expect((stored?.expireAt as { toMillis(): number }).toMillis()).toBe(T0 + 600_000 + 86_400_000);
    await expect(consents.create(key, state(userId))).rejects.toMatchObject({ code: 6 });
    expect(await consents.claim(key, newUser(), T0)).toEqual({ ok: false, refusal: 'UNKNOWN' });
    expect(await consents.claim(id(), userId, T0)).toEqual({ ok: false, refusal: 'UNKNOWN' });
    expect(await consents.claim(key, userId, T0 + 1)).toEqual({ ok: true, state: state(userId) });
    const used = (await db.collection(CONSENT_STATE_COLLECTION).doc(key).get()).data();
    expect(used).toMatchObject({ usedAt: T0 + 1, userId });
    expect(used).not.toHaveProperty('codeVerifier');
    expect(await consents.claim(key, userId, T0 + 2)).toEqual({ ok: false, refusal: 'USED' });
    const late = id();
    await consents.create(late, state(userId));
    expect(await consents.claim(late, userId, T0 + 600_000)).toEqual({ ok: false, refusal: 'EXPIRED' });
  });

  it('deletes every consent of a user, and answers how many', async () => {
    const userId = newUser();
    const other = newUser();
    for (const u of [userId, userId, other]) await consents.create(id(), state(u));
    expect(await consents.deleteOfUser(userId)).toBe(2);
    expect((await db.collection(CONSENT_STATE_COLLECTION).where('userId', '==', userId).get()).size).toBe(0);
    expect((await db.collection(CONSENT_STATE_COLLECTION).where('userId', '==', other).get()).size).toBe(1);
    expect(await consents.deleteOfUser(newUser())).toBe(0);
  });
});
