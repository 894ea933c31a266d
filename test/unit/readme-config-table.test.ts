import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../functions/src/config';

describe('the README configuration table', () => {
  const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
  const rows = new Set([...readme.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]));

  it('lists every variable the code reads, and nothing it does not', () => {
    expect([...CONFIG_VARIABLES].filter((v) => !rows.has(v))).toEqual([]);
    expect([...rows].filter((v) => !CONFIG_VARIABLES.includes(v as string))).toEqual([]);
  });
});
