import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const file = path.join(__dirname, '..', '..', 'openapi.yaml');
const apiHandler = readFileSync(path.join(__dirname, '..', '..', 'functions', 'src', 'http', 'api-handler.ts'), 'utf8');

/** The routes the router serves, read from its route table: method and path with {params}. */
function routesInCode(): string[] {
  const routes: string[] = [];
  for (const m of apiHandler.matchAll(/method: '([A-Z]+)',\s*pattern: \/\^(.+?)\$\//g)) {
    const p = (m[2] as string).replace(/\\\//g, '/').replace(/\(\[\^\/:\]\+\)/g, '{id}');
    routes.push(`${m[1]} ${p}`);
  }
  return routes.sort();
}

describe('openapi.yaml', () => {
  it('is OpenAPI 3.1 YAML that describes exactly the routes the API serves', () => {
    // PyYAML parses it (python3 is on every machine here); no YAML package is installed for Node.
    const json = execFileSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', file], { encoding: 'utf8' });
    const doc = JSON.parse(json) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) =>
        Object.keys(ops)
          .filter((k) => ['get', 'post', 'put', 'patch', 'delete'].includes(k))
          .map((k) => `${k.toUpperCase()} ${p.replace(/\{[A-Za-z]+\}/g, '{id}')}`),
      )
      .sort();
    const served = routesInCode();
    expect(served.length).toBeGreaterThanOrEqual(6);
    expect(documented).toEqual(served);
  });
});
