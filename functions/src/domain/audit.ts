/**
 * The audit trail of one user: what was done with their consent and their data, as an
 * append-only chain. Each entry carries the SHA-256 of the previous one over a canonical form, so
 * an entry changed, removed or inserted afterwards breaks the chain where it happened. Pure: the
 * entry kinds, the canonical form, the hash and the check. Entries name no token, code or URL,
 * and no user id (the user is the trail's key, a hash; archive names are given without the
 * `{userId}/` prefix of the bucket).
 */
import { createHash } from 'node:crypto';

export const AUDIT_KINDS = [
  'consent.granted',
  'consent.revoked',
  'export.started',
  'export.finished',
  'archives.copied',
  'download.issued',
  'export.deleted',
  'user.erased',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** JSON values only: what the canonical form can hash. */
export type AuditValue = string | number | boolean | null | AuditValue[] | { [key: string]: AuditValue };
export type AuditDetails = Record<string, AuditValue>;

/** What a change records, before it is chained. `id` is stable: writing the same fact twice keeps one. */
export interface AuditDraft {
  id: string;
  kind: AuditKind;
  /** epoch ms: when it happened. */
  at: number;
  details: AuditDetails;
}

/** A chained entry. `seq` counts from 1 per user; `prevHash` of the first is GENESIS_HASH. */
export interface AuditEntry extends AuditDraft {
  userKey: string;
  seq: number;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** Keys sorted at every level, no whitespace: the same entry always hashes to the same bytes. */
export function canonicalJson(value: AuditValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as AuditValue)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The hash of an entry: every field but the hash itself, the previous entry's hash included. */
export function auditHash(e: Omit<AuditEntry, 'hash'>): string {
  const form: AuditValue = { userKey: e.userKey, seq: e.seq, id: e.id, kind: e.kind, at: e.at, details: e.details, prevHash: e.prevHash };
  return createHash('sha256').update(canonicalJson(form)).digest('hex');
}

/** The next entry of a chain whose head is (seq, hash). */
export function chain(draft: AuditDraft, userKey: string, head: { seq: number; hash: string }): AuditEntry {
  const unhashed = { ...draft, userKey, seq: head.seq + 1, prevHash: head.hash };
  return { ...unhashed, hash: auditHash(unhashed) };
}

export interface ChainCheck {
  ok: boolean;
  /** Entries checked. */
  entries: number;
  /** The first entry (oldest first) whose hash or link does not hold, and why. */
  firstBroken?: { seq: number; id: string; reason: string };
}

/**
 * Checks a trail, oldest first, against its head. The oldest entry present anchors the check:
 * entries older than the retention period are deleted by TTL, so a trail may start after seq 1.
 * Everything after it must link up without a gap, and the newest entry must be the head.
 */
export function verifyChain(entries: readonly AuditEntry[], head?: { seq: number; hash: string }): ChainCheck {
  let prev: AuditEntry | undefined;
  for (const e of entries) {
    const broken = (reason: string): ChainCheck => ({ ok: false, entries: entries.length, firstBroken: { seq: e.seq, id: e.id, reason } });
    if (auditHash(e) !== e.hash) return broken('its hash does not match its content');
    if (prev === undefined && e.seq === 1 && e.prevHash !== GENESIS_HASH) return broken('the first entry does not start the chain');
    if (prev !== undefined && e.seq !== prev.seq + 1) return broken(`entries ${prev.seq + 1} to ${e.seq - 1} are missing before it`);
    if (prev !== undefined && e.prevHash !== prev.hash) return broken('it does not carry the hash of the entry before it');
    prev = e;
  }
  if (head && head.seq > 0) {
    const last = entries[entries.length - 1];
    if (!last || last.seq !== head.seq || last.hash !== head.hash) {
      const seq = last ? last.seq : 0;
      return { ok: false, entries: entries.length, firstBroken: { seq: seq + 1, id: '', reason: `the trail ends at ${seq}, its head says ${head.seq}` } };
    }
  }
  return { ok: true, entries: entries.length };
}

/** An object's name inside the user's prefix: the trail keeps no user id. */
export function nameInsideUser(objectName: string): string {
  const slash = objectName.indexOf('/');
  return slash >= 0 ? objectName.slice(slash + 1) : objectName;
}

/** Stable draft ids: a hash of what happened, so a retried write keeps one entry. */
export const auditDraftId = (...parts: Array<string | number>): string => createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 40);
