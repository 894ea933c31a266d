/**
 * Benchmark 5: process start to first response for each deployed function, served by the
 * Functions Framework from the compiled code (functions/lib) with an environment pointed at the
 * local stack, beside a hello-world function in the same framework. Each first request does real
 * work: the API lists a signed-in user's exports; the task functions verify an OIDC token and
 * look up a job that does not exist; the sweeper queries for overdue jobs.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLocalOidcIssuer } from '../local-stack/local-oidc-issuer';
import { freePort } from '../local-stack/net-utils';
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

/** Spawns one function and times spawn → the first answer to `first`. */
async function coldStart(target: string, source: string, env: Record<string, string>, first: FirstRequest): Promise<{ ms: number; status: number }> {
  const port = await freePort();
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
        return { ms: performance.now() - t0, status: res.status };
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
    ];
    const hello: number[] = [];
    const helloFirestore: number[] = [];
    const times = new Map<string, { ms: number[]; status: number }>();
    // Interleaved, so drift in the machine's load affects the baseline and the functions alike.
    for (let i = 0; i < opts.repeats; i++) {
      hello.push((await coldStart('hello', 'bench/hello-world', env, { method: 'GET', path: '/', headers: {} })).ms);
      helloFirestore.push((await coldStart('helloFirestore', 'bench/hello-firestore', env, { method: 'GET', path: '/', headers: {} })).ms);
      for (const { target, first } of targets) {
        const r = await coldStart(target, 'functions', env, first);
        const t = times.get(target) ?? { ms: [], status: r.status };
        t.ms.push(r.ms);
        times.set(target, t);
      }
    }
    const base = median(hello);
    const baseFirestore = median(helloFirestore);
    opts.log(`  hello-world: ${hello.map((m) => m.toFixed(0)).join(', ')} ms`);
    opts.log(`  hello-world + official Firestore client, one query: ${helloFirestore.map((m) => m.toFixed(0)).join(', ')} ms`);
    const rows: BenchRow[] = [
      {
        bench: '5 cold start',
        name: 'reference: hello-world + the official Firestore client and one query (what a function paid before our REST client)',
        value: `${baseFirestore.toFixed(0)} ms`,
        baseline: `hello-world ${base.toFixed(0)} ms`,
        ratio: baseFirestore / base,
        goal: '(reference)',
        pass: true,
      },
    ];
    return rows.concat(targets.map(({ target }) => {
      const t = times.get(target) as { ms: number[]; status: number };
      opts.log(`  ${target}: ${t.ms.map((m) => m.toFixed(0)).join(', ')} ms (first answer ${t.status})`);
      const ms = median(t.ms);
      return {
        bench: '5 cold start',
        name: `${target}: spawn → first answer (HTTP ${t.status})`,
        value: `${ms.toFixed(0)} ms`,
        baseline: `hello-world ${base.toFixed(0)} ms (reference ${baseFirestore.toFixed(0)} ms: ${(ms / baseFirestore).toFixed(2)}x)`,
        ratio: ms / base,
        goal: '≤ 1.5',
        pass: ms / base <= 1.5,
      };
    }));
  } finally {
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
    await stack.stop();
  }
}
