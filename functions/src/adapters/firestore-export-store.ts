/**
 * Grants, exports and jobs in Firestore. Collections: `grants/{userId}`, `exports/{exportId}`,
 * `jobs/{jobId}`, `idempotency/{sha256(userId, key)}` (expires through a TTL policy on `expireAt`).
 * Every state change is a transaction that checks the state it expects.
 */
import { createHash } from 'node:crypto';
import { Firestore, Timestamp, type DocumentSnapshot, type Transaction } from '@google-cloud/firestore';
import { invalid } from '../domain/errors';
import { deriveExportState } from '../domain/export-state';
import { isTerminal, type Job } from '../domain/job';
import type { HousekeepingStore } from '../domain/housekeeping-store';
import type { ExportRecord, ExportStore, Grant, GrantState, JobUpdate } from '../domain/ports';

const IDEMPOTENCY_TTL_MS = 7 * 86_400_000;

export function createFirestore(projectId: string, emulatorHost?: string): Firestore {
  // REST avoids loading gRPC at cold start; the emulator speaks gRPC without credentials only.
  return new Firestore({ projectId, ignoreUndefinedProperties: true, preferRest: !emulatorHost });
}

function stripUndefined<T extends object>(o: T): T {
  return JSON.parse(JSON.stringify(o)) as T;
}

export class FirestoreExportStore implements ExportStore, HousekeepingStore {
  constructor(private readonly db: Firestore) {}

  private grants = () => this.db.collection('grants');
  private exports = () => this.db.collection('exports');
  private jobs = () => this.db.collection('jobs');

  async getGrant(userId: string): Promise<Grant | undefined> {
    const snap = await this.grants().doc(userId).get();
    return snap.exists ? (snap.data() as Grant) : undefined;
  }

  async putGrant(grant: Grant): Promise<void> {
    await this.grants().doc(grant.userId).set(stripUndefined(grant));
  }

  async setGrantState(userId: string, expected: GrantState, next: GrantState): Promise<boolean> {
    return this.db.runTransaction(async (tx) => {
      const ref = this.grants().doc(userId);
      const snap = await tx.get(ref);
      if (!snap.exists || (snap.data() as Grant).state !== expected) return false;
      tx.update(ref, { state: next, updatedAt: Date.now() });
      return true;
    });
  }

  async deleteGrant(userId: string): Promise<void> {
    await this.grants().doc(userId).delete();
  }

  private idempotencyRef(userId: string, key: string) {
    return this.db.collection('idempotency').doc(createHash('sha256').update(`${userId}\n${key}`).digest('hex'));
  }

  async exportCreationTimesSince(userId: string, since: number, limit: number): Promise<number[]> {
    // Served by the (userId, createdAt desc) index of the export list.
    const snap = await this.exports().where('userId', '==', userId).where('createdAt', '>=', since).orderBy('createdAt', 'desc').limit(limit).select('createdAt').get();
    return snap.docs.map((d) => d.get('createdAt') as number);
  }

  async countRunningExports(userId: string): Promise<number> {
    // Equality filters only: Firestore merges the single-field indexes, no composite index needed.
    const snap = await this.exports().where('userId', '==', userId).where('state', '==', 'RUNNING').count().get();
    return snap.data().count;
  }

  async findIdempotentExport(userId: string, key: string): Promise<string | undefined> {
    const snap = await this.idempotencyRef(userId, key).get();
    return snap.exists ? (snap.data() as { exportId: string }).exportId : undefined;
  }

  async deleteExportRecords(exportId: string): Promise<void> {
    const [jobs, idem] = await Promise.all([
      this.jobs().where('exportId', '==', exportId).get(),
      this.db.collection('idempotency').where('exportId', '==', exportId).get(),
    ]);
    const batch = this.db.batch();
    for (const d of [...jobs.docs, ...idem.docs]) batch.delete(d.ref);
    // The export last: if this fails midway, the export still lists and DELETE can be sent again.
    batch.delete(this.exports().doc(exportId));
    await batch.commit();
  }

  async createExport(
    record: ExportRecord,
    jobs: Job[],
    idempotency?: { userId: string; key: string },
  ): Promise<{ record: ExportRecord; jobs: Job[]; created: boolean }> {
    const idemRef = idempotency
      ? this.db.collection('idempotency').doc(createHash('sha256').update(`${idempotency.userId}\n${idempotency.key}`).digest('hex'))
      : undefined;
    const outcome = await this.db.runTransaction(async (tx) => {
      if (idemRef) {
        const existing = await tx.get(idemRef);
        if (existing.exists) return { created: false as const, exportId: (existing.data() as { exportId: string }).exportId };
        tx.create(idemRef, { exportId: record.id, userId: record.userId, expireAt: Timestamp.fromMillis(record.createdAt + IDEMPOTENCY_TTL_MS) });
      }
      tx.create(this.exports().doc(record.id), stripUndefined(record));
      for (const job of jobs) tx.create(this.jobs().doc(job.id), stripUndefined(job));
      return { created: true as const, exportId: record.id };
    });
    if (outcome.created) return { record, jobs, created: true };
    const existing = await this.getExport(outcome.exportId);
    if (!existing) throw new Error(`Idempotency record points at a missing export ${outcome.exportId}`);
    return { record: existing, jobs: await this.listJobs(existing.id), created: false };
  }

