/**
 * functions/src/jose-subpaths.d.ts declares jose's subpath exports with the types of jose's root
 * entry. TypeScript cannot see whether a subpath really exports those names, so this checks it
 * at run time, and that jose is pinned to exactly the version installed (a range would let a
 * release change what the subpaths hold under code that still compiles).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const FUNCTIONS = path.join(__dirname, '..', '..', 'functions');
const requireFromFunctions = createRequire(path.join(FUNCTIONS, 'package.json'));
const declarations = readFileSync(path.join(FUNCTIONS, 'src', 'jose-subpaths.d.ts'), 'utf8');

/** Each `declare module 'jose/…'` with the value names it exports (type-only exports left out). */
function declaredModules(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of declarations.matchAll(/declare module '(jose\/[^']+)' \{([\s\S]*?)\n\}/g)) {
    const body = m[2] ?? '';
    const names = [
      ...[...body.matchAll(/export \{([^}]+)\} from 'jose'/g)].flatMap((e) => (e[1] ?? '').split(',').map((n) => n.trim())),
      ...[...body.matchAll(/export import (\w+) = errors\.\w+;/g)].map((e) => e[1] as string),
    ];
    out.set(m[1] as string, names);
  }
  return out;
}

describe('jose subpath declarations', () => {
  it('each declared subpath exports, at run time, the very functions and classes of the root entry its types come from', () => {
    const modules = declaredModules();
    expect([...modules.keys()].sort()).toEqual(['jose/errors', 'jose/jwks/local', 'jose/jwt/verify']);
    const root = requireFromFunctions('jose') as Record<string, unknown> & { errors: Record<string, unknown> };
    for (const [subpath, names] of modules) {
      expect(names.length, subpath).toBeGreaterThan(0);
      const loaded = requireFromFunctions(subpath) as Record<string, unknown>;
      for (const name of names) {
        const expected = subpath === 'jose/errors' ? root.errors[name] : root[name];
        expect(typeof loaded[name], `${subpath} ${name}`).toBe('function');
        expect(loaded[name], `${subpath} ${name}`).toBe(expected);
      }
    }
  });

  it('the functions import only declared subpaths', () => {
    const declared = new Set(declaredModules().keys());
    const files = (readdirSync(path.join(FUNCTIONS, 'src'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    const sources = files.map((f) => readFileSync(path.join(FUNCTIONS, 'src', f), 'utf8'));
    const imported = sources.flatMap((s) => [...s.matchAll(/from '(jose\/[^']+)'/g)].map((m) => m[1] as string));
    expect(imported.length).toBeGreaterThan(0);
    for (const subpath of imported) expect(declared.has(subpath), subpath).toBe(true);
  });

  it('pins jose exactly, to the version installed', () => {
    const pkg = JSON.parse(readFileSync(path.join(FUNCTIONS, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const installed = (requireFromFunctions('jose/package.json') as { version: string }).version;
    expect(pkg.dependencies.jose).toBe(installed);
  });
});
