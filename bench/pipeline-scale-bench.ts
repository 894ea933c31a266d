/**
 * Benchmarks 9 and 10 (issue 17, items 3 and 4), through the whole local stack:
 * - wide exports: one export of every resource group (63 jobs, all ready at Google at once, so
 *   they end within about a second of each other), beside a one-group export: time to SUCCEEDED,
 *   how late the export's state follows its last job, and the store's transaction retries
 *   (counted on the wire of its own Firestore client);
 * - throughput: N one-group exports started together (one user each), exports completed per
 *   minute, beside the smallest N's run.
 */
import { Firestore } from '@google-cloud/firestore';
import { paths } from '../functions/src/adapters/firestore-paths';
import type { ExportRecord, Job } from '../functions/src/domain/model';
import { RESOURCE_GROUPS } from '../functions/src/domain/resource-groups';
import { startFirestoreEmulator } from '../local-stack/firestore-emulator';
import { startLocalStack, type LocalStack } from '../local-stack/local-stack';
import { api, authorizedUser, type ExportBody } from '../test/support/api-client';
import { inParallel, userGranted } from './bench-users';
import type { BenchRow, Log } from './bench-types';
import { countingFirestore, type FirestoreOpCounts } from './firestore-op-counter';

interface StackRun {
  stack: LocalStack;
  /** Moves the simulated Google side's clock forward (every job's readiness with it). */
  advanceGoogle(ms: number): void;
  /** A client of our own, for watching (not counted). */
  watcher: Firestore;
  counts: FirestoreOpCounts;
  stop(): Promise<void>;
}

