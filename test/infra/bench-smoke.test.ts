/**
 * The benchmarks' code paths run (tiny sizes, no timing assertions), so `npm run bench` cannot rot.
 * The figures themselves live in bench/results.md.
 */
import { describe, expect, inject, it } from 'vitest';
import { runCopyBench } from '../../bench/copy-bench';
import { runKeySetBench } from '../../bench/key-set-bench';
import { runPollingBench, simulate, POLICIES } from '../../bench/polling-bench';
import { runUploadBench } from '../../bench/upload-bench';
import { runApiLoadBench } from '../../bench/api-load-bench';
import { runThroughputBench, runWideExportBench } from '../../bench/pipeline-scale-bench';
import { runSweepScaleBench } from '../../bench/sweep-scale-bench';
import { runManifestBench } from '../../bench/manifest-bench';

describe('benchmarks (smoke)', () => {
  it('copy, upload, download, buffering and ranged legs each run and produce a row', async () => {
    const rows = await runCopyBench({ sizesMiB: [2], partsFromMiB: 0, partCounts: [2], naiveUpToMiB: 2, repeats: 1, log: () => undefined });
    expect(rows.map((r) => r.bench)).toEqual([...Array(5).fill('1 copy throughput'), '2 memory', '3 parallel ranges', '3 parallel ranges']);
    for (const r of rows) expect(Number.isFinite(r.ratio)).toBe(true);
    // The CPU row counts the servers' time too: a copy moves the bytes through both of them.
    const cpu = rows.find((r) => r.name.startsWith("the copy's CPU time"));
    expect(Number(/archive server and stand-in ([\d.]+) s/.exec(cpu?.name ?? '')?.[1])).toBeGreaterThan(0);
  }, 180_000); // about twenty leg processes, each a fresh Node

  it('the key-set comparison verifies a token through both key sets in fresh processes', async () => {
    const rows = await runKeySetBench({ repeats: 1, log: () => undefined });
    expect(rows).toHaveLength(1);
    expect(Number.isFinite(rows[0]?.ratio)).toBe(true);
  });

  it('the manifest benchmark lists a small sparse archive (and one forced to Zip64 by its entry count) through the stand-in and counts the bytes served', async () => {
    const rows = await runManifestBench({ cases: [{ mib: 4, entries: 20, judged: true }, { mib: 2, entries: 0xffff, judged: false }], log: () => undefined });
    expect(rows.map((r) => r.bench)).toEqual(['12 manifest reads', '12 manifest reads']);
    expect(rows[1]?.name).toMatch(/Zip64/);
    for (const r of rows) expect(Number.isFinite(r.ratio)).toBe(true);
  }, 120_000);

  it('polling simulation counts calls and notice delay', () => {
    expect(simulate(3600, POLICIES['fixed 5 min'])).toEqual({ calls: 12, noticeDelaySeconds: 0 });
    expect(simulate(100, POLICIES['fixed 1 min'])).toEqual({ calls: 2, noticeDelaySeconds: 20 });
    expect(runPollingBench().filter((r) => r.pass === false)).toEqual([]);
  });

  it('the hostile-upload benchmark times GETs beside 8 MB bodies and produces a row', async () => {
    const rows = await runUploadBench({ gets: 2, log: () => undefined, firestoreEmulatorHost: inject('firestoreEmulatorHost') });
    expect(rows.map((r) => r.bench)).toEqual(['7 hostile uploads']);
    expect(Number.isFinite(rows[0]?.ratio)).toBe(true);
  }, 120_000); // emulator work that takes minutes, not seconds, on a busy machine

  it('the sweep/schedule scale benchmark seeds two sizes and counts one tick of each at both', async () => {
    const rows = await runSweepScaleBench({ sizes: [60, 120], log: () => undefined, firestoreEmulatorHost: inject('firestoreEmulatorHost') });
    expect(rows.map((r) => r.bench)).toEqual(Array(6).fill('8 sweep/schedule scale'));
    for (const r of rows) expect(Number.isFinite(r.ratio)).toBe(true);
  }, 120_000); // emulator work that takes minutes, not seconds, on a busy machine

  it('the API load benchmark drives GETs and POSTs from autocannon in a second process beside hello-world', async () => {
    const rows = await runApiLoadBench({ connections: 2, seconds: 1, exports: 12, posts: 3, log: () => undefined, firestoreEmulatorHost: inject('firestoreEmulatorHost') });
    expect(rows.map((r) => r.bench)).toEqual(Array(3).fill('11 API under load'));
    // On a busy machine a one-second GET run may see no answer: the row says so.
    for (const r of rows) expect(r.value).toMatch(/ ms \/ | no answer within the run/);
  }, 180_000); // eight load-tool processes, each a fresh Node

  it('the wide-export benchmark runs a 3-group export, its one-group baseline and 3 one-group exports', async () => {
    const rows = await runWideExportBench({ groups: 3, log: () => undefined, firestoreEmulatorHost: inject('firestoreEmulatorHost') });
    expect(rows.map((r) => r.bench)).toEqual(Array(4).fill('9 wide exports'));
    for (const r of rows) expect(Number.isFinite(r.ratio)).toBe(true);
  }, 120_000); // emulator work that takes minutes, not seconds, on a busy machine

  it('the throughput benchmark runs two small batches of one-group exports to completion', async () => {
    const rows = await runThroughputBench({ counts: [1, 2], log: () => undefined, firestoreEmulatorHost: inject('firestoreEmulatorHost') });
    expect(rows.map((r) => r.bench)).toEqual(['10 throughput', '10 throughput']);
    for (const r of rows) expect(Number.isFinite(r.ratio)).toBe(true);
  }, 120_000); // emulator work that takes minutes, not seconds, on a busy machine
});
