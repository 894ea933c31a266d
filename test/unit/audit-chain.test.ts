import { describe, expect, it } from 'vitest';
import { auditDraftId, auditHash, canonicalJson, chain, GENESIS_HASH, nameInsideUser, verifyChain, type AuditEntry } from '../../functions/src/domain/audit';

const draft = (n: number) => ({ id: `d${n}`, kind: 'export.started' as const, at: 1000 + n, details: { exportId: `e${n}`, resources: ['a', 'b'] } });

function trail(n: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  let head = { seq: 0, hash: GENESIS_HASH };
  for (let i = 1; i <= n; i++) {
    const e = chain(draft(i), 'k', head);
    out.push(e);
    head = e;
  }
  return out;
}

describe('the audit chain', () => {
  it('hashes a canonical form: key order and whitespace do not matter, every value does', () => {
    expect(canonicalJson({ b: [1, { d: null, c: 'x' }], a: true })).toBe('{"a":true,"b":[1,{"c":"x","d":null}]}');
    const e = trail(1)[0] as AuditEntry;
    expect(e.prevHash).toBe(GENESIS_HASH);
    expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(auditHash({ ...e, details: { resources: ['a', 'b'], exportId: 'e1' } })).toBe(e.hash);
    for (const changed of [{ at: e.at + 1 }, { seq: 2 }, { kind: 'export.deleted' as const }, { details: { exportId: 'e1', resources: ['b', 'a'] } }, { prevHash: 'f'.repeat(64) }, { userKey: 'j' }, { id: 'x' }]) {
      expect(auditHash({ ...e, ...changed }), JSON.stringify(changed)).not.toBe(e.hash);
    }
  });

  it('verifies a whole chain against its head, and one that starts after expired entries', () => {
    const t = trail(5);
    const head = { seq: 5, hash: (t[4] as AuditEntry).hash };
    expect(verifyChain(t, head)).toEqual({ ok: true, entries: 5 });
    expect(verifyChain(t.slice(2), head)).toEqual({ ok: true, entries: 3 });
    expect(verifyChain([], undefined)).toEqual({ ok: true, entries: 0 });
    // A user with no entry yet has the genesis head.
    expect(verifyChain([], { seq: 0, hash: GENESIS_HASH })).toEqual({ ok: true, entries: 0 });
  });

  it('names the first entry that does not hold', () => {
    const t = trail(5);
    const head = { seq: 5, hash: (t[4] as AuditEntry).hash };
    const edited = t.map((e) => (e.seq === 3 ? { ...e, at: 0 } : e));
    expect(verifyChain(edited, head)).toEqual({ ok: false, entries: 5, firstBroken: { seq: 3, id: 'd3', reason: 'its hash does not match its content' } });
    const rehashed = t.map((e) => (e.seq === 3 ? { ...e, at: 0, hash: auditHash({ ...e, at: 0 }) } : e));
    expect(verifyChain(rehashed, head).firstBroken).toEqual({ seq: 4, id: 'd4', reason: 'it does not carry the hash of the entry before it' });
    expect(verifyChain([t[0], t[1], t[3], t[4]] as AuditEntry[], head).firstBroken).toMatchObject({ seq: 4, reason: 'entries 3 to 3 are missing before it' });
    expect(verifyChain(t.slice(0, 4), head)).toEqual({ ok: false, entries: 4, firstBroken: { seq: 5, id: '', reason: 'the trail ends at 4, its head says 5' } });
    // A head that disagrees with the newest entry in its seq alone, or in its hash alone.
    const fourth = t[3] as AuditEntry;
    expect(verifyChain(t.slice(0, 4), { seq: 5, hash: fourth.hash })).toMatchObject({ ok: false, firstBroken: { seq: 5, reason: 'the trail ends at 4, its head says 5' } });
    expect(verifyChain(t.slice(0, 4), { seq: 4, hash: 'f'.repeat(64) })).toMatchObject({ ok: false, firstBroken: { seq: 5, reason: 'the trail ends at 4, its head says 4' } });
    expect(verifyChain([], head)).toMatchObject({ ok: false, firstBroken: { seq: 1 } });
    const forgedStart = chain(draft(1), 'k', { seq: 0, hash: 'a'.repeat(64) });
    expect(verifyChain([forgedStart])).toMatchObject({ ok: false, firstBroken: { seq: 1, reason: 'the first entry does not start the chain' } });
  });

  it('names objects inside the user prefix', () => {
    expect(nameInsideUser('user-1/e1/chrome.history/archive-1-of-1.zip')).toBe('e1/chrome.history/archive-1-of-1.zip');
    expect(nameInsideUser('plain')).toBe('plain');
  });

  it('derives draft ids from every part, kept apart: the same fact is one id, parts that only concatenate alike are two', () => {
    expect(auditDraftId('export.started', 'e1')).toBe(auditDraftId('export.started', 'e1'));
    expect(auditDraftId('export.started', 'e1')).toMatch(/^[0-9a-f]{40}$/);
    expect(auditDraftId('ab', 'c')).not.toBe(auditDraftId('a', 'bc'));
    expect(auditDraftId('export.started', 'e1')).not.toBe(auditDraftId('export.started', 'e2'));
  });
});
