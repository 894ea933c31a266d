/**
 * How an export's state follows its jobs in Firestore without one hot document. The export's
 * document carries a tally: the ids of its jobs (fixed at creation) and, per job that has ended,
 * its final state and when. A job that ends writes its line of the tally in its own transaction
 * WITHOUT reading the export (a blind field update: writes that read nothing do not conflict, so
 * the 63 jobs of a wide export ending in the same second commit once each instead of aborting one
 * another; issue 17, bench 9), and leaves a settle marker beside it. After the commit, the settler
 * reads the export and, when every job has ended, writes the export's final state and its event
 * in a small transaction that only the last jobs ever run. A crash between the two leaves the
 * marker, which the sweeper settles; readers derive the state from the tally meanwhile, so no
 * answer is ever stale.
 */
import { FieldPath, type DocumentSnapshot, type Firestore, type Transaction } from '@google-cloud/firestore';
import { deriveExportState } from '../domain/export-state';
import { exportFinished } from '../domain/audit-drafts';
import { exportFinishedEvent, type PipelineEvent } from '../domain/events';
import type { ExportRecord, Job, JobState } from '../domain/model';
import { contended, runQuery, type QuerySpec } from './firestore-client';
import { writeAuditDrafts } from './firestore-audit-trail';
import { writeOutbox } from './firestore-outbox';
import { paths } from './firestore-paths';
import { DAY_MS } from '../domain/durations';

export interface ExportTally {
  jobIds?: string[];
  endedJobs?: Record<string, JobState>;
  /** epoch ms, per ended job: the export's final state is dated by its last job's end. */
  endedAt?: Record<string, number>;
}

export type TalliedExport = ExportRecord & ExportTally;

/** `exportSettles/{exportId}`: an export one of whose jobs ended and that may have to settle. */
interface SettleMarker {
  exportId: string;
  /** epoch ms of the last job end that wrote it */
  createdAt: number;
}

const SETTLES = 'exportSettles';

/** What the export store and its settler write besides the records themselves. */
export interface ExportWriteOptions {
  /** Write the events of finished jobs and exports to the outbox (when apps are told by Pub/Sub). */
  events?: boolean;
  /** Write the audit trail's drafts with the changes they describe, kept this many days. */
  audit?: { keepDays: number };
  /** RECORD_RETENTION_DAYS: an ended job or export gets an `expireAt` this long after its end (the TTL policy deletes it). */
  recordDays?: number;
}

/** When a record ended at `endedAt` expires, as the TTL policy reads it (a timestamp); nothing without a retention. */
export function expireAtOf(endedAt: number, recordDays: number | undefined): { expireAt: Date } | Record<string, never> {
  return recordDays !== undefined ? { expireAt: new Date(endedAt + recordDays * DAY_MS) } : {};
}
/** The export's end is chained after what its last job's end recorded at the same instant. */
const AFTER_THE_JOBS = 1000;

export const exportTallyQueries = {
  /** Markers left behind (the instance that should have settled died), oldest first. */
  leftoverSettles: (before: number, limit: number): QuerySpec => ({ collection: SETTLES, where: [['createdAt', '<=', before]], orderBy: [['createdAt', 'asc']], limit }),
};

/** The state the tally says, and when it was reached; undefined for an export written before the tally. */
export function talliedState(doc: TalliedExport): Pick<ExportRecord, 'state' | 'updatedAt'> | undefined {
  if (!doc.jobIds) return undefined;
  const ended = doc.endedJobs ?? {};
  // A job not ended yet counts as running, whatever step it is at.
  const state = deriveExportState(doc.jobIds.map((id) => ended[id] ?? 'WAITING'));
  if (state === doc.state) return { state, updatedAt: doc.updatedAt };
  const last = Math.max(doc.updatedAt, ...Object.values(doc.endedAt ?? {}));
  return { state, updatedAt: last };
}

/** The record as callers know it: without the tally, and with the state the tally says. */
export function recordOf(doc: TalliedExport | undefined): ExportRecord | undefined {
  if (!doc) return undefined;
  const { jobIds: _ids, endedJobs: _ended, endedAt: _at, ...record } = doc;
  return { ...record, ...talliedState(doc) };
}

/**
 * Inside the transaction of a job that just ended: its line of the tally and the settle marker,
 * both written without reading anything. The update fails (NOT_FOUND) when the export's document
 * is gone; the caller then commits the job alone (`exportGone`).
 */
