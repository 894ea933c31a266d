/**
 * Grants, exports, jobs, idempotency records (expire through a TTL policy on `expireAt`) and the
 * users' admission ledgers in Firestore, laid out as firestore-paths.ts says.
 * Every state change is a transaction that checks the state it expects.
 */
import { invalid } from '../domain/errors';
import { admitExport, type ExportAdmission, type UserLedger } from '../domain/admission';
import { jobFinishedEvent, type PipelineEvent } from '../domain/events';
import { isTerminal } from '../domain/job';
import type { ExportRecord, Grant, GrantState, Job } from '../domain/model';
import type { ExportStore, GrantExpiryStore, HousekeepingStore, JobUpdate } from '../domain/ports/export-store';
import { FieldValue, type Firestore, type Transaction, type WriteBatch } from '@google-cloud/firestore';
import { contended, runQuery, type QuerySpec as Query } from './firestore-client';
import { expireAtOf, ExportSettler, recordJobEnd, recordOf, type ExportTally, type ExportWriteOptions, type TalliedExport } from './firestore-export-tally';
import { refuseWhileErasing } from './firestore-erasure-guard';
import { readLedger, writeLedger } from './firestore-ledger';
import { writeOutbox } from './firestore-outbox';
import { writeAuditDrafts } from './firestore-audit-trail';
import { archivesCopied, exportStarted } from '../domain/audit-drafts';
import type { AuditDraft } from '../domain/audit';
import { paths } from './firestore-paths';
import { PerKeyQueue } from './per-key-queue';
import { DAY_MS } from '../domain/durations';

const IDEMPOTENCY_TTL_MS = 7 * DAY_MS;
/** gRPC NOT_FOUND: an update of a document that does not exist. */
const NOT_FOUND = 5;

const { grant, export: exportDoc, job, idempotency } = paths;

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
  /** Grants to warn that time-based access ends soon: only unwarned ones carry warnAt (single-field index). */
  grantsToWarn: (before: number, limit: number): Query => ({ collection: 'grants', where: [['warnAt', '<=', before]], orderBy: [['warnAt', 'asc']], limit }),
};
const Q = exportStoreQueries;

export class FirestoreExportStore implements ExportStore, HousekeepingStore, GrantExpiryStore {
  /** One admission at a time per user in this instance (see per-key-queue.ts). */
  private readonly admissions = new PerKeyQueue();

  private readonly settler: ExportSettler;

  constructor(
    private readonly db: Firestore,
    private readonly opts: ExportWriteOptions = {},
  ) {
    this.settler = new ExportSettler(db, opts);
  }

  /** The audit drafts of a change, in its transaction or batch (nothing when the trail is off). */
  private audit(writer: Transaction | WriteBatch, userId: string, drafts: readonly AuditDraft[] | undefined): boolean {
    if (!this.opts.audit || !drafts || drafts.length === 0) return false;
    writeAuditDrafts(this.db, writer, userId, drafts, this.opts.audit.keepDays);
    return true;
  }

  private async read<T>(path: string, tx?: Transaction): Promise<T | undefined> {
    const ref = this.db.doc(path);
    const snap = tx ? await tx.get(ref) : await ref.get();
    return snap.exists ? (snap.data() as T) : undefined;
  }

  async getGrant(userId: string): Promise<Grant | undefined> {
    return this.read<Grant>(grant(userId));
  }

  /** Refused (409) while the user's erasure runs: a code exchange that raced it stores nothing. */
  async putGrant(g: Grant, audit?: readonly AuditDraft[]): Promise<void> {
    await contended(() =>
      this.db.runTransaction(async (tx) => {
        await refuseWhileErasing(this.db, tx, g.userId);
        tx.set(this.db.doc(grant(g.userId)), { ...g });
        this.audit(tx, g.userId, audit);
      }),
    );
  }

