/**
 * Part of benchmark 5: why the functions keep their own cached key set
 * (functions/src/adapters/remote-key-set.ts) rather than jose's public `createRemoteJWKSet`. Each
 * variant runs in a fresh process, as a cold start runs it: load what verifies a token, fetch the
 * signing keys from a local JWKS server, verify one RS256 token. Ours loads jose's subpath
 * exports and fetches over node:http; jose's comes from its root entry (every JOSE feature) and
 * builds a WHATWG `Headers`, which makes Node load its fetch implementation.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import ts from 'typescript';
import type { BenchRow, Log } from './bench-types';

const repo = path.resolve(__dirname, '..');

/**
 * Our key set compiled to CommonJS as tsc compiles it for functions/lib, so the benchmark needs no
 * build. Written under node_modules/.cache, from where its jose imports resolve as the functions' do.
 */
function compiledKeySet(): string {
  const dir = path.join(repo, 'node_modules', '.cache', 'key-set-bench');
  const file = path.join(dir, 'remote-key-set.js');
  const source = readFileSync(path.join(repo, 'functions', 'src', 'adapters', 'remote-key-set.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, outputText);
  return file;
}

/** The child's program: `load` returns a key set with a warm(), verified against with jose's jwtVerify. */
const program = (load: string, token: string) => `
  const c0 = process.cpuUsage(); const w0 = performance.now();
  const { keys, jwtVerify } = (() => { ${load} })();
  keys.warmUp().then(() => jwtVerify(${JSON.stringify(token)}, keys)).then(() => {
    const c = process.cpuUsage(c0);
    process.stdout.write(JSON.stringify({ cpuMs: (c.user + c.system) / 1000, ms: performance.now() - w0 }));
  });`;

const VARIANTS = {
  ours: (url: string, keySetFile: string) => `
    const { createRemoteKeySet } = require(${JSON.stringify(keySetFile)});
    const keys = createRemoteKeySet(new URL(${JSON.stringify(url)}));
    keys.warmUp = keys.warm;
    return { keys, jwtVerify: require('jose/jwt/verify').jwtVerify };`,
  jose: (url: string) => `
    const { createRemoteJWKSet, jwtVerify } = require('jose');
    const keys = createRemoteJWKSet(new URL(${JSON.stringify(url)}));
    keys.warmUp = keys.reload;
    return { keys, jwtVerify };`,
};

function runChild(source: string): Promise<{ cpuMs: number; ms: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', source], { cwd: repo }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout) as { cpuMs: number; ms: number })));
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function runKeySetBench(opts: { repeats: number; log: Log }): Promise<BenchRow[]> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const server = http.createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/certs`;
    const keySetFile = compiledKeySet();
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('10m').sign(privateKey);
    const results = { ours: [] as Array<{ cpuMs: number; ms: number }>, jose: [] as Array<{ cpuMs: number; ms: number }> };
    // Interleaved, and more repeats than the cold starts: the difference is tens of milliseconds.
    for (let i = 0; i < opts.repeats; i++) {
      for (const name of ['ours', 'jose'] as const) results[name].push(await runChild(program(VARIANTS[name](url, keySetFile), token)));
    }
    const cpu = (name: keyof typeof results) => median(results[name].map((r) => r.cpuMs));
    const wall = (name: keyof typeof results) => median(results[name].map((r) => r.ms));
    opts.log(`  key set, ours: CPU ${results.ours.map((r) => r.cpuMs.toFixed(0)).join(', ')} ms; jose's: CPU ${results.jose.map((r) => r.cpuMs.toFixed(0)).join(', ')} ms`);
    return [
      {
        bench: '5 cold start',
        name: `token check in a fresh process (load, fetch the keys, verify one token): our key set over jose's subpaths, CPU time (wall ${wall('ours').toFixed(0)} ms against ${wall('jose').toFixed(0)} ms)`,
        value: `${cpu('ours').toFixed(0)} ms`,
        baseline: `jose's createRemoteJWKSet ${cpu('jose').toFixed(0)} ms`,
        ratio: cpu('ours') / cpu('jose'),
        goal: '(why we keep our own)',
      },
    ];
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
