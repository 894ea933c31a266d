/**
 * Benchmark 11 (issue 17, item 2): the API under load. autocannon in a process of its own
 * (bench/load-child.cjs) drives `connections` callers at once against the api function of the
 * local stack, and against a hello-world function served the same way (the same Functions
 * Framework, the same process; one that also reads one Firestore document, what any request on
 * Firestore pays; and one that does a first page's Firestore work with the bare client, what the
 * listing costs before any code of ours), one after the other: p50 and p99 latency and requests per second
 * of GET /v1/exports for a user with 1,000 exports (the first page, and a page 900 exports deep)
 * and of POST /v1/exports (each request a new export of one group). Task delivery is paused
 * while POSTs run, so the pipeline's own work does not share the API's process here.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import * as ff from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { paths } from '../functions/src/adapters/firestore-paths';
import { newJob } from '../functions/src/domain/job';
import type { ExportRecord } from '../functions/src/domain/model';
import { RESOURCE_GROUPS } from '../functions/src/domain/resource-groups';
import { startFirestoreEmulator } from '../local-stack/firestore-emulator';
import { startLocalStack } from '../local-stack/local-stack';
import { listenOnFreePort } from '../local-stack/net-utils';
import type { BenchRow, Log } from './bench-types';
import { inParallel, userGranted } from './bench-users';
import { runChild } from './copy-bench';

export interface ApiLoadOptions {
  connections: number;
  /** Seconds of each GET run. */
  seconds: number;
  /** Exports of the listing user (the deep page starts 90 % of the way down). */
  exports: number;
  /** POSTs sent (each a new one-group export). */
  posts: number;
  log: Log;
  firestoreEmulatorHost?: string;
}

interface LoadResult {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  rps: number;
  sent: number;
  s2xx: number;
  s4xx: number;
  s5xx: number;
  errors: number;
  timeouts: number;
}

interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

async function load(url: string, connections: number, requests: LoadRequest[], run: { seconds?: number; amount?: number }): Promise<LoadResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-load-'));
  const file = path.join(dir, 'job.json');
  try {
    await writeFile(file, JSON.stringify({ url, connections, requests, ...(run.amount ? { amount: run.amount } : { duration: run.seconds }) }), { mode: 0o600 });
    return JSON.parse(await runChild('bench/load-child.cjs', [file])) as LoadResult;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let registered = 0;

/** hello-world in the same framework; with `work`, it first does that Firestore work per request. */
async function startHelloWorld(work?: () => Promise<unknown>): Promise<{ url: string; stop: () => Promise<void> }> {
  const name = `helloLoad_${++registered}`;
  ff.http(name, async (_req, res) => {
    if (work) await work();
    res.send('hello');
  });
  const server = getTestServer(name);
  const port = await listenOnFreePort(server);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((r) => { (server as http.Server).close(() => r()); (server as http.Server).closeAllConnections(); }),
  };
}

/** The user's finished exports, written straight to Firestore (one job each). */
async function seedExports(db: Firestore, userId: string, n: number): Promise<ExportRecord[]> {
  const base = Date.now() - n * 1000;
  // No ramp-up: the 500/50/5 throttle protects production databases, not the emulator.
  const writer = db.bulkWriter({ throttling: false });
  const records: ExportRecord[] = [];
  let failed: unknown;
  for (let i = 0; i < n; i++) {
    const id = `load${String(i).padStart(6, '0')}`;
    const at = base + i * 1000;
    const record: ExportRecord = { id, userId, state: 'SUCCEEDED', resources: ['myactivity.search'], createdAt: at, updatedAt: at + 500 };
    const job = { ...newJob({ id: `${id}j`, exportId: id, userId, resource: 'myactivity.search' }, at), state: 'SUCCEEDED' as const, seq: 6, updatedAt: at + 500 };
    const { nextCheckAt: _none, ...finished } = job;
    writer.set(db.doc(paths.export(id)), { ...record, jobIds: [job.id], endedJobs: { [job.id]: 'SUCCEEDED' } }).catch((e: unknown) => void (failed ??= e));
    writer.set(db.doc(paths.job(job.id)), finished).catch((e: unknown) => void (failed ??= e));
    records.push(record);
  }
  await writer.close();
  if (failed) throw failed;
  return records;
}

