/**
 * Schedules in Firestore: `schedules/{scheduleId}`. The scheduler reads due schedules through the
 * composite index (state ASC, nextRunAt ASC) declared in infra/firestore.tf; a schedule's runs are
 * the exports carrying its id, read through (scheduleId ASC, createdAt DESC).
 */
import type { Firestore } from '@google-cloud/firestore';
import type { ExportRecord, ScheduleStore } from '../domain/ports';
import type { Schedule } from '../domain/schedule';

function stripUndefined<T extends object>(o: T): T {
  return JSON.parse(JSON.stringify(o)) as T;
}

export class FirestoreScheduleStore implements ScheduleStore {
  constructor(private readonly db: Firestore) {}

  private schedules = () => this.db.collection('schedules');

  async createSchedule(schedule: Schedule): Promise<void> {
    await this.schedules().doc(schedule.id).create(stripUndefined(schedule));
  }

  async getSchedule(scheduleId: string): Promise<Schedule | undefined> {
    const snap = await this.schedules().doc(scheduleId).get();
    return snap.exists ? (snap.data() as Schedule) : undefined;
  }

  async listSchedules(userId: string, limit: number): Promise<Schedule[]> {
    // A user has a handful of schedules: filter on the single-field index, sort here.
    const snap = await this.schedules().where('userId', '==', userId).limit(limit).get();
    return snap.docs.map((d) => d.data() as Schedule).sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
  }

  async deleteSchedule(scheduleId: string): Promise<void> {
    await this.schedules().doc(scheduleId).delete();
  }

  async updateSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined): Promise<Schedule | undefined> {
    return this.db.runTransaction(async (tx) => {
      const ref = this.schedules().doc(scheduleId);
      const snap = await tx.get(ref);
      if (!snap.exists) return undefined;
      const next = decide(snap.data() as Schedule);
      if (!next) return undefined;
      // set, not merge: fields the decision dropped (nextRunAt of an ended schedule) must go.
      tx.set(ref, stripUndefined(next));
      return next;
    });
  }

  async listDueSchedules(dueBefore: number, limit: number): Promise<Schedule[]> {
    const snap = await this.schedules().where('state', '==', 'ACTIVE').where('nextRunAt', '<=', dueBefore).orderBy('nextRunAt').limit(limit).get();
    return snap.docs.map((d) => d.data() as Schedule);
  }

  async listRuns(scheduleId: string, limit: number): Promise<ExportRecord[]> {
    const snap = await this.db.collection('exports').where('scheduleId', '==', scheduleId).orderBy('createdAt', 'desc').limit(limit).get();
    return snap.docs.map((d) => d.data() as ExportRecord);
  }
}
