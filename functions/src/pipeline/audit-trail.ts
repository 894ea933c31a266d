/**
 * The audit trail's use cases: sealing what changes wrote (after their commit, and by the sweeper
 * for what a crash left pending), recording facts that have no transaction of their own, the
 * caller's own trail page by page, and the chain check.
 */
import { userIdHash } from '../domain/events';
import { verifyChain, type AuditDraft, type AuditEntry, type ChainCheck } from '../domain/audit';
import { invalid } from '../domain/errors';
import type { AuditStore } from '../domain/ports/audit-store';
import type { Logger } from '../logging';

/** Drafts the sweeper looks at per tick. */
const SWEEP_BATCH = 100;

export interface AuditEntryView {
  seq: number;
  kind: AuditEntry['kind'];
  /** RFC 3339: when it happened. */
  at: string;
  details: AuditEntry['details'];
  prevHash: string;
  hash: string;
}

export interface AuditPage {
  entries: AuditEntryView[];
  nextPageToken?: string;
}

export interface AuditTrailDeps {
  store: AuditStore;
  logger: Logger;
}

const view = (e: AuditEntry): AuditEntryView => ({ seq: e.seq, kind: e.kind, at: new Date(e.at).toISOString(), details: e.details, prevHash: e.prevHash, hash: e.hash });

/** Page tokens: the last seq of the page, base64url. Opaque to callers; any other value is refused. */
export function encodeAuditPageToken(seq: number): string {
  return Buffer.from(`a${seq}`).toString('base64url');
}

export function decodeAuditPageToken(token: string): number | undefined {
  const m = /^a([1-9][0-9]{0,14})$/.exec(Buffer.from(token, 'base64url').toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

export class AuditTrail {
  constructor(private readonly deps: AuditTrailDeps) {}

  /** After the commit that wrote the user's drafts. Never throws: the change is done, and the sweeper seals what is left. */
  async sealAfterCommit(userId: string): Promise<void> {
    try {
      await this.deps.store.seal(userIdHash(userId));
    } catch (err) {
      this.deps.logger.warn({ err }, 'audit entries not sealed yet; the sweeper seals them');
    }
  }

  /** Facts with no transaction of their own: written before the caller acts on them (a failed write fails the request). */
  async record(userId: string, drafts: readonly AuditDraft[]): Promise<void> {
    await this.deps.store.append(userId, drafts);
    await this.sealAfterCommit(userId);
  }

  /** The sweeper's part: seals drafts pending since `before`. */
  async sealPending(before: number): Promise<number> {
    // A bounded share per tick: the next tick takes the rest.
    return this.deps.store.sealPending(before, SWEEP_BATCH);
  }

  async list(userId: string, page: { pageSize: number; pageToken?: string }): Promise<AuditPage> {
    let after: number | undefined;
    if (page.pageToken !== undefined) {
      after = decodeAuditPageToken(page.pageToken);
      if (after === undefined) throw invalid('pageToken', 'pageToken: is not a page token this API issued');
    }
    const { entries, more } = await this.deps.store.page(userIdHash(userId), page.pageSize, after);
    const last = entries[entries.length - 1];
    return { entries: entries.map(view), ...(more && last ? { nextPageToken: encodeAuditPageToken(last.seq) } : {}) };
  }

  async verify(userId: string): Promise<ChainCheck> {
    const { entries, head } = await this.deps.store.trail(userIdHash(userId));
    return verifyChain(entries, head);
  }
}