export async function runApiLoadBench(opts: ApiLoadOptions): Promise<BenchRow[]> {
  const projectId = 'demo-bench-api-load';
  const emulator = opts.firestoreEmulatorHost ? undefined : await startFirestoreEmulator();
  const host = opts.firestoreEmulatorHost ?? emulator!.host;
  const stack = await startLocalStack({
    projectId,
    firestoreEmulatorHost: host,
    logLevel: 'silent',
    env: { MAX_EXPORTS_PER_DAY: '100000', MAX_CONCURRENT_EXPORTS: '100000' },
  });
  const hello = await startHelloWorld();
  const seeder = new Firestore({ projectId, host, ssl: false });
  const helloDb = await startHelloWorld(() => seeder.doc('warm-up/probe').get());
  // The Firestore work of a first page with the bare client and none of our code: the page's
  // query (21 exports, newest first, as the store asks it) and one batched get of their jobs.
  const helloPage = await startHelloWorld(async () => {
    const page = await seeder.collection('exports').where('userId', '==', 'load-lister').orderBy('createdAt', 'desc').orderBy('id', 'desc').limit(21).get();
    const jobs = page.docs.slice(0, 20).flatMap((d) => (d.get('jobIds') as string[]).map((id) => seeder.doc(paths.job(id))));
    await seeder.getAll(...jobs);
  });
  try {
    const lister = await stack.idToken('load-lister');
    const records = await seedExports(seeder, 'load-lister', opts.exports);
    // Newest first: the deep page starts after the export 90 % of the way down the list.
    const after = records[Math.floor(records.length * 0.1)] as ExportRecord;
    const deepToken = Buffer.from(JSON.stringify([after.createdAt, after.id])).toString('base64url');
    const auth = { Authorization: `Bearer ${lister}` };
    // POSTs: 50 callers are 50 people, each granted every group; request i is caller i mod 50's
    // next group (no two alike), so the requests in flight at once are different people's, as on
    // a deployment with many users. (Sent in runs by few users, as earlier versions of this
    // benchmark did, every POST waits on the same person's admission ledger: the per-user limits
    // serialise one person's exports by design.)
    const c = opts.connections;
    const callers = Math.max(c, Math.ceil(opts.posts / RESOURCE_GROUPS.length));
    const users: string[] = [];
    await inParallel([...Array(callers).keys()], 4, async (i) => {
      users[i] = (await userGranted(stack, `load-poster-${i}`, [...RESOURCE_GROUPS])).token;
    });
    const posts: LoadRequest[] = Array.from({ length: opts.posts }, (_, i) => ({
      method: 'POST',
      path: '/v1/exports',
      headers: { Authorization: `Bearer ${users[i % callers] as string}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ resources: [RESOURCE_GROUPS[Math.floor(i / callers) % RESOURCE_GROUPS.length]] }),
    }));
    const run = { seconds: opts.seconds };
    // Warm both (keys fetched, channels open), then measure each beside hello-world.
    const warm = { amount: Math.min(50, opts.posts * 2) };
    await load(stack.apiUrl, 4, [{ method: 'GET', path: '/v1/exports', headers: auth }], warm);
    await load(hello.url, 4, [{ method: 'GET', path: '/' }], warm);
    await load(helloDb.url, 4, [{ method: 'GET', path: '/' }], warm);
    await load(helloPage.url, 4, [{ method: 'GET', path: '/' }], warm);
    const helloGet = await load(hello.url, c, [{ method: 'GET', path: '/' }], run);
    const helloRead = await load(helloDb.url, c, [{ method: 'GET', path: '/' }], run);
    const helloPageWork = await load(helloPage.url, c, [{ method: 'GET', path: '/' }], run);
    const first = await load(stack.apiUrl, c, [{ method: 'GET', path: '/v1/exports', headers: auth }], run);
    const deep = await load(stack.apiUrl, c, [{ method: 'GET', path: `/v1/exports?pageToken=${deepToken}`, headers: auth }], run);
    stack.tasks.pause();
    const helloPost = await load(hello.url, c, [{ method: 'POST', path: '/', headers: { 'Content-Type': 'application/json' }, body: '{"resources":["myactivity.search"]}' }], { amount: opts.posts });
    const post = await load(stack.apiUrl, c, posts, { amount: opts.posts });
    for (const [name, r] of Object.entries({ helloGet, helloRead, helloPageWork, first, deep, helloPost, post })) opts.log(`  ${name}: ${JSON.stringify(r)}`);
    const created = (await seeder.collection('exports').where('userId', '>=', 'load-poster-').where('userId', '<', 'load-poster.').count().get()).data().count;
    const ms = (x: number): string => `${x.toFixed(0)} ms`;
    const row = (name: string, r: LoadResult, base: LoadResult, note = ''): BenchRow => ({
      bench: '11 API under load',
      name: `${name}, ${c} callers: p50 / p99 (requests/s; sent, 2xx / 4xx / 5xx / errors${note})`,
      // Latencies are of the answers that came: none within the run is a failure, not 0 ms.
      value: r.s2xx + r.s4xx + r.s5xx === 0 ? `no answer within the run (${r.sent} sent)` : `${ms(r.p50)} / ${ms(r.p99)} (${r.rps.toFixed(1)}/s; ${r.sent}, ${r.s2xx} / ${r.s4xx} / ${r.s5xx} / ${r.errors + r.timeouts})`,
      baseline: `hello-world ${ms(base.p50)} / ${ms(base.p99)} (${base.rps.toFixed(0)}/s); hello-world + one Firestore read ${ms(helloRead.p50)} / ${ms(helloRead.p99)} (${helloRead.rps.toFixed(0)}/s)${
        base === helloGet ? `; hello-world + the first page's Firestore work (bare client) ${ms(helloPageWork.p50)} / ${ms(helloPageWork.p99)} (${helloPageWork.rps.toFixed(1)}/s): ours ${(r.p99 / Math.max(1, helloPageWork.p99)).toFixed(2)}× its p99` : ''
      }`,
      ...(r.s2xx > 0 ? { ratio: r.p99 / Math.max(1, base.p99) } : {}),
      goal: 'p99 ≤ 3, no 5xx',
      pass: r.s2xx > 0 && r.p99 / Math.max(1, base.p99) <= 3 && r.s5xx === 0 && r.errors + r.timeouts === 0,
    });
    return [
      row(`GET /v1/exports, first page of 20 (user with ${opts.exports.toLocaleString('en-US')} exports), ${opts.seconds} s`, first, helloGet),
      row(`GET /v1/exports, a page ${Math.round(opts.exports * 0.9)} exports deep, ${opts.seconds} s`, deep, helloGet),
      row(`POST /v1/exports, ${opts.posts} new one-group exports`, post, helloPost, `; ${created} exports created`),
    ];
  } finally {
    await hello.stop();
    await helloDb.stop();
    await helloPage.stop();
    await stack.stop();
    await seeder.terminate();
    await emulator?.stop();
  }
}
