/**
 * The deployed source carries functions/package-lock.json, so Cloud Functions' `npm ci` installs
 * exactly what the tests ran on: the file is what scripts/functions-lockfile.ts derives from the
 * workspace lock, every dependency of every shipped package resolves to the same version and
 * integrity as in the workspace, and both packagings (deploy.sh, Terraform's archive) include it.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { deriveFunctionsLock, edges, FUNCTIONS_LOCK, renderLockfile, resolveFrom, ROOT_LOCK, type Lockfile } from '../../scripts/functions-lockfile';
import { INFRA_DIR } from './terraform-files';

const run = promisify(execFile);
const REPO = path.join(__dirname, '..', '..');
/** An archive_file exclude pattern (`*` within a name) as a regular expression. */
const glob = (pattern: string): RegExp => new RegExp('^' + pattern.replace(/[.+?^$()|[\]{}\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '$');
const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(file, 'utf8')) as T;

/** name@version#integrity of what `name` resolves to from `from`, in one lock's tree. */
function pinned(lock: Lockfile, from: string, name: string): string | undefined {
  const at = resolveFrom(lock.packages, from, name);
  const entry = at === undefined ? undefined : lock.packages[at];
  return entry && `${name}@${entry.version}#${entry.integrity}`;
}

/** Every dependency edge reachable from the package at `start`, each as `path > name = pin`. */
function resolvedEdges(lock: Lockfile, start: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const walk = (at: string, trail: string) => {
    for (const { name, kind } of edges(lock.packages[at] ?? {})) {
      const key = `${trail} > ${name}`;
      if (out.has(key) || trail.split(' > ').includes(name)) continue; // a cycle: seen on this path already
      const pin = pinned(lock, at, name);
      if (pin === undefined && kind !== 'prod') continue; // an optional package for another platform
      out.set(key, pin);
      const next = resolveFrom(lock.packages, at, name);
      if (next !== undefined) walk(next, key);
    }
  };
  walk(start, 'functions');
  return out;
}

describe('functions/package-lock.json', () => {
  it('is what scripts/functions-lockfile.ts derives from the workspace lock (regenerate: npm run lock:functions)', async () => {
    const derived = renderLockfile(deriveFunctionsLock(await readJson<Lockfile>(ROOT_LOCK)));
    expect(await readFile(FUNCTIONS_LOCK, 'utf8')).toBe(derived);
  });

  it('pins every production dependency, at any depth, to the version and integrity the workspace installs', async () => {
    const [root, shipped] = await Promise.all([readJson<Lockfile>(ROOT_LOCK), readJson<Lockfile>(FUNCTIONS_LOCK)]);
    const inWorkspace = resolvedEdges(root, 'functions');
    const inShipped = resolvedEdges(shipped, '');
    expect(inWorkspace.size).toBeGreaterThan(100);
    expect([...inWorkspace.values()].filter((pin) => pin === undefined)).toEqual([]);
    expect(Object.fromEntries(inShipped)).toEqual(Object.fromEntries(inWorkspace));
    // Nothing else: every shipped package is one of those, and none is marked dev (npm ci --omit=dev would skip it).
    const used = new Set(inWorkspace.values());
    for (const [location, entry] of Object.entries(shipped.packages)) {
      if (location === '') continue;
      expect(used.has(`${location.slice(location.lastIndexOf('node_modules/') + 13)}@${entry.version}#${entry.integrity}`), location).toBe(true);
      expect(entry.dev, location).toBeUndefined();
      expect(entry.integrity, location).toMatch(/^sha512-/);
    }
  });

  it("declares the functions package's own dependencies, as npm ci requires of a lock", async () => {
    const [pkg, shipped] = await Promise.all([readJson<{ name: string; dependencies: Record<string, string> }>(path.join(REPO, 'functions', 'package.json')), readJson<Lockfile>(FUNCTIONS_LOCK)]);
    expect(shipped.name).toBe(pkg.name);
    expect(shipped.packages['']?.dependencies).toEqual(pkg.dependencies);
    expect(shipped.packages['']?.devDependencies).toBeUndefined();
  });

  it('refuses a workspace lock where a package the functions need is missing', () => {
    const broken: Lockfile = { name: 'x', lockfileVersion: 3, packages: { '': {}, functions: { name: 'f', dependencies: { 'not-there': '1' } } } };
    expect(() => deriveFunctionsLock(broken)).toThrow(/not-there/);
  });
});

describe('the deployed source carries the lockfile', () => {
  it('scripts/deploy.sh copies it into the staged source', async () => {
    const script = await readFile(path.join(REPO, 'scripts', 'deploy.sh'), 'utf8');
    expect(script).toMatch(/cp [^\n]*"\$REPO\/functions\/package-lock\.json"[^\n]* "\$stage\/"/);
  });

  it("and deploy.sh's staging, run for real, holds package.json, the lock, the entry point and lib/", async () => {
    // The staging lines of deploy.sh, run against a scratch copy of their inputs.
    const script = await readFile(path.join(REPO, 'scripts', 'deploy.sh'), 'utf8');
    const staging = script.split('\n').filter((l) => /^(stage=|cp )/.test(l) || /^if \[\[ -z "\$DRY_RUN" \]\]; then cp -R/.test(l));
    expect(staging.length).toBeGreaterThanOrEqual(3);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'deploy-stage-'));
    try {
      // A scratch repo: the functions package's shipped files, and a lib/ as the build would leave it
      // (a fresh clone has not built one).
      const repo = path.join(dir, 'repo');
      await mkdir(path.join(repo, 'functions', 'lib'), { recursive: true });
      for (const f of ['package.json', 'package-lock.json', 'index.cjs']) await copyFile(path.join(REPO, 'functions', f), path.join(repo, 'functions', f));
      await writeFile(path.join(repo, 'functions', 'lib', 'index.js'), '');
      await writeFile(path.join(dir, 'stage.sh'), ['set -euo pipefail', `REPO=${JSON.stringify(repo)}`, 'DRY_RUN=', ...staging, 'cd "$stage" && find . -maxdepth 1 | sort && rm -rf "$stage"'].join('\n'));
      const { stdout } = await run('bash', [path.join(dir, 'stage.sh')]);
      expect(stdout.split('\n').filter(Boolean)).toEqual(expect.arrayContaining(['./package.json', './package-lock.json', './index.cjs', './lib']));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("Terraform's source archive takes the whole functions folder but node_modules, src and build files, so the lock is in it", async () => {
    const storage = await readFile(path.join(INFRA_DIR, 'storage.tf'), 'utf8');
    const excludes = [...(/excludes\s*=\s*\[([^\]]*)\]/.exec(storage)?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    expect(excludes).toContain('node_modules');
    for (const shipped of ['package.json', 'package-lock.json', 'index.cjs', 'lib']) {
      expect(excludes.some((pattern) => glob(pattern).test(shipped)), `${shipped} is excluded`).toBe(false);
    }
  });
});
