/**
 * Writes functions/package-lock.json, the lockfile the deployed source carries (`npx tsx
 * scripts/functions-lockfile.ts`, or `npm run lock:functions`). Cloud Functions installs with
 * `npm ci` when the source has a lockfile, so production gets exactly the versions the tests ran
 * on. It is derived from the workspace's package-lock.json alone, offline and deterministically:
 * the packages reachable from the functions package's dependencies, resolved as Node resolves them
 * in the workspace, moved from `functions/node_modules/…` and `node_modules/…` to the
 * `node_modules/…` of a standalone package, each with its version and integrity unchanged.
 * test/infra/functions-lockfile.test.ts checks that the committed file is this output and that
 * every dependency resolves to the same package in both trees.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const ROOT_LOCK = path.join(__dirname, '..', 'package-lock.json');
export const FUNCTIONS_LOCK = path.join(__dirname, '..', 'functions', 'package-lock.json');
/** Where the functions workspace sits in the root lockfile. */
const WORKSPACE = 'functions';

export interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  resolved?: string;
  link?: boolean;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [key: string]: unknown;
}

export interface Lockfile {
  name: string;
  version?: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockEntry>;
}

type EdgeKind = 'prod' | 'optional' | 'peer';

/** `node_modules/a/node_modules/b` -> `b`; `node_modules/@s/c` -> `@s/c`. */
export function packageName(location: string): string {
  const at = location.lastIndexOf('node_modules/');
  return location.slice(at + 'node_modules/'.length);
}

/** Where Node finds `name` when required from the package at `from`: its own node_modules, then each parent's. */
export function resolveFrom(packages: Record<string, LockEntry>, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    const entry = packages[candidate];
    if (entry) return entry.link && typeof entry.resolved === 'string' ? entry.resolved : candidate;
    if (dir === '') return undefined;
    // Up one package: strip the last `node_modules/<name>` (or the workspace folder itself).
    const at = dir.lastIndexOf('/node_modules/');
    dir = at >= 0 ? dir.slice(0, at) : '';
  }
}

/** The dependency edges of one package, as its lock entry records them. */
export function edges(entry: LockEntry): Array<{ name: string; kind: EdgeKind }> {
  const out: Array<{ name: string; kind: EdgeKind }> = [];
  for (const name of Object.keys(entry.dependencies ?? {})) out.push({ name, kind: 'prod' });
  for (const name of Object.keys(entry.optionalDependencies ?? {})) out.push({ name, kind: 'optional' });
  for (const name of Object.keys(entry.peerDependencies ?? {})) {
    if (!entry.peerDependenciesMeta?.[name]?.optional) out.push({ name, kind: 'peer' });
  }
  return out;
}

/** The workspace locations reachable from `start`, following only the edge kinds given. */
function reachable(packages: Record<string, LockEntry>, start: string, follow: ReadonlySet<EdgeKind>): Set<string> {
  const seen = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    const at = queue.shift() as string;
    for (const { name, kind } of edges(packages[at] ?? {})) {
      if (!follow.has(kind)) continue;
      const found = resolveFrom(packages, at, name);
      if (found === undefined) {
        if (kind === 'prod') throw new Error(`${at || 'the root'} depends on ${name}, which the workspace lock does not hold`);
        continue; // an optional dependency for another platform, or an optional peer
      }
      if (!seen.has(found)) {
        seen.add(found);
        queue.push(found);
      }
    }
  }
  seen.delete(start);
  return seen;
}

/** Workspace location -> location in the standalone functions package. */
function relocate(location: string): string {
  return location.startsWith(`${WORKSPACE}/node_modules/`) ? location.slice(WORKSPACE.length + 1) : location;
}

/** The standalone lockfile of the functions package, from the workspace's lockfile. */
export function deriveFunctionsLock(root: Lockfile): Lockfile {
  const packages = root.packages;
  const workspace = packages[WORKSPACE];
  if (!workspace) throw new Error(`The workspace lock has no "${WORKSPACE}" package`);
  const all = reachable(packages, WORKSPACE, new Set(['prod', 'optional', 'peer']));
  const required = reachable(packages, WORKSPACE, new Set(['prod', 'peer']));
  const notPeer = reachable(packages, WORKSPACE, new Set(['prod', 'optional']));
  const placed = new Map<string, string>();
  for (const location of all) {
    if (!location.startsWith('node_modules/') && !location.startsWith(`${WORKSPACE}/node_modules/`)) {
      throw new Error(`${location} is a link or another workspace: the functions package must not depend on one`);
    }
    const target = relocate(location);
    const other = placed.get(target);
    // functions/node_modules/x shadows node_modules/x; if both are needed they cannot share one place.
    if (other !== undefined) throw new Error(`${location} and ${other} would both go to ${target}: place the hoisted one under its dependent`);
    placed.set(target, location);
  }
  const out: Record<string, LockEntry> = {};
  const { dev: _dev, devOptional: _devOptional, optional: _optional, peer: _peer, ...own } = workspace;
  out[''] = own;
  for (const target of [...placed.keys()].sort()) {
    const location = placed.get(target) as string;
    // The workspace's dev/optional flags describe the workspace root's view; these are the functions' own.
    const { dev: _d, devOptional: _do, optional: _o, peer: _p, ...entry } = packages[location] as LockEntry;
    out[target] = { ...entry, ...(required.has(location) ? {} : { optional: true }), ...(notPeer.has(location) ? {} : { peer: true }) };
  }
  return { name: String(workspace.name), version: workspace.version, lockfileVersion: root.lockfileVersion, requires: true, packages: out };
}

/** The file's text: as npm writes lockfiles (two-space JSON, final newline). */
export function renderLockfile(lock: Lockfile): string {
  return `${JSON.stringify(lock, null, 2)}\n`;
}

if (require.main === module) {
  const root = JSON.parse(readFileSync(ROOT_LOCK, 'utf8')) as Lockfile;
  writeFileSync(FUNCTIONS_LOCK, renderLockfile(deriveFunctionsLock(root)));
  console.error(`wrote ${path.relative(process.cwd(), FUNCTIONS_LOCK)}`);
}