export function recordJobEnd(db: Firestore, tx: Transaction, job: Job): void {
  tx.update(db.doc(paths.export(job.exportId)), new FieldPath('endedJobs', job.id), job.state, new FieldPath('endedAt', job.id), job.updatedAt);
  tx.set(db.doc(`${SETTLES}/${job.exportId}`), { exportId: job.exportId, createdAt: job.updatedAt } satisfies SettleMarker);
}

export class ExportSettler {
  constructor(
    private readonly db: Firestore,
    private readonly opts: ExportWriteOptions = {},
  ) {}

  /**
   * After a job's end committed: writes the export's final state (and its event in the same
   * transaction) when the tally says every job has ended; returns that event to publish. Then
   * removes the marker, unless a later job end wrote it again meanwhile (its own settle follows).
   */
  async settle(exportId: string): Promise<{ events: PipelineEvent[]; audited: boolean }> {
    // The marker first: a job that ends after this read rewrites it, so the delete below fails and
    // the marker stays for that job's own settle (or the sweeper's) — never lost.
    const marker = await this.db.doc(`${SETTLES}/${exportId}`).get();
    const settled = await this.settleExport(exportId);
    if (marker.exists) await this.removeMarker(marker);
    return settled;
  }

  /** The sweeper's part: settles the exports whose markers are older than `before`. */
  async settleLeftovers(before: number, limit: number): Promise<{ exports: number; events: PipelineEvent[] }> {
    const markers = await runQuery<SettleMarker>(this.db, exportTallyQueries.leftoverSettles(before, limit));
    const events: PipelineEvent[] = [];
    for (const m of markers) events.push(...(await this.settle(m.data.exportId)).events);
    return { exports: markers.length, events };
  }

  private async settleExport(exportId: string): Promise<{ events: PipelineEvent[]; audited: boolean }> {
    const nothing = { events: [], audited: false };
    const ref = this.db.doc(paths.export(exportId));
    const first = (await ref.get()).data() as TalliedExport | undefined;
    // Most ends are not the last: one plain read, no transaction.
    if (!first || (first.jobIds && talliedState(first)?.state === first.state)) return nothing;
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const doc = (await tx.get(ref)).data() as TalliedExport | undefined;
        if (!doc) return nothing;
        const next = talliedState(doc) ?? (await this.stateFromJobs(tx, doc));
        if (next.state === doc.state) return nothing;
        const final = next.state !== 'RUNNING';
        const expireAt = final ? expireAtOf(next.updatedAt, this.opts.recordDays) : {};
        tx.update(ref, { state: next.state, updatedAt: next.updatedAt, ...expireAt });
        if (!final) return nothing;
        const record = recordOf(doc) as ExportRecord;
        const audited = this.opts.audit !== undefined;
        if (this.opts.audit) writeAuditDrafts(this.db, tx, doc.userId, [exportFinished(record, next.state, next.updatedAt)], this.opts.audit.keepDays, AFTER_THE_JOBS);
        if (!this.opts.events) return { events: [], audited };
        const event = exportFinishedEvent(record, next.state, next.updatedAt);
        writeOutbox(this.db, tx, [event], next.updatedAt);
        return { events: [event], audited };
      }),
    );
  }

  /** Exports written before the tally: the state follows from the jobs' own documents. */
  private async stateFromJobs(tx: Transaction, doc: TalliedExport): Promise<Pick<ExportRecord, 'state' | 'updatedAt'>> {
    // An export's job ids never change after it is created: find them outside the transaction and
    // lock only those documents (a query inside a transaction locks far more in the emulator).
    const ids = await runQuery(this.db, { collection: 'jobs', where: [['exportId', '==', doc.id]], select: [] });
    const jobs = ids.length > 0 ? await tx.getAll(...ids.map((d) => this.db.doc(d.path))) : [];
    const found = jobs.flatMap((d) => (d.exists ? [d.data() as Job] : []));
    return { state: deriveExportState(found.map((j) => j.state)), updatedAt: Math.max(doc.updatedAt, ...found.map((j) => j.updatedAt)) };
  }

  private async removeMarker(marker: DocumentSnapshot): Promise<void> {
    try {
      await marker.ref.delete({ lastUpdateTime: marker.updateTime });
    } catch (err) {
      // FAILED_PRECONDITION: a later end rewrote it; that end settles.
      if ((err as { code?: unknown }).code !== 9) throw err;
    }
  }
}