async function stackWithCountedStore(projectId: string, host: string): Promise<StackRun> {
  // The Firestore client takes FIRESTORE_EMULATOR_HOST over its own `host` setting, and an earlier
  // section of the same run left it at that section's emulator, now stopped: point it here first.
  process.env.FIRESTORE_EMULATOR_HOST = host;
  const { db, counts } = countingFirestore(projectId, host);
  const watcher = new Firestore({ projectId, host, ssl: false });
  let shift = 0;
  const stack = await startLocalStack({
    googleNow: () => Date.now() + shift,
    projectId,
    firestoreEmulatorHost: host,
    jobDurationMs: 2000,
    archiveBytes: 20_000,
    pollInitialSeconds: 1,
    pollMaxSeconds: 1,
    logLevel: 'silent',
    // Many exports at once from one user (wide) or many users (throughput): no abuse limits in the way.
    env: { MAX_EXPORTS_PER_DAY: '100000', MAX_CONCURRENT_EXPORTS: '100000' },
    overrides: { firestore: db },
  });
  return {
    stack,
    advanceGoogle: (ms) => void (shift += ms),
    watcher,
    counts,
    stop: async () => {
      await stack.stop();
      await Promise.all([db.terminate(), watcher.terminate()]);
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface WideResult {
  groups: number;
  /** From every job being ready at Google at once to the export's SUCCEEDED being seen. */
  msToSucceeded: number;
  /** From the last job's end to the export's SUCCEEDED being seen. */
  lagMs: number;
  /** Spread of the jobs' end times. */
  spreadMs: number;
  /** The store's transactions, aborted calls and retried transactions after the release. */
  transactions: number;
  aborted: number;
  retries: number;
}

/** Google jobs of the export take this long by the simulated clock, until it is moved past them. */
const HELD_MS = 120_000;

/**
 * Starts one export per entry of `shapes` (the groups of each, one user each), waits until every
 * job waits on Google, makes them all ready in the same instant, and times until every export is
 * SUCCEEDED; checks each export's state is right and was written by its last job's transaction.
 */
async function releasedTogether(run: StackRun, prefix: string, shapes: string[][]): Promise<WideResult> {
  const { stack, watcher, counts } = run;
  const ids: string[] = [];
  await inParallel(shapes, 8, async (groups, i) => {
    const user = await userGranted(stack, `${prefix}-${i}`, groups);
    stack.portability.faults.jobDurationFor(user.googleUserId, HELD_MS);
    const started = await api<ExportBody>(stack, user.token, 'POST', '/v1/exports', {});
    if (started.status !== 202) throw new Error(`start answered ${started.status}: ${JSON.stringify(started.body)}`);
    ids[i] = started.body.exportId;
  });
  const jobCount = shapes.reduce((n, g) => n + g.length, 0);
  const jobsOf = async (): Promise<Job[]> => (await Promise.all(ids.map((id) => watcher.collection('jobs').where('exportId', '==', id).get()))).flatMap((q) => q.docs.map((d) => d.data() as Job));
  for (const deadline = Date.now() + 180_000; (await jobsOf()).filter((j) => j.state === 'WAITING').length < jobCount; await sleep(200)) {
    if (Date.now() > deadline) throw new Error(`the ${jobCount} jobs were not all WAITING after 180 s`);
  }
  const before = { ...counts };
  const t0 = Date.now();
  run.advanceGoogle(HELD_MS);
  const records = (): Promise<Array<ExportRecord | undefined>> => Promise.all(ids.map(async (id) => (await watcher.doc(paths.export(id)).get()).data() as ExportRecord | undefined));
  for (const deadline = Date.now() + 300_000; (await records()).some((r) => r?.state === 'RUNNING'); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`exports still RUNNING after 300 s`);
  }
  const seenAt = Date.now();
  const jobs = await jobsOf();
  const ends = jobs.map((j) => j.updatedAt);
  for (const record of await records()) {
    const own = jobs.filter((j) => j.exportId === record?.id);
    // Correct: SUCCEEDED only once every job has, and written by the transaction of the last one.
    if (record?.state !== 'SUCCEEDED' || own.some((j) => j.state !== 'SUCCEEDED')) throw new Error(`export ended ${record?.state} with jobs ${JSON.stringify(own.map((j) => [j.state, j.error]))}`);
    const last = Math.max(...own.map((j) => j.updatedAt));
    if (record.updatedAt !== last) throw new Error(`export state written at ${record.updatedAt}, its last job ended at ${last}`);
  }
  const last = Math.max(...ends);
  return {
    groups: jobCount,
    msToSucceeded: seenAt - t0,
    lagMs: seenAt - last,
    spreadMs: last - Math.min(...ends),
    transactions: counts.transactions - before.transactions,
    aborted: counts.aborted - before.aborted,
    retries: counts.retries - before.retries,
  };
}

export async function runWideExportBench(opts: { log: Log; firestoreEmulatorHost?: string; groups?: number }): Promise<BenchRow[]> {
  const emulator = opts.firestoreEmulatorHost ? undefined : await startFirestoreEmulator();
  const run = await stackWithCountedStore('demo-bench-wide', opts.firestoreEmulatorHost ?? emulator!.host);
  try {
    const all = RESOURCE_GROUPS.slice(0, opts.groups ?? RESOURCE_GROUPS.length);
    await releasedTogether(run, 'wide-warm', [['myactivity.search']]); // warm: keys, channels, code paths
    const one = await releasedTogether(run, 'wide-one', [['myactivity.search']]);
    const wide = await releasedTogether(run, 'wide-all', [[...all]]);
    // The same jobs, the same instant, as one-group exports of as many users: the work without a shared export.
    const apart = await releasedTogether(run, 'wide-apart', all.map((g) => [g]));
    opts.log(`  one group: ${JSON.stringify(one)}\n  ${wide.groups} groups: ${JSON.stringify(wide)}\n  ${apart.groups} one-group exports: ${JSON.stringify(apart)}`);
    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    return [
      {
        bench: '9 wide exports',
        name: `one export of ${wide.groups} groups, all ready at Google in the same instant (the jobs ended within ${s(wide.spreadMs)}): ready → SUCCEEDED seen (state correct, settled right after the last job's end)`,
        value: s(wide.msToSucceeded),
        baseline: `one group ${s(one.msToSucceeded)}`,
        ratio: wide.msToSucceeded / one.msToSucceeded,
        goal: '(no stall on the export document)',
      },
      {
        bench: '9 wide exports',
        name: `the same ${wide.groups} jobs in one export against ${apart.groups} one-group exports (ready in the same instant too; ended within ${s(apart.spreadMs)}): ready → all SUCCEEDED`,
        value: s(wide.msToSucceeded),
        baseline: `${apart.groups} one-group exports ${s(apart.msToSucceeded)}`,
        ratio: wide.msToSucceeded / apart.msToSucceeded,
        goal: '≤ 1.1 (the shared export document costs nothing)',
        pass: wide.msToSucceeded <= 1.1 * apart.msToSucceeded,
      },
      {
        bench: '9 wide exports',
        name: `${wide.groups} groups: last job's end → export SUCCEEDED seen (watched every 50 ms)`,
        value: s(wide.lagMs),
        baseline: `one group ${s(one.lagMs)}`,
        ratio: wide.lagMs / Math.max(1, one.lagMs),
        goal: '≤ 1 s (no stall)',
        pass: wide.lagMs <= 1000,
      },
      {
        bench: '9 wide exports',
        name: `${wide.groups} groups, from ready to SUCCEEDED: the store's read-write transactions / aborted calls / retried transactions`,
        value: `${wide.transactions} / ${wide.aborted} / ${wide.retries}`,
        baseline: `one group ${one.transactions} / ${one.aborted} / ${one.retries}; ${apart.groups} one-group exports ${apart.transactions} / ${apart.aborted} / ${apart.retries}`,
        ratio: wide.transactions / one.transactions,
        goal: `no retried transaction (${(wide.retries / wide.groups).toFixed(2)} per job)`,
        pass: wide.retries === 0,
      },
    ];
  } finally {
    await run.stop();
    await emulator?.stop();
  }
}

interface ThroughputResult {
  exports: number;
  perMinute: number;
  seconds: number;
  startSeconds: number;
  aborted: number;
  retries: number;
}

async function throughput(host: string, n: number, log: Log): Promise<ThroughputResult> {
  const run = await stackWithCountedStore(`demo-bench-throughput-${n}`, host);
  const { stack, watcher, counts } = run;
  try {
    // One user per export, each authorized beforehand (not timed): as many users start exports.
    const tokens: string[] = new Array<string>(n);
    await inParallel([...Array(n).keys()], 8, async (i) => {
      tokens[i] = (await authorizedUser(stack, `tput-${n}-${i}`, ['myactivity.search'])).token;
    });
    const before = { ...counts };
    const t0 = Date.now();
    await inParallel(tokens, 16, async (token) => {
      const res = await api(stack, token, 'POST', '/v1/exports', {});
      if (res.status !== 202) throw new Error(`start answered ${res.status}: ${JSON.stringify(res.body)}`);
    });
    const startSeconds = (Date.now() - t0) / 1000;
    const running = watcher.collection('exports').where('state', '==', 'RUNNING');
    for (const deadline = Date.now() + 60_000 + n * 1000; ; await sleep(250)) {
      const left = (await running.count().get()).data().count;
      if (left === 0) break;
      if (Date.now() > deadline) throw new Error(`${left} of ${n} exports still RUNNING`);
    }
    const seconds = (Date.now() - t0) / 1000;
    const succeeded = (await watcher.collection('exports').where('state', '==', 'SUCCEEDED').count().get()).data().count;
    if (succeeded !== n) throw new Error(`${succeeded} of ${n} exports SUCCEEDED`);
    const r = { exports: n, perMinute: (n / seconds) * 60, seconds, startSeconds, aborted: counts.aborted - before.aborted, retries: counts.retries - before.retries };
    log(`  ${n} exports: ${JSON.stringify(r)}`);
    return r;
  } finally {
    await run.stop();
  }
}

export async function runThroughputBench(opts: { counts: number[]; log: Log; firestoreEmulatorHost?: string }): Promise<BenchRow[]> {
  const emulator = opts.firestoreEmulatorHost ? undefined : await startFirestoreEmulator();
  const host = opts.firestoreEmulatorHost ?? emulator!.host;
  try {
    const results: ThroughputResult[] = [];
    for (const n of opts.counts) results.push(await throughput(host, n, opts.log));
    const base = results[0] as ThroughputResult;
    return results.map((r) => ({
      bench: '10 throughput',
      name: `${r.exports} one-group exports started at once (one user each): completed per minute (all in ${r.seconds.toFixed(0)} s; POSTs took ${r.startSeconds.toFixed(0)} s; ${r.aborted} aborted / ${r.retries} retried transactions)`,
      value: `${r.perMinute.toFixed(0)}/min`,
      baseline: `${base.exports} exports: ${base.perMinute.toFixed(0)}/min`,
      ratio: r.perMinute / base.perMinute,
      ...(r === base ? {} : { goal: '≥ 0.8', pass: r.perMinute / base.perMinute >= 0.8 }),
    }));
  } finally {
    await emulator?.stop();
  }
}
