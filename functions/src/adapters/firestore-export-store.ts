/**
 * Grants, exports, jobs, idempotency records (expire through a TTL policy on `expireAt`) and the
 * users' admission ledgers in Firestore, laid out as firestore-paths.ts says.
 * Every state change is a transaction that checks the state it expects.
 */
import { invalid } from '../domain/errors';
import { admitExport, type ExportAdmission, type UserLedger } from '../domain/admission';
import { deriveExportState } from '../domain/export-state';
import { exportFinishedEvent, jobFinishedEvent, type PipelineEvent } from '../domain/events';
import { isTerminal } from '../domain/job';
import type { ExportRecord, ExportState, Grant, GrantState, Job, JobState } from '../domain/model';
import type { ExportStore, HousekeepingStore, JobUpdate } from '../domain/ports/export-store';
import { FieldPath, type Firestore, type Transaction } from '@google-cloud/firestore';
import { contended, runQuery, type QuerySpec as Query } from './firestore-client';
import { refuseWhileErasing } from './firestore-erasure-guard';
import { readLedger, writeLedger } from './firestore-ledger';
import { writeOutbox } from './firestore-outbox';
import { paths } from './firestore-paths';
import { PerKeyQueue } from './per-key-queue';

const IDEMPOTENCY_TTL_MS = 7 * 86_400_000;

const { grant, export: exportDoc, job, idempotency } = paths;

/**
 * What an export's document carries besides its record, so a job that ends derives the export's
 * state from this one document: the ids of its jobs (fixed at creation) and the state each job
 * that has ended ended in, written by that job's own transaction. Exports created before these
 * fields existed are derived from their jobs' documents.
 */
interface ExportTally {
  jobIds?: string[];
  endedJobs?: Record<string, JobState>;
}

/** The record without the tally, which is this adapter's own business. */
function recordOf(data: (ExportRecord & ExportTally) | undefined): ExportRecord | undefined {
  if (!data) return undefined;
  const { jobIds: _ids, endedJobs: _ended, ...record } = data;
  return record;
}

/**
 * Every query the store runs. infra/firestore.tf declares the composite indexes they need, and
 * test/infra/terraform.test.ts derives those needs from these very objects.
 */
export const exportStoreQueries = {
  /** A user's export list, newest first; the id breaks ties between exports of the same millisecond. */
  exportsOfUser: (userId: string, limit: number, startAfter?: unknown[]): Query => ({
    collection: 'exports',
    where: [['userId', '==', userId]],
    orderBy: [
      ['createdAt', 'desc'],
      ['id', 'desc'],
    ],
    limit,
    ...(startAfter ? { startAfter } : {}),
  }),
  jobsOfExport: (exportId: string, namesOnly = false): Query => ({ collection: 'jobs', where: [['exportId', '==', exportId]], ...(namesOnly ? { select: [] } : {}) }),
  /** Jobs that follow (or followed) a Google archive job: at most one should. */
  jobsFollowing: (archiveJobId: string): Query => ({ collection: 'jobs', where: [['archiveJobIds', 'array-contains', archiveJobId]], limit: 5 }),
  idempotencyOfExport: (exportId: string): Query => ({ collection: 'idempotency', where: [['exportId', '==', exportId]], select: [] }),
  // Terminal jobs carry no nextCheckAt, so this single-field range reads only live, overdue jobs.
  overdueJobs: (dueBefore: number, limit: number): Query => ({ collection: 'jobs', where: [['nextCheckAt', '<=', dueBefore]], orderBy: [['nextCheckAt', 'asc']], limit }),
};
const Q = exportStoreQueries;

export class FirestoreExportStore implements ExportStore, HousekeepingStore {
  /** One admission at a time per user in this instance (see per-key-queue.ts). */
  private readonly admissions = new PerKeyQueue();

  constructor(
    private readonly db: Firestore,
    /** Write the events of finished jobs and exports to the outbox (when apps are told by Pub/Sub). */
    private readonly opts: { events?: boolean } = {},
  ) {}

  private async read<T>(path: string, tx?: Transaction): Promise<T | undefined> {
    const ref = this.db.doc(path);
    const snap = tx ? await tx.get(ref) : await ref.get();
    return snap.exists ? (snap.data() as T) : undefined;
  }

  async getGrant(userId: string): Promise<Grant | undefined> {
    return this.read<Grant>(grant(userId));
  }

  /** Refused (409) while the user's erasure runs: a code exchange that raced it stores nothing. */
  async putGrant(g: Grant): Promise<void> {
    await contended(() =>
      this.db.runTransaction(async (tx) => {
        await refuseWhileErasing(this.db, tx, g.userId);
        tx.set(this.db.doc(grant(g.userId)), { ...g });
      }),
    );
  }

