/**
 * Benchmark 8 (issue 17, item 1): what one sweepJobs tick and one runSchedules tick cost as the
 * data grows. One emulator project is grown to each size in turn (jobs and as many schedules,
 * mostly finished or not due), and at each size two ticks are timed and their billed Firestore
 * reads counted on the wire: one with the same 10 overdue jobs / due schedules at every size (the
 * goal: reads flat in the total), one with 1 % of them overdue / due (reads per overdue item).
 * Seeding goes through a client of its own, so only the ticks' own operations are counted.
 */
import { Firestore } from '@google-cloud/firestore';
import { FirestoreExportStore } from '../functions/src/adapters/firestore-export-store';
import { FirestoreScheduleStore } from '../functions/src/adapters/firestore-schedule-store';
import { paths } from '../functions/src/adapters/firestore-paths';
import { newJob } from '../functions/src/domain/job';
import type { Job, Schedule } from '../functions/src/domain/model';
import { newSchedule } from '../functions/src/domain/schedule';
import { createLogger } from '../functions/src/logging';
import { ScheduleService } from '../functions/src/pipeline/schedule-service';
import { Sweeper } from '../functions/src/pipeline/sweeper';
import { startFirestoreEmulator } from '../local-stack/firestore-emulator';
import type { BenchRow, Log } from './bench-types';
import { countingFirestore } from './firestore-op-counter';

export interface SweepScaleOptions {
  /** Jobs (and as many schedules) at each step, ascending; the first is the baseline. */
  sizes: number[];
  log: Log;
  firestoreEmulatorHost?: string;
}

/** Overdue jobs (and due schedules) in the equal-count measurement, at every size. */
const FIXED_OVERDUE = 10;
const GRACE_SECONDS = 60;
const HOUR = 3_600_000;

interface Tick {
  reads: number;
  writes: number;
  ms: number;
  found: number;
}

function job(id: string, now: number, kind: 'done' | 'waiting' | 'overdue'): Job {
  const j = newJob({ id, exportId: `e-${id}`, userId: `u-${id}`, resource: 'myactivity.search' }, now - 2 * HOUR);
  if (kind === 'done') {
    const { nextCheckAt: _gone, ...rest } = j;
    return { ...rest, state: 'SUCCEEDED', seq: 5 };
  }
  return { ...j, state: 'WAITING', seq: 3, archiveJobIds: [`a-${id}`], nextCheckAt: kind === 'waiting' ? now + HOUR : now - HOUR };
}

function schedule(id: string, now: number, kind: 'ended' | 'later' | 'due'): Schedule {
  const s = newSchedule({ id, userId: `u-${id}`, resources: ['myactivity.search'] }, now - 48 * HOUR);
  if (kind === 'ended') {
    const { nextRunAt: _gone, ...rest } = s;
    return { ...rest, state: 'ENDED', endReason: 'GRANT_EXPIRED', runCount: 3 };
  }
  return { ...s, runCount: 2, nextRunAt: kind === 'later' ? now + HOUR : now - 60_000 };
}

/** Writes `docs` through a BulkWriter of the seeding client (not counted); fails on the first refused write. */
async function seed(db: Firestore, docs: Array<{ path: string; data: object }>): Promise<void> {
  // No ramp-up: the 500/50/5 throttle protects production databases, not the emulator.
  const writer = db.bulkWriter({ throttling: false });
  let failed: unknown;
  for (const d of docs) writer.set(db.doc(d.path), d.data).catch((e: unknown) => void (failed ??= e));
  await writer.close();
  if (failed) throw failed;
}