  async getExport(exportId: string): Promise<ExportRecord | undefined> {
    const snap = await this.exports().doc(exportId).get();
    return snap.exists ? (snap.data() as ExportRecord) : undefined;
  }

  async listExports(userId: string, page: { limit: number; pageToken?: string }): Promise<{ exports: ExportRecord[]; nextPageToken?: string }> {
    let q = this.exports().where('userId', '==', userId).orderBy('createdAt', 'desc').orderBy('id', 'desc').limit(page.limit + 1);
    if (page.pageToken) {
      const cursor = decodePageToken(page.pageToken);
      // A token this API did not issue is the caller's error, not a silent first page.
      if (!cursor) throw invalid('pageToken', 'pageToken: is not a page token this API issued');
      q = q.startAfter(cursor.createdAt, cursor.id);
    }
    const snap = await q.get();
    const docs = snap.docs.map((d) => d.data() as ExportRecord);
    const exports = docs.slice(0, page.limit);
    const last = exports[exports.length - 1];
    return docs.length > page.limit && last ? { exports, nextPageToken: encodePageToken(last) } : { exports };
  }

  async listJobs(exportId: string): Promise<Job[]> {
    const snap = await this.jobs().where('exportId', '==', exportId).get();
    return snap.docs.map((d) => d.data() as Job).sort((a, b) => a.resource.localeCompare(b.resource));
  }

  async getJob(jobId: string): Promise<Job | undefined> {
    const snap = await this.jobs().doc(jobId).get();
    return snap.exists ? (snap.data() as Job) : undefined;
  }

  async updateJob(jobId: string, decide: (job: Job) => Job | undefined): Promise<JobUpdate | undefined> {
    return this.db.runTransaction(async (tx) => {
      const ref = this.jobs().doc(jobId);
      const snap = await tx.get(ref);
      if (!snap.exists) return undefined;
      const before = snap.data() as Job;
      const after = decide(before);
      if (!after) return undefined;
      if (isTerminal(after.state) && !isTerminal(before.state)) {
        await this.rederiveExport(tx, after);
      }
      tx.set(ref, stripUndefined(after));
      return { before, after };
    });
  }

  /** Reads siblings before any write, as Firestore transactions require. */
  private async rederiveExport(tx: Transaction, changed: Job): Promise<void> {
    const exportRef = this.exports().doc(changed.exportId);
    // An export's job ids never change after it is created: find them outside the transaction and
    // lock only those documents. A query inside the transaction locks far more (in the emulator,
    // the whole collection): exports finishing at the same time waited on each other until the
    // transactions failed with "lock timeout" (found by the chaos run).
    const ids = await this.jobs().where('exportId', '==', changed.exportId).select().get();
    const [exportSnap, ...siblings] = await tx.getAll(exportRef, ...ids.docs.map((d) => d.ref));
    if (!(exportSnap as DocumentSnapshot).exists) return;
    const states = siblings.filter((d) => d.exists).map((d) => (d.id === changed.id ? changed.state : (d.data() as Job).state));
    const state = deriveExportState(states);
    const record = exportSnap.data() as ExportRecord;
    if (record.state !== state) tx.update(exportRef, { state, updatedAt: changed.updatedAt });
  }

  async setBytesCopied(jobId: string, bytes: number): Promise<void> {
    await this.jobs().doc(jobId).update({ bytesCopied: bytes });
  }

  async listOverdueJobs(dueBefore: number, limit: number): Promise<Job[]> {
    // Terminal jobs carry no nextCheckAt, so this single-field range reads only live, overdue jobs.
    const snap = await this.jobs().where('nextCheckAt', '<=', dueBefore).orderBy('nextCheckAt').limit(limit).get();
    return snap.docs.map((d) => d.data() as Job);
  }

  async postponeJob(jobId: string, seq: number, nextCheckAt: number): Promise<boolean> {
    return this.db.runTransaction(async (tx) => {
      const ref = this.jobs().doc(jobId);
      const snap = await tx.get(ref);
      if (!snap.exists || (snap.data() as Job).seq !== seq || (snap.data() as Job).nextCheckAt === undefined) return false;
      tx.update(ref, { nextCheckAt });
      return true;
    });
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