  async setGrantState(userId: string, expected: GrantState, next: GrantState): Promise<boolean> {
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const current = await this.read<Grant>(grant(userId), tx);
        if (current?.state !== expected) return false;
        tx.update(this.db.doc(grant(userId)), { state: next, updatedAt: Date.now() });
        return true;
      }),
    );
  }

  async deleteGrant(userId: string): Promise<void> {
    await this.db.doc(grant(userId)).delete();
  }

  async deleteExportRecords(exportId: string): Promise<void> {
    const [jobs, idem] = await Promise.all([runQuery(this.db, Q.jobsOfExport(exportId, true)), runQuery(this.db, Q.idempotencyOfExport(exportId))]);
    // The export last: if this fails midway, the export still lists and DELETE can be sent again.
    const names = [...[...jobs, ...idem].map((d) => d.path), exportDoc(exportId)];
    await contended(() => {
      const batch = this.db.batch();
      for (const name of names) batch.delete(this.db.doc(name));
      return batch.commit();
    });
  }

  async createExport(
    record: ExportRecord,
    jobs: Job[],
    idem?: { userId: string; key: string },
    admission?: ExportAdmission,
  ): Promise<{ record: ExportRecord; jobs: Job[]; created: boolean }> {
    const idemRef = idem ? this.db.doc(idempotency(idem.userId, idem.key)) : undefined;
    const exportRef = this.db.doc(exportDoc(record.id));
    const transact = <T>(fn: () => Promise<T>): Promise<T> => contended(() => (admission ? this.admissions.run(record.userId, fn) : fn()));
    const outcome = await transact(() => this.db.runTransaction(async (tx) => {
      if (idemRef) {
        const existing = await this.read<{ exportId: string }>(idemRef.path, tx);
        if (existing) {
          // Read in the same transaction: an export deleted with its idempotency records is either
          // still here with them, or gone with them (and the key is free again).
          const first = recordOf(await this.read<ExportRecord & ExportTally>(exportDoc(existing.exportId), tx));
          if (first) return { created: false as const, record: first };
        }
      }
      const ledgerWrite = admission ? await this.admit(tx, record, jobs, admission) : undefined;
      if (idemRef) {
        // expireAt is a timestamp: the TTL policy deletes the record after it.
        tx.set(idemRef, { exportId: record.id, userId: record.userId, expireAt: new Date(record.createdAt + IDEMPOTENCY_TTL_MS) });
      }
      const tally: ExportTally = { jobIds: jobs.map((j) => j.id), endedJobs: {} };
      tx.create(exportRef, { ...record, ...tally });
      for (const j of jobs) tx.create(this.db.doc(job(j.id)), { ...j });
      ledgerWrite?.();
      return { created: true as const, record };
    }));
    // A replay's jobs (read after the transaction: an export deleted since lists none).
    return outcome.created ? { record, jobs, created: true } : { record: outcome.record, jobs: await this.listJobs(outcome.record.id), created: false };
  }

  /** Reads the user's ledger and what it names, decides (domain/admission), and returns the ledger's write. */
  private async admit(tx: Transaction, record: ExportRecord, jobs: Job[], admission: ExportAdmission): Promise<() => void> {
    const { ref, ledger } = await readLedger(this.db, tx, record.userId);
    const holders = Object.values(ledger.groups).map((h) => h.jobId);
    const [runningDocs, holderDocs] = await Promise.all([
      ledger.running.length > 0 ? tx.getAll(...ledger.running.map((id) => this.db.doc(exportDoc(id)))) : [],
      holders.length > 0 ? tx.getAll(...holders.map((id) => this.db.doc(job(id)))) : [],
    ]);
    const facts = {
      runningExports: new Set(runningDocs.filter((d) => d.exists && (d.data() as ExportRecord).state === 'RUNNING').map((d) => d.id)),
      liveJobs: new Set(holderDocs.filter((d) => d.exists && !isTerminal((d.data() as Job).state)).map((d) => d.id)),
    };
    const next = admitExport(ledger, facts, { exportId: record.id, jobs: jobs.map((j) => ({ resource: j.resource, jobId: j.id })), now: record.createdAt }, admission);
    return () => writeLedger(tx, ref, next, record.userId);
  }

  async getExport(exportId: string): Promise<ExportRecord | undefined> {
    return recordOf(await this.read<ExportRecord & ExportTally>(exportDoc(exportId)));
  }

  async listExports(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: ExportRecord[]; nextPageToken?: string }> {
    let startAfter: unknown[] | undefined;
    if (page.pageToken) {
      const cursor = decodePageToken(page.pageToken);
      // A token this API did not issue is the caller's error, not a silent first page.
      if (!cursor) throw invalid('pageToken', 'pageToken: is not a page token this API issued');
      startAfter = [cursor.createdAt, cursor.id];
    }
    const docs = (await runQuery<ExportRecord & ExportTally>(this.db, Q.exportsOfUser(userId, page.limit + 1, startAfter))).map((d) => recordOf(d.data) as ExportRecord);
    const exports = docs.slice(0, page.limit);
    const last = exports[exports.length - 1];
    return docs.length > page.limit && last ? { exports, nextPageToken: encodePageToken(last) } : { exports };
  }

  async listJobs(exportId: string): Promise<Job[]> {
    const docs = await runQuery<Job>(this.db, Q.jobsOfExport(exportId));
    return docs.map((d) => d.data).sort((a, b) => a.resource.localeCompare(b.resource));
  }

  async jobsFollowing(archiveJobId: string): Promise<Job[]> {
    return (await runQuery<Job>(this.db, Q.jobsFollowing(archiveJobId))).map((d) => d.data);
  }

  async getJob(jobId: string): Promise<Job | undefined> {
    return this.read<Job>(job(jobId));
  }

  async updateJob(jobId: string, decide: (job: Job) => Job | undefined): Promise<JobUpdate | undefined> {
    return this.db.runTransaction(async (tx) => {
      const before = await this.read<Job>(job(jobId), tx);
      if (!before) return undefined;
      const after = decide(before);
      if (!after) return undefined;
      const events: PipelineEvent[] = [];
      if (isTerminal(after.state) && !isTerminal(before.state)) {
        const exportEvent = await this.rederiveExport(tx, after);
        if (this.opts.events) events.push(jobFinishedEvent(after), ...(exportEvent ? [exportEvent] : []));
      }
      // set, not merge: fields the decision dropped must go.
      tx.set(this.db.doc(job(jobId)), { ...after });
      writeOutbox(this.db, tx, events, after.updatedAt);
      return { before, after, events };
    });
  }

  /**
   * Reads before any write, as Firestore transactions require. The job's transaction reads and
   * writes only its own document and its export's: reading every sibling job here made the jobs
   * of a wide export that end together conflict pairwise (63 groups ending at once: 189 retried
   * transactions, the last job ending 91 s after the first; issue 17, bench 9). Returns the
   * export's event when the export reached its final state with this job.
   */
  private async rederiveExport(tx: Transaction, changed: Job): Promise<PipelineEvent | undefined> {
    const ref = this.db.doc(exportDoc(changed.exportId));
    const snap = await tx.get(ref);
    if (!snap.exists) return undefined;
    const record = snap.data() as ExportRecord & ExportTally;
    if (!record.jobIds || !record.endedJobs) return this.rederiveFromJobs(tx, changed, record);
    const ended = { ...record.endedJobs, [changed.id]: changed.state };
    // A job not ended yet counts as running, whatever step it is at.
    const state = deriveExportState(record.jobIds.map((id) => ended[id] ?? 'WAITING'));
    const moved = state !== record.state ? ['state', state, 'updatedAt', changed.updatedAt] : [];
    tx.update(ref, new FieldPath('endedJobs', changed.id), changed.state, ...moved);
    return finishedEvent(record, state, changed);
  }

  /** Exports created before the tally: the state follows from the jobs' own documents. */
  private async rederiveFromJobs(tx: Transaction, changed: Job, record: ExportRecord): Promise<PipelineEvent | undefined> {
    // An export's job ids never change after it is created: find them outside the transaction and
    // lock only those documents. A query inside the transaction locks far more (in the emulator,
    // the whole collection).
    const ids = await runQuery(this.db, Q.jobsOfExport(changed.exportId, true));
    const siblings = ids.length > 0 ? await tx.getAll(...ids.map((d) => this.db.doc(d.path))) : [];
    const states = siblings.flatMap((d) => (d.exists ? [d.id === changed.id ? changed.state : (d.data() as Job).state] : []));
    const state = deriveExportState(states);
    if (record.state !== state) tx.update(this.db.doc(exportDoc(changed.exportId)), { state, updatedAt: changed.updatedAt });
    return finishedEvent(record, state, changed);
  }

  async liveJobsOfUser(userId: string): Promise<Job[]> {
    const ledger = await this.read<Partial<UserLedger>>(paths.ledger(userId));
    const ids = Object.values(ledger?.groups ?? {}).map((h) => h.jobId);
    if (ids.length === 0) return [];
    const docs = await this.db.getAll(...ids.map((id) => this.db.doc(job(id))));
    return docs.flatMap((d) => (d.exists && !isTerminal((d.data() as Job).state) ? [d.data() as Job] : []));
  }

  async listOverdueJobs(dueBefore: number, limit: number): Promise<Job[]> {
    const docs = await runQuery<Job>(this.db, Q.overdueJobs(dueBefore, limit));
    return docs.map((d) => d.data);
  }
}

/** The export's event, when `state` is a final one it just reached. */
function finishedEvent(record: ExportRecord, state: ExportState, changed: Job): PipelineEvent | undefined {
  return state !== record.state && state !== 'RUNNING' ? exportFinishedEvent(record, state, changed.updatedAt) : undefined;
}

function encodePageToken(r: ExportRecord): string {
  return Buffer.from(JSON.stringify([r.createdAt, r.id])).toString('base64url');
}

export function decodePageToken(token: string): { createdAt: number; id: string } | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'string') return { createdAt: v[0], id: v[1] };
  } catch {
    // fall through: an unreadable token is the caller's error
  }
  return undefined;
}
