/**
 * Schedules in Firestore: `schedules/{scheduleId}`. The scheduler reads due schedules through the
 * composite index (state ASC, nextRunAt ASC) declared in infra/firestore.tf; a schedule's runs are
 * the exports carrying its id, read through (scheduleId ASC, createdAt DESC).
 */
import type { ExportRecord } from '../domain/model';
import type { ScheduleChange, ScheduleStore } from '../domain/ports/schedule-store';
import { scheduleChangeEvents } from '../domain/events';
import type { Job } from '../domain/model';
import { writeOutbox } from './firestore-outbox';
import type { Schedule } from '../domain/model';
import type { Firestore } from '@google-cloud/firestore';
import { admitSchedule } from '../domain/admission';
import { contended, runQuery, type QuerySpec as Query } from './firestore-client';
import { readLedger, writeLedger } from './firestore-ledger';
import { paths } from './firestore-paths';

const schedule = paths.schedule;

/** Every query the store runs; test/infra/terraform.test.ts checks infra declares the indexes they need. */
export const scheduleStoreQueries = {
  schedulesOfUser: (userId: string, limit: number): Query => ({
    collection: 'schedules',
    where: [['userId', '==', userId]],
    orderBy: [
      ['createdAt', 'desc'],
      ['id', 'desc'],
    ],
    limit,
  }),
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
  constructor(
    private readonly db: Firestore,
    /** Write the events of run starts, cooldowns and ends to the outbox (when apps are told). */
    private readonly opts: { events?: boolean } = {},
  ) {}

  async createSchedule(s: Schedule, maxActive: number): Promise<void> {
    await contended(() => this.db.runTransaction(async (tx) => {
      const { ref, ledger } = await readLedger(this.db, tx, s.userId);
      const listed = ledger.schedules.length > 0 ? await tx.getAll(...ledger.schedules.map((id) => this.db.doc(schedule(id)))) : [];
      const active = new Map(
        listed.filter((d) => d.exists && (d.data() as Schedule).state === 'ACTIVE').map((d) => [d.id, (d.data() as Schedule).groups.map((g) => g.resource)]),
      );
      const next = admitSchedule(ledger, active, { scheduleId: s.id, resources: s.groups.map((g) => g.resource), maxActive });
      tx.create(this.db.doc(schedule(s.id)), { ...s });
      writeLedger(tx, ref, next, s.userId);
    }));
  }

  async getSchedule(scheduleId: string): Promise<Schedule | undefined> {
    const snap = await this.db.doc(schedule(scheduleId)).get();
    return snap.exists ? (snap.data() as Schedule) : undefined;
  }

  async listSchedules(userId: string, limit: number): Promise<Schedule[]> {
    const docs = await runQuery<Schedule>(this.db, Q.schedulesOfUser(userId, limit));
    return docs.map((d) => d.data);
  }

  async deleteSchedule(scheduleId: string): Promise<void> {
    await this.db.doc(schedule(scheduleId)).delete();
  }

  async updateSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined): Promise<Schedule | undefined> {
    return (await this.changeSchedule(scheduleId, decide, []))?.schedule;
  }

  async changeSchedule(scheduleId: string, decide: (s: Schedule) => Schedule | undefined, settledJobs: readonly Job[]): Promise<ScheduleChange | undefined> {
    return this.db.runTransaction(async (tx) => {
      const snap = await tx.get(this.db.doc(schedule(scheduleId)));
      if (!snap.exists) return undefined;
      const current = snap.data() as Schedule;
      const next = decide(current);
      if (!next) return undefined;
      // set, not merge: fields the decision dropped (nextRunAt of an ended schedule) must go.
      tx.set(snap.ref, { ...next });
      const events = this.opts.events ? scheduleChangeEvents(current, next, settledJobs, next.updatedAt) : [];
      writeOutbox(this.db, tx, events, next.updatedAt);
      return { schedule: next, events };
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
