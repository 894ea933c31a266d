/**
 * `npm run bench`: every benchmark of issue 6 in one go on the local stack, one table of figures
 * each beside its baseline from the same run, written to bench/results.md with the machine.
 *   --quick        tiny sizes, one repeat (the smoke test's mode; writes nothing unless --out)
 *   --full         adds the 4 GiB archive to the copy benchmarks
 *   --sizes=a,b    archive sizes in MiB (default 100,1024)
 *   --out=FILE     where to write the report (default bench/results.md; --quick: none)
 *   --only=a,b     run only these of copy, polling, cold-start, cost, uploads, sweep-scale, api-load,
 *                  wide-export, throughput, manifest (writes nothing unless --out)
 *   --repeats=N    cold starts of each function and baseline (default 5; --quick: 1)
 *   --scale=N      sweep-scale: the largest number of jobs and schedules seeded (default 10000;
 *                  100000 is the issue's top size, about 10 minutes of seeding here)
 *   --exports=a,b  throughput: how many one-group exports per run (default 100,300; the issue's
 *                  goal is stated for 100,1000)
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchRow } from './bench-types';
import { runColdStartBench } from './cold-start-bench';
import { runKeySetBench } from './key-set-bench';
import { runCopyBench } from './copy-bench';
import { costRows, measureExportCost, PRICES } from './cost-bench';
import { fmtDuration, pollingMatrix, POLICIES, runPollingBench } from './polling-bench';
import { runUploadBench } from './upload-bench';
import { runApiLoadBench } from './api-load-bench';
import { runThroughputBench, runWideExportBench } from './pipeline-scale-bench';
import { runSweepScaleBench } from './sweep-scale-bench';
import { MANIFEST_CASES, runManifestBench } from './manifest-bench';

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(`--${name}`);
const option = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${os.type()} ${os.release()}, ${new Date().toISOString()}`;
}

/** The 1-minute load average: the machine is shared, so each section says how busy it was. */
const load = (): string => os.loadavg()[0]?.toFixed(1) ?? '?';

/** 1,000 up to `top` by factors of 10 (and `top` itself). */
function scaleSizes(top: number): number[] {
  const sizes: number[] = [];
  for (let n = 1000; n < top; n *= 10) sizes.push(n);
  return [...sizes, top];
}

function table(rows: BenchRow[]): string {
  const lines = ['| benchmark | figure | value | baseline (same run) | ratio | goal | met |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const met = r.pass === undefined ? '' : r.pass ? 'yes' : '**no**';
    lines.push(`| ${r.bench} | ${r.name} | ${r.value} | ${r.baseline ?? ''} | ${r.ratio !== undefined ? r.ratio.toFixed(2) : ''} | ${r.goal ?? ''} | ${met} |`);
  }
  return lines.join('\n');
}

