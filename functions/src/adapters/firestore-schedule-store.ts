/**
 * Schedules in Firestore: `schedules/{scheduleId}`. The scheduler reads due schedules through the
 * composite index (state ASC, nextRunAt ASC) declared in infra/firestore.tf; a schedule's runs are
 * the exports carrying its id, read through (scheduleId ASC, createdAt DESC).
 */
import type { ExportRecord, ScheduleStore } from '../domain/ports';
import type { Schedule } from '../domain/schedule';
import type { Firestore } from '@google-cloud/firestore';
import { runQuery, type QuerySpec as Query } from './firestore-client';

const schedule = (scheduleId: string) => `schedules/${scheduleId}`;

/** Every query the store runs; test/infra/terraform.test.ts checks infra declares the indexes they need. */
export const scheduleStoreQueries = {
  // A user has a handful of schedules: filter on the single-field index, sort in memory.
  schedulesOfUser: (userId: string, limit: number): Query => ({ collection: 'schedules', where: [['userId', '==', userId]], limit }),
  dueSchedules: (dueBefore: number, limit: number): Query => ({
    collection: 'schedules',
    where: [
      ['state', '==', 'ACTIVE'],
      ['nextRunAt', '<=', dueBefore],
    ],
    orderBy: [['nextRunAt', 'asc']],
    limit,
  }),
  runsOfSchedule: (scheduleId: string, limit: number): Query => ({ collection: 'exports', where: [['scheduleId', '==', scheduleId]], orderBy: [['createdAt', 'desc']], limit }),
};
const Q = scheduleStoreQueries;

export class FirestoreScheduleStore implements ScheduleStore {
  constructor(private readonly db: Firestore) {}

  async createSchedule(s: Schedule): Promise<void> {
    await this.db.doc(schedule(s.id)).create({ ...s });
  }

  async getSchedule(scheduleId: string): Promise<Schedule | undefined> {
    const snap = await this.db.doc(schedule(scheduleId)).get();
    return snap.exists ? (snap.data() as Schedule) : undefined;
  }

  async listSchedules(userId: string, limit: number): Promise<Schedule[]> {
    const docs = await runQuery<Schedule>(this.db, Q.schedulesOfUser(userId, limit));
    return docs.map((d) => d.data).sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
  }

  async deleteSchedule(scheduleId: string): Promise<void> {
    await this.db.doc(schedule(scheduleId)).delete();
  }

  async updateSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined): Promise<Schedule | undefined> {
    return this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.db.doc(schedule(scheduleId)));
      if (!snap.exists) return undefined;
      const current = snap.data() as Schedule;
      const next = decide(current);
      if (!next) return undefined;
      // set, not merge: fields the decision dropped (nextRunAt of an ended schedule) must go.
      tx.set(snap.ref, { ...next });
      return next;
    });
  }

  async listDueSchedules(dueBefore: number, limit: number): Promise<Schedule[]> {
    const docs = await runQuery<Schedule>(this.db, Q.dueSchedules(dueBefore, limit));
    return docs.map((d) => d.data);
  }

  async listRuns(scheduleId: string, limit: number): Promise<ExportRecord[]> {
    const docs = await runQuery<ExportRecord>(this.db, Q.runsOfSchedule(scheduleId, limit));
    return docs.map((d) => d.data);
  }
}