export async function runSweepScaleBench(opts: SweepScaleOptions): Promise<BenchRow[]> {
  const projectId = 'demo-bench-sweep-scale';
  // 100,000 jobs and as many schedules do not fit the emulator's usual 512 MB heap (it failed past ~88,000 documents).
  const emulator = opts.firestoreEmulatorHost ? undefined : await startFirestoreEmulator({ heapMb: Math.max(...opts.sizes) > 10_000 ? 8192 : 512 });
  const host = opts.firestoreEmulatorHost ?? emulator!.host;
  process.env.FIRESTORE_EMULATOR_HOST = host;
  const seeder = new Firestore({ projectId, host, ssl: false, ignoreUndefinedProperties: true });
  const { db, counts } = countingFirestore(projectId, host);
  const now = Date.now();
  const logger = createLogger({ level: 'silent' });
  const store = new FirestoreExportStore(db);
  const schedules = new FirestoreScheduleStore(db);
  const sweeper = new Sweeper({ store, queue: { enqueue: async () => undefined }, policy: { initialSeconds: 300, maxSeconds: 3600 }, graceSeconds: GRACE_SECONDS, logger, now: () => now });
  const scheduler = new ScheduleService({
    schedules,
    store,
    queue: async () => ({ enqueue: async () => undefined }),
    runQueue: async () => ({ enqueueScheduleRun: async () => undefined }),
    logger,
    now: () => now,
  });
  const timed = async (tick: () => Promise<number>): Promise<Tick> => {
    const before = { ...counts };
    const t = performance.now();
    const found = await tick();
    return { ms: performance.now() - t, reads: counts.reads - before.reads, writes: counts.writes - before.writes, found };
  };
  const sweep = (): Promise<Tick> => timed(async () => (await sweeper.sweep()).requeued);
  const tick = (): Promise<Tick> => timed(async () => (await scheduler.tick()).enqueued);
  /** Ticks until `n` were handled (or a tick finds nothing), adding up what they cost. */
  const drained = async (one: () => Promise<Tick>, n: number): Promise<Tick> => {
    const total: Tick = { ms: 0, reads: 0, writes: 0, found: 0 };
    while (total.found < n) {
      const t = await one();
      if (t.found === 0) break;
      total.ms += t.ms;
      total.reads += t.reads;
      total.writes += t.writes;
      total.found += t.found;
    }
    return total;
  };

  const overdue = async (prefix: string, n: number): Promise<void> => {
    const docs: Array<{ path: string; data: object }> = [];
    for (let i = 0; i < n; i++) {
      docs.push({ path: paths.job(`${prefix}-${i}`), data: job(`${prefix}-${i}`, now, 'overdue') });
      docs.push({ path: paths.schedule(`${prefix}-${i}`), data: schedule(`${prefix}-${i}`, now, 'due') });
    }
    await seed(seeder, docs);
  };

  const results: Array<{ size: number; fixed: { sweep: Tick; tick: Tick }; pct: { sweep: Tick; tick: Tick } }> = [];
  try {
    // Warm: the counted client's channel open and both code paths run once.
    await overdue('warm', 2);
    await sweep();
    await tick();
    let background = 0;
    for (const size of opts.sizes) {
      const pct = Math.max(1, Math.round(size / 100));
      // Background: 80 % finished (no nextCheckAt), 20 % waiting for a later check; schedules
      // half ended, half due later. The overdue and due ones are written at each measurement.
      const want = size - FIXED_OVERDUE - pct;
      const t0 = Date.now();
      for (let from = background; from < want; from += 2000) {
        const to = Math.min(want, from + 2000);
        const docs: Array<{ path: string; data: object }> = [];
        for (let i = from; i < to; i++) {
          docs.push({ path: paths.job(`bg-${i}`), data: job(`bg-${i}`, now, i % 5 === 0 ? 'waiting' : 'done') });
          docs.push({ path: paths.schedule(`bg-${i}`), data: schedule(`bg-${i}`, now, i % 2 === 0 ? 'later' : 'ended') });
        }
        await seed(seeder, docs);
      }
      background = Math.max(background, want);
      opts.log(`  ${size} jobs and schedules seeded (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      // Each tick postpones what it found (the sweeper) or leases it (the scheduler), so what one
      // measurement made overdue is not overdue in the next.
      // The equal-count ticks three times (their time is the median), the 1 % ones once.
      const runs: Array<{ sweep: Tick; tick: Tick }> = [];
      for (let i = 0; i < 3; i++) {
        await overdue('fixed', FIXED_OVERDUE);
        runs.push({ sweep: await sweep(), tick: await tick() });
      }
      const median = (ts: Tick[]): Tick => [...ts].sort((x, y) => x.ms - y.ms)[1] as Tick;
      const fixed = { sweep: median(runs.map((r) => r.sweep)), tick: median(runs.map((r) => r.tick)) };
      await overdue('pct', pct);
      // One tick handles at most a batch (500): at 100,000 the 1 % takes two, counted together.
      const onePct = { sweep: await drained(sweep, pct), tick: await drained(tick, pct) };
      for (const [name, t, n] of [['fixed sweep', fixed.sweep, FIXED_OVERDUE], ['fixed tick', fixed.tick, FIXED_OVERDUE], ['1% sweep', onePct.sweep, pct], ['1% tick', onePct.tick, pct]] as const) {
        if (t.found !== n) throw new Error(`${size}: ${name} handled ${t.found}, expected ${n}`);
      }
      opts.log(`  ${size}: sweep ${FIXED_OVERDUE} overdue ${fixed.sweep.reads} reads ${fixed.sweep.ms.toFixed(0)} ms; tick ${fixed.tick.reads} reads ${fixed.tick.ms.toFixed(0)} ms; 1 %: sweep ${onePct.sweep.reads} reads ${onePct.sweep.ms.toFixed(0)} ms, tick ${onePct.tick.reads} reads ${onePct.tick.ms.toFixed(0)} ms`);
      results.push({ size, fixed, pct: { sweep: onePct.sweep, tick: onePct.tick } });
    }
  } finally {
    await Promise.all([seeder.terminate(), db.terminate()]);
    await emulator?.stop();
  }

  const rows: BenchRow[] = [];
  const base = results[0];
  if (!base) return rows;
  const n = (x: number): string => x.toLocaleString('en-US');
  for (const r of results.slice(1)) {
    for (const which of ['sweep', 'tick'] as const) {
      const fn = which === 'sweep' ? 'sweepJobs' : 'runSchedules';
      const item = which === 'sweep' ? 'overdue jobs' : 'due schedules';
      const [v, b] = [r.fixed[which], base.fixed[which]];
      const ratio = v.reads / b.reads;
      rows.push({
        bench: '8 sweep/schedule scale',
        name: `one ${fn} tick, ${n(r.size)} ${which === 'sweep' ? 'jobs' : 'schedules'}, ${FIXED_OVERDUE} ${item}: reads / writes (time)`,
        value: `${v.reads} / ${v.writes} (${v.ms.toFixed(0)} ms)`,
        baseline: `${n(base.size)}: ${b.reads} / ${b.writes} (${b.ms.toFixed(0)} ms; time ratio ${(v.ms / b.ms).toFixed(2)})`,
        ratio,
        goal: 'reads ≤ 1.1',
        pass: ratio <= 1.1,
      });
    }
  }
  for (const r of results) {
    for (const which of ['sweep', 'tick'] as const) {
      const fn = which === 'sweep' ? 'sweepJobs' : 'runSchedules';
      const count = Math.max(1, Math.round(r.size / 100));
      const [v, b] = [r.pct[which], base.pct[which]];
      const bCount = Math.max(1, Math.round(base.size / 100));
      const [per, perBase] = [v.reads / count, b.reads / bCount];
      rows.push({
        bench: '8 sweep/schedule scale',
        name: `one ${fn} tick, ${n(r.size)} ${which === 'sweep' ? 'jobs' : 'schedules'}, 1 % (${n(count)}) ${which === 'sweep' ? 'overdue' : 'due'}: reads per ${which === 'sweep' ? 'overdue job' : 'due schedule'} (reads, time)`,
        value: `${per.toFixed(2)} (${v.reads}, ${v.ms.toFixed(0)} ms: ${(v.ms / count).toFixed(1)} ms each)`,
        baseline: `${n(base.size)}: ${perBase.toFixed(2)} (${b.reads}, ${b.ms.toFixed(0)} ms: ${(b.ms / bCount).toFixed(1)} ms each)`,
        ratio: per / perBase,
        goal: r === base ? '' : 'grows with the overdue count only (≈ 1)',
        ...(r === base ? {} : { pass: per / perBase <= 1.1 }),
      });
    }
  }
  return rows;
}
