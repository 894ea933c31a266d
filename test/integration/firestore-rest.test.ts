/**
 * The REST Firestore client against the real emulator. The official client is the oracle: what
 * ours writes, it reads back identically, and the other way round; the same queries return the
 * same documents.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Firestore, Timestamp } from '@google-cloud/firestore';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FirestoreError, FirestoreRest, type FirestoreOperation, type Query } from '../../functions/src/adapters/firestore-rest';

const PROJECT = 'demo-firestore-rest';
let host: string;
let official: Firestore;
let rest: FirestoreRest;
const ops: FirestoreOperation[] = [];

beforeAll(() => {
  host = inject('firestoreEmulatorHost');
  process.env.FIRESTORE_EMULATOR_HOST = host;
  official = new Firestore({ projectId: PROJECT });
  rest = new FirestoreRest({ projectId: PROJECT, emulatorHost: host, observe: (op) => ops.push(op) });
});

afterAll(async () => {
  rest?.close();
  await official?.terminate();
});

const sample = {
  text: 'héllo ✓ "quoted" \n',
  empty: '',
  int: 42,
  negative: -7,
  zero: 0,
  big: Number.MAX_SAFE_INTEGER,
  double: 0.1 + 0.2,
  beyondSafe: 2 ** 60,
  yes: true,
  no: false,
  nothing: null,
  nested: { a: 1, deeper: { b: ['x', { c: 2 }] }, emptyMap: {} },
  list: [1, 'two', null, { four: [4] }],
  emptyList: [],
  'odd key-with.dots': 'kept',
};

describe('FirestoreRest, checked against the official client', () => {
  it('writes values the official client reads back identically, and reads what it writes', async () => {
    const at = new Date('2026-11-28T10:00:00.123Z');
    await rest.set('values/ours', { ...sample, at, left: undefined });
    const read = (await official.doc('values/ours').get()).data() as Record<string, unknown>;
    expect(read.at).toBeInstanceOf(Timestamp);
    expect((read.at as Timestamp).toMillis()).toBe(at.getTime());
    expect('left' in read).toBe(false);
    delete read.at;
    expect(read).toEqual(sample);

    await official.doc('values/theirs').set({ ...sample, at: Timestamp.fromDate(at) });
    const back = await rest.get<Record<string, unknown>>('values/theirs');
    expect(back).toEqual({ ...sample, at });
    expect(await rest.get('values/missing')).toBeUndefined();
  });

  it('create refuses an existing document, update a missing one, and neither changes anything', async () => {
    await rest.create('cas/one', { n: 1 });
    const create = await rest.create('cas/one', { n: 2 }).catch((e: unknown) => e);
    expect(create).toBeInstanceOf(FirestoreError);
    expect(create).toMatchObject({ status: 'ALREADY_EXISTS', code: 6 });
    const update = await rest.update('cas/none', { n: 3 }).catch((e: unknown) => e);
    expect(update).toMatchObject({ status: 'NOT_FOUND', code: 5 });
    expect((await official.doc('cas/one').get()).data()).toEqual({ n: 1 });
    expect((await official.doc('cas/none').get()).exists).toBe(false);
  });

  it('update changes only the given fields; set replaces the whole document; delete removes it', async () => {
    await rest.set('shape/a', { keep: 1, change: 1, nested: { x: 1 } });
    await rest.update('shape/a', { change: 2 });
    expect((await official.doc('shape/a').get()).data()).toEqual({ keep: 1, change: 2, nested: { x: 1 } });
    await rest.set('shape/a', { only: true });
    expect((await official.doc('shape/a').get()).data()).toEqual({ only: true });
    await rest.delete('shape/a');
    expect((await official.doc('shape/a').get()).exists).toBe(false);
  });

  it('queries return what the official client returns: filters, order, limit, cursors, select and count', async () => {
    const batch = official.batch();
    for (let i = 0; i < 12; i++) batch.set(official.doc(`things/t${String(i).padStart(2, '0')}`), { owner: i % 3 === 0 ? 'ann' : 'bob', rank: i % 5, id: `t${i}`, due: 1000 + i * 10 });
    await batch.commit();
    const ids = async (q: Query) => (await rest.runQuery<{ id: string }>(q)).map((d) => d.data.id);
    const theirs = async (q: FirebaseFirestore.Query) => (await q.get()).docs.map((d) => d.get('id') as string);
    const things = official.collection('things');

    expect(await ids({ collection: 'things', where: [['owner', '==', 'bob']], orderBy: [['rank', 'desc'], ['id', 'desc']] })).toEqual(
      await theirs(things.where('owner', '==', 'bob').orderBy('rank', 'desc').orderBy('id', 'desc')),
    );
    expect(await ids({ collection: 'things', where: [['due', '<=', 1050]], orderBy: [['due', 'asc']], limit: 3 })).toEqual(await theirs(things.where('due', '<=', 1050).orderBy('due').limit(3)));
    expect(await ids({ collection: 'things', where: [['owner', '==', 'bob']], orderBy: [['rank', 'desc'], ['id', 'desc']], startAfter: [3, 't8'], limit: 4 })).toEqual(
      await theirs(things.where('owner', '==', 'bob').orderBy('rank', 'desc').orderBy('id', 'desc').startAfter(3, 't8').limit(4)),
    );
    const named = await rest.runQuery({ collection: 'things', where: [['owner', '==', 'ann'], ['due', '>=', 1030]], select: [] });
    expect(named.map((d) => d.id).sort()).toEqual(['t03', 't06', 't09']);
    expect(named.every((d) => Object.keys(d.data as object).length === 0 && d.path === `things/${d.id}`)).toBe(true);
    const picked = await rest.runQuery({ collection: 'things', where: [['owner', '==', 'ann']], select: ['due'] });
    expect(picked.map((d) => d.data)).toEqual([{ due: 1000 }, { due: 1030 }, { due: 1060 }, { due: 1090 }]);
    expect(await rest.count({ collection: 'things', where: [['owner', '==', 'bob']] })).toBe(8);
    expect(await rest.count({ collection: 'things', where: [['owner', '==', 'nobody']] })).toBe(0);
  });

  it('transactions: concurrent read-modify-writes of one document all land (contention is retried)', async () => {
    await rest.set('counters/c', { n: 0 });
    await Promise.all(
      Array.from({ length: 5 }, () =>
        rest.runTransaction(async (tx) => {
          const c = await tx.get<{ n: number }>('counters/c');
          tx.update('counters/c', { n: (c?.n ?? 0) + 1 });
        }, { maxAttempts: 20 }),
      ),
    );
    expect((await official.doc('counters/c').get()).data()).toEqual({ n: 5 });
  });

  it('transactions: a failing body writes nothing, a failed create aborts every write, reads after writes are refused', async () => {
    await rest.set('tx/a', { v: 1 });
    await expect(
      rest.runTransaction(async (tx) => {
        tx.set('tx/a', { v: 2 });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await expect(
      rest.runTransaction(async (tx) => {
        tx.set('tx/b', { v: 1 });
        tx.create('tx/a', { v: 3 });
      }),
    ).rejects.toMatchObject({ status: 'ALREADY_EXISTS' });
    await expect(
      rest.runTransaction(async (tx) => {
        tx.set('tx/c', { v: 1 });
        await tx.get('tx/a');
      }),
    ).rejects.toThrow('read everything before they write');
    expect((await official.doc('tx/a').get()).data()).toEqual({ v: 1 });
    expect((await official.doc('tx/b').get()).exists).toBe(false);
    expect((await official.doc('tx/c').get()).exists).toBe(false);
    const [a, missing] = await rest.runTransaction((tx) => tx.getAll(['tx/a', 'tx/nope']));
    expect([a, missing]).toEqual([{ v: 1 }, undefined]);
  });

  it('refuses a path that is not a document', () => {
    for (const bad of ['jobs', 'jobs/a/b', 'jobs//a', 'jobs/..', '']) expect(() => rest.name(bad)).toThrow('Not a document path');
  });

  it('counts billed reads and writes per request', async () => {
    ops.length = 0;
    await rest.get('cas/one');
    await rest.runQuery({ collection: 'things', where: [['owner', '==', 'ann']] });
    await rest.runQuery({ collection: 'things', where: [['owner', '==', 'nobody']] });
    await rest.count({ collection: 'things' });
    await rest.batch().set('ops/a', { x: 1 }).set('ops/b', { x: 1 }).commit();
    expect(ops).toEqual([
      { kind: 'read', documents: 1 },
      { kind: 'read', documents: 4 },
      { kind: 'read', documents: 1 }, // an empty query bills one read
      { kind: 'read', documents: 1 },
      { kind: 'write', writes: 2 },
    ]);
  });
});

describe('FirestoreRest through an unreliable network (a proxy to the emulator that fails on purpose)', () => {
  let proxy: http.Server;
  let failNext = 0;
  let forwarded: string[] = [];
  let client: FirestoreRest;

  beforeAll(async () => {
    const [emuHost, emuPort] = host.split(':') as [string, string];
    proxy = http.createServer((req, res) => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 503, message: 'try again', status: 'UNAVAILABLE' } }));
        return;
      }
      forwarded.push(req.url ?? '');
      const upstream = http.request({ host: emuHost, port: Number(emuPort), path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    client = new FirestoreRest({ projectId: PROJECT, emulatorHost: `127.0.0.1:${(proxy.address() as AddressInfo).port}` });
  });

  afterAll(async () => {
    client?.close();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  it('retries reads on UNAVAILABLE, and gives up with the status after four attempts', async () => {
    await rest.set('flaky/a', { ok: true });
    failNext = 2;
    expect(await client.get('flaky/a')).toEqual({ ok: true });
    failNext = 4;
    await expect(client.get('flaky/a')).rejects.toMatchObject({ status: 'UNAVAILABLE', code: 14 });
    failNext = 0;
  });

  it('does not repeat a plain commit (it may have landed), but reruns a whole transaction', async () => {
    forwarded = [];
    failNext = 1;
    await expect(client.set('flaky/b', { n: 1 })).rejects.toMatchObject({ status: 'UNAVAILABLE' });
    expect(forwarded).toEqual([]);
    // beginTransaction fails once (retried in place), then the transaction runs.
    failNext = 1;
    await client.runTransaction(async (tx) => {
      const a = await tx.get<{ ok: boolean }>('flaky/a');
      tx.set('flaky/b', { copied: a?.ok ?? false });
    });
    expect((await official.doc('flaky/b').get()).data()).toEqual({ copied: true });
  });
});