  async setGrantState(userId: string, expected: GrantState, next: GrantState, audit?: (g: Grant) => AuditDraft[]): Promise<boolean> {
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const current = await this.read<Grant>(grant(userId), tx);
        if (current?.state !== expected) return false;
        tx.update(this.db.doc(grant(userId)), { state: next, updatedAt: Date.now() });
        this.audit(tx, userId, audit?.(current));
        return true;
      }),
    );
  }

  async grantsToWarn(before: number, limit: number): Promise<Grant[]> {
    return (await runQuery<Grant>(this.db, Q.grantsToWarn(before, limit))).map((d) => d.data);
  }

  async warnGrantExpiry(userId: string, now: number, event: (grant: Grant & { expiresAt: number }) => PipelineEvent): Promise<PipelineEvent | undefined> {
    return contended(() =>
      this.db.runTransaction(async (tx) => {
        const current = await this.read<Grant>(grant(userId), tx);
        // Warned by a sweep that ran at the same time, or a new consent since: nothing to do.
        if (current?.warnAt === undefined || current.warnAt > now) return undefined;
        const live = current.state === 'ACTIVE' && current.expiresAt !== undefined && current.expiresAt > now && current.timeBasedResources.length > 0;
        const e = live && this.opts.events ? event(current as Grant & { expiresAt: number }) : undefined;
        tx.update(this.db.doc(grant(userId)), { warnAt: FieldValue.delete(), expiryWarnedAt: now });
        writeOutbox(this.db, tx, e ? [e] : [], now);
        return e;
      }),
    );
  }

  async deleteGrant(userId: string, audit?: readonly AuditDraft[]): Promise<void> {
    const batch = this.db.batch();
    batch.delete(this.db.doc(grant(userId)));
    this.audit(batch, userId, audit);
    await batch.commit();
  }

  async deleteExportRecords(exportId: string, audit?: { userId: string; drafts: readonly AuditDraft[] }): Promise<void> {
    const [jobs, idem] = await Promise.all([runQuery(this.db, Q.jobsOfExport(exportId, true)), runQuery(this.db, Q.idempotencyOfExport(exportId))]);
    // The export last: if this fails midway, the export still lists and DELETE can be sent again.
    const names = [...[...jobs, ...idem].map((d) => d.path), exportDoc(exportId)];
    await contended(() => {
      const batch = this.db.batch();
      for (const name of names) batch.delete(this.db.doc(name));
      if (audit) this.audit(batch, audit.userId, audit.drafts);
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
          const first = recordOf(await this.read<TalliedExport>(exportDoc(existing.exportId), tx));
          if (first) return { created: false as const, record: first };
        }
      }
      const ledgerWrite = admission ? await this.admit(tx, record, jobs, admission) : undefined;
      if (idemRef) {
        // expireAt is a timestamp: the TTL policy deletes the record after it.
        tx.set(idemRef, { exportId: record.id, userId: record.userId, expireAt: new Date(record.createdAt + IDEMPOTENCY_TTL_MS) });
      }
      // A job may be created ended (refused at admission): the tally counts it from the start.
      const ended = jobs.filter((j) => isTerminal(j.state));
      const tally: ExportTally = { jobIds: jobs.map((j) => j.id), endedJobs: Object.fromEntries(ended.map((j) => [j.id, j.state])), endedAt: Object.fromEntries(ended.map((j) => [j.id, j.updatedAt])) };
      tx.create(exportRef, { ...record, ...tally });
      for (const j of jobs) tx.create(this.db.doc(job(j.id)), { ...j });
      ledgerWrite?.();
      this.audit(tx, record.userId, [exportStarted(record)]);
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
    return recordOf(await this.read<TalliedExport>(exportDoc(exportId)));
  }

  async listExports(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: ExportRecord[]; nextPageToken?: string }> {
    const { docs, nextPageToken } = await this.exportPage(userId, page);
    return { exports: docs.map((d) => recordOf(d) as ExportRecord), ...(nextPageToken ? { nextPageToken } : {}) };
  }

  async listExportsWithJobs(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: { record: ExportRecord; jobs: Job[] }[]; nextPageToken?: string }> {
    const { docs, nextPageToken } = await this.exportPage(userId, page);
    // Every export names its jobs in its tally, so the whole page's jobs are one batched get.
    const refs = docs.flatMap((d) => (d.jobIds ?? []).map((id) => this.db.doc(job(id))));
    const snaps = refs.length > 0 ? await this.db.getAll(...refs) : [];
    const byExport = new Map<string, Job[]>();
    for (const snap of snaps) {
      // A job deleted since (its export is being deleted) is simply not listed.
      if (!snap.exists) continue;
      const j = snap.data() as Job;
      byExport.set(j.exportId, [...(byExport.get(j.exportId) ?? []), j]);
    }
    const exports = docs.map((d) => ({ record: recordOf(d) as ExportRecord, jobs: (byExport.get(d.id) ?? []).sort((a, b) => a.resource.localeCompare(b.resource)) }));
    return { exports, ...(nextPageToken ? { nextPageToken } : {}) };
  }

  private async exportPage(userId: string, page: { limit: number; pageToken?: string }): Promise<{ docs: (TalliedExport)[]; nextPageToken?: string }> {
    let startAfter: unknown[] | undefined;
    if (page.pageToken) {
      const cursor = decodePageToken(page.pageToken);
      // A token this API did not issue is the caller's error, not a silent first page.
      if (!cursor) throw invalid('pageToken', 'pageToken: is not a page token this API issued');
      startAfter = [cursor.createdAt, cursor.id];
    }
    const all = (await runQuery<TalliedExport>(this.db, Q.exportsOfUser(userId, page.limit + 1, startAfter))).map((d) => d.data);
    const docs = all.slice(0, page.limit);
    const last = docs[docs.length - 1];
    return all.length > page.limit && last ? { docs, nextPageToken: encodePageToken(last) } : { docs };
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
    let committed: { update: JobUpdate; ended: boolean } | undefined;
    try {
      committed = await this.commitJob(jobId, decide, true);
    } catch (err) {
      // The export's document is gone (its records are being deleted): the job's change still holds.
      if ((err as { code?: unknown }).code !== NOT_FOUND) throw err;
      committed = await this.commitJob(jobId, decide, false);
    }
    if (!committed?.ended) return committed?.update;
    const { update } = committed;
    let settled: { events: PipelineEvent[]; audited: boolean } = { events: [], audited: false };
    try {
      settled = await this.settler.settle(update.after.exportId);
    } catch {
      // The job's end is committed and its settle marker with it: the sweeper settles the export.
    }
    const audited = update.audited ?? (settled.audited || undefined);
    return { ...update, events: [...update.events, ...settled.events], ...(audited ? { audited } : {}) };
  }

  /**
   * The job's compare-and-set. A job that ends writes its line of its export's tally blindly
   * (firestore-export-tally.ts): its transaction reads its own document only, so the jobs of a
   * wide export ending together do not conflict.
   */
  private async commitJob(jobId: string, decide: (job: Job) => Job | undefined, tally: boolean): Promise<{ update: JobUpdate; ended: boolean } | undefined> {
    return this.db.runTransaction(async (tx) => {
      const before = await this.read<Job>(job(jobId), tx);
      if (!before) return undefined;
      const after = decide(before);
      if (!after) return undefined;
      const events: PipelineEvent[] = [];
      const drafts: AuditDraft[] = [];
      const ended = isTerminal(after.state) && !isTerminal(before.state);
      if (ended) {
        if (tally) recordJobEnd(this.db, tx, after);
        if (this.opts.events) events.push(jobFinishedEvent(after));
        if (after.state === 'SUCCEEDED') drafts.push(archivesCopied(after));
      }
      // set, not merge: fields the decision dropped must go (an ended job keeps its expiry).
      const { expireAt: kept } = before as Job & { expireAt?: unknown };
      tx.set(this.db.doc(job(jobId)), { ...after, ...(ended ? expireAtOf(after.finishedAt ?? after.updatedAt, this.opts.recordDays) : kept !== undefined ? { expireAt: kept } : {}) });
      writeOutbox(this.db, tx, events, after.updatedAt);
      const audited = this.audit(tx, after.userId, drafts);
      return { update: { before, after, events, ...(audited ? { audited } : {}) }, ended };
    });
  }

  /** The sweeper's part: exports whose last job ended on an instance that died before settling them. */
  async settleExports(before: number, limit: number): Promise<{ exports: number; events: PipelineEvent[] }> {
    return this.settler.settleLeftovers(before, limit);
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