function pollingDetail(): string {
  const names = Object.keys(POLICIES);
  const lines = [`| job duration | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`];
  for (const { duration, outcomes } of pollingMatrix()) {
    lines.push(`| ${fmtDuration(duration)} | ${names.map((n) => `${outcomes[n].calls} calls, +${fmtDuration(outcomes[n].noticeDelaySeconds)}`).join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const quick = flag('quick');
  const sizes = option('sizes')?.split(',').map(Number) ?? (quick ? [8] : [100, 1024, ...(flag('full') ? [4096] : [])]);
  const only = option('only')?.split(',');
  const benches = ['copy', 'polling', 'cold-start', 'cost', 'uploads', 'sweep-scale', 'api-load', 'wide-export', 'throughput', 'manifest'];
  const unknown = only?.filter((b) => !benches.includes(b)) ?? [];
  if (unknown.length) throw new Error(`--only: unknown benchmark(s) ${unknown.join(', ')}; choose from ${benches.join(', ')}`);
  const runs = (bench: string): boolean => !only || only.includes(bench);
  // A partial run never overwrites the full report unless asked to.
  const out = option('out') ?? (quick || only ? undefined : path.join(__dirname, 'results.md'));
  const log = (line: string): void => console.error(line);
  const started = Date.now();
  const rows: BenchRow[] = [];
  const loads: string[] = [];
  /** Runs one section, noting the load average before and after it. */
  const section = async (name: string, fn: () => Promise<BenchRow[]> | BenchRow[]): Promise<void> => {
    const before = load();
    rows.push(...(await fn()));
    loads.push(`${name} ${before} → ${load()}`);
  };

  if (runs('copy')) {
    log('1–3 copy throughput, memory, parallel ranges');
    await section('copy', () => runCopyBench({ sizesMiB: sizes, partsFromMiB: quick ? 0 : 1024, partCounts: [2, 4], naiveUpToMiB: 1024, repeats: quick ? 1 : 3, log }));
  }
  if (runs('polling')) {
    log('4 polling cost');
    await section('polling', () => runPollingBench());
  }
  if (runs('cold-start')) {
    log('5 cold start (npm run build first)');
    execSync('npm run build', { cwd: path.resolve(__dirname, '..'), stdio: 'ignore' });
    await section('cold-start', () => runColdStartBench({ repeats: Number(option('repeats') ?? (quick ? 1 : 5)), log }));
    await section('key-set', () => runKeySetBench({ repeats: quick ? 1 : 15, log }));
  }
  if (runs('cost')) {
    log('6 cost per export');
    await section('cost', async () => costRows(await measureExportCost(log)));
  }
  if (runs('uploads')) {
    log('7 a GET beside hostile 8 MB uploads');
    await section('uploads', () => runUploadBench({ gets: quick ? 5 : 50, log }));
  }
  if (runs('sweep-scale')) {
    log('8 sweeper and scheduler against the size of the data');
    await section('sweep-scale', () => runSweepScaleBench({ sizes: quick ? [200, 400] : scaleSizes(Number(option('scale') ?? 10_000)), log }));
  }
  if (runs('api-load')) {
    log('11 the API under load (autocannon in a second process)');
    await section('api-load', () => runApiLoadBench(quick ? { connections: 4, seconds: 1, exports: 30, posts: 8, log } : { connections: 50, seconds: 10, exports: 1000, posts: 600, log }));
  }
  if (runs('wide-export')) {
    log('9 wide exports: every group in one export, ending together');
    await section('wide-export', () => runWideExportBench({ log, ...(quick ? { groups: 3 } : {}) }));
  }
  if (runs('throughput')) {
    log('10 throughput of the pipeline');
    await section('throughput', () => runThroughputBench({ counts: option('exports')?.split(',').map(Number) ?? (quick ? [2, 4] : [100, 300]), log }));
  }

  if (runs('manifest')) {
    log('12 bytes read to build an archive manifest (sparse 1 GiB and 4.5 GiB archives)');
    await section('manifest', () => runManifestBench({ cases: quick ? [{ mib: 8, entries: 20, judged: true }] : MANIFEST_CASES, log }));
  }

  const report = [
    '# Benchmark results',
    '',
    `Machine: ${machine()}. Command: \`npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}\` (${((Date.now() - started) / 1000).toFixed(0)} s).`,
    '',
    'Ratios compare figures measured in the same run; absolute times depend on this machine.',
    '',
    `Load average (1 min) before → after each section, on ${os.cpus().length} cores: ${loads.join('; ')}.`,
    '',
    table(rows),
    '',
    '## Polling: every policy (status calls, and delay from ready to noticed)',
    '',
    pollingDetail(),
    '',
    '## Prices assumed (USD list prices, free tiers ignored)',
    '',
    `Firestore document reads $${PRICES.firestoreReadPer100k} and writes $${PRICES.firestoreWritePer100k} per 100,000 (multi-region); Cloud Tasks $${PRICES.tasksOpPerMillion} per million operations (CreateTask and each delivery attempt); Cloud Functions $${PRICES.invocationPerMillion} per million invocations, compute time not included; Data Portability API calls: no published price.`,
    '',
  ].join('\n');
  console.log(table(rows));
  if (out) writeFileSync(out, report);
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s${out ? `; written to ${out}` : ''}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
