/**
 * Benchmark 5: process start to first response for each deployed function, served by the
 * Functions Framework from the compiled code (functions/lib) with an environment pointed at the
 * local stack, beside two baselines in the same framework: hello-world, and hello-world with the
 * official Firestore client making one query (the client every function needs). The goal is
 * judged against the second: what our own code adds on top of the client. Each first request does
 * real work: the API lists a signed-in user's exports; the task functions verify an OIDC token
 * and look up a job that does not exist; the sweeper queries for overdue jobs; the schedule
 * function runs a tick (a query for due schedules).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLocalOidcIssuer } from '../local-stack/local-oidc-issuer';
import { onFreePort } from '../local-stack/net-utils';
import { startLocalStack } from '../local-stack/local-stack';
import type { BenchRow, Log } from './bench-types';

const root = path.resolve(__dirname, '..');
const FF_MAIN = path.join(root, 'node_modules/@google-cloud/functions-framework/build/src/main.js');

interface FirstRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

interface Start {
  /** Wall time, spawn → the first answer. */
  ms: number;
  /** CPU time (user + system) the process had used by then: on a loaded machine far steadier than wall time. */
  cpuMs: number;
  status: number;
}

/** utime + stime of a process from /proc (Linux); NaN elsewhere. Clock ticks are 10 ms on Linux. */
function cpuMsOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** Spawns one function and times spawn → the first answer to `first`; again on another port if its port was taken. */
async function coldStart(target: string, source: string, env: Record<string, string>, first: FirstRequest): Promise<Start> {
  // The port was free when picked; another process can take it before the child listens.
  return onFreePort((port) => coldStartOnce(target, source, env, first, port), { taken: (err) => /EADDRINUSE/.test(String(err)) });
}

async function coldStartOnce(target: string, source: string, env: Record<string, string>, first: FirstRequest, port: number): Promise<Start> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [FF_MAIN, `--target=${target}`, `--source=${source}`, `--port=${port}`], {
    cwd: root,
    // As Cloud Functions runs a function: the target named in FUNCTION_TARGET too.
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), NODE_ENV: 'production', FUNCTION_TARGET: target },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${target} exited ${child.exitCode}: ${stderr.slice(-400)}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}${first.path}`, { method: first.method, headers: first.headers, ...(first.body ? { body: first.body } : {}) });
        await res.arrayBuffer();
        const ms = performance.now() - t0;
        return { ms, cpuMs: cpuMsOf(child.pid), status: res.status };
      } catch (e) {
        if ((e as { cause?: { code?: string } }).cause?.code !== 'ECONNREFUSED') throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  } finally {
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runColdStartBench(opts: { repeats: number; log: Log }): Promise<BenchRow[]> {
  const stack = await startLocalStack({ projectId: 'demo-bench-cold-start', logLevel: 'silent' });
  // Our own OIDC issuer for the task functions' callers (the stack keeps its signing key to itself).
  const issuer = await createLocalOidcIssuer({ issuer: 'https://accounts.google.com' });
  const jwks = http.createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(issuer.jwks()));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  try {
    const env: Record<string, string> = {
      ...stack.env,
      TASKS_OIDC_ISSUER: issuer.issuer,
      TASKS_OIDC_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/`,
      METADATA_SERVER_DETECTION: 'none',
      LOG_LEVEL: 'info',
    };
    const taskToken = (aud: string) => issuer.sign({ aud, email: env.TASKS_SERVICE_ACCOUNT, email_verified: true, sub: '1000' }, 600);
    const userToken = await stack.idToken('bench-user');
    const task = async (aud: string, step: string): Promise<FirstRequest> => ({
      method: 'POST',
      path: '/',
      headers: { Authorization: `Bearer ${await taskToken(aud)}`, 'Content-Type': 'application/json', 'X-CloudTasks-TaskRetryCount': '0' },
      body: JSON.stringify({ jobId: '0'.repeat(20), step, seq: 1 }), // a well-formed id of no job: a real Firestore lookup
    });
    const targets: Array<{ target: string; first: FirstRequest }> = [
      { target: 'api', first: { method: 'GET', path: '/v1/exports', headers: { Authorization: `Bearer ${userToken}` } } },
      { target: 'checkArchiveJob', first: await task(env.CHECK_FUNCTION_URL, 'check') },
      { target: 'copyArchives', first: await task(env.COPY_FUNCTION_URL, 'copy') },
      { target: 'sweepJobs', first: { method: 'POST', path: '/', headers: { Authorization: `Bearer ${await taskToken(env.SWEEP_FUNCTION_URL)}` } } },
      { target: 'runSchedules', first: { method: 'POST', path: '/', headers: { Authorization: `Bearer ${await taskToken(env.SCHEDULE_FUNCTION_URL)}` } } },
    ];
    const hello: Start[] = [];
    const helloFirestore: Start[] = [];
    const times = new Map<string, Start[]>();
    // Interleaved, so drift in the machine's load affects the baselines and the functions alike.
    for (let i = 0; i < opts.repeats; i++) {
      hello.push(await coldStart('hello', 'bench/hello-world', env, { method: 'GET', path: '/', headers: {} }));
      helloFirestore.push(await coldStart('helloFirestore', 'bench/hello-firestore', env, { method: 'GET', path: '/', headers: {} }));
      for (const { target, first } of targets) times.set(target, [...(times.get(target) ?? []), await coldStart(target, 'functions', env, first)]);
    }
    const wall = (xs: Start[]) => median(xs.map((x) => x.ms));
    const cpu = (xs: Start[]) => median(xs.map((x) => x.cpuMs));
    const show = (name: string, xs: Start[]) => opts.log(`  ${name}: ${xs.map((x) => `${x.ms.toFixed(0)} (CPU ${x.cpuMs})`).join(', ')} ms`);
    show('hello-world', hello);
    show('hello-world + official Firestore client, one query', helloFirestore);
    const [base, baseCpu, baseFirestore, baseFirestoreCpu] = [wall(hello), cpu(hello), wall(helloFirestore), cpu(helloFirestore)];
    const baselines = `hello-world ${base.toFixed(0)} ms; hello-world + Firestore client and one query ${baseFirestore.toFixed(0)} ms (CPU ${baseFirestoreCpu} ms)`;
    const rows: BenchRow[] = [
      {
        bench: '5 cold start',
        name: `baseline: hello-world + the official Firestore client and one query, what any function on Firestore pays (CPU ${baseFirestoreCpu} ms against ${baseCpu} ms)`,
        value: `${baseFirestore.toFixed(0)} ms`,
        baseline: `hello-world ${base.toFixed(0)} ms`,
        ratio: baseFirestore / base,
        goal: '(the client’s own cost)',
      },
    ];
    return rows.concat(
      targets.map(({ target }) => {
        const t = times.get(target) as Start[];
        show(target, t);
        const [ms, cpuMs] = [wall(t), cpu(t)];
        return {
          bench: '5 cold start',
          name: `${target}: spawn → first answer (HTTP ${t[0]?.status}); our code adds ${(ms - baseFirestore).toFixed(0)} ms to the client (CPU ${cpuMs} ms: ${(cpuMs / baseFirestoreCpu).toFixed(2)}x the client's); ${(ms / base).toFixed(2)}x hello-world`,
          value: `${ms.toFixed(0)} ms`,
          baseline: baselines,
          ratio: ms / baseFirestore,
          goal: '≤ 1.2 (against the second baseline)',
          pass: ms / baseFirestore <= 1.2,
        };
      }),
    );
  } finally {
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
    await stack.stop();
  }
}
