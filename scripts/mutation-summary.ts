/**
 * Writes bench/mutation-results.md from StrykerJS's JSON reports (reports/mutation/*.json, one per
 * `npm run mutate` run): per file, how many mutants the tests killed, which survived, which no test
 * reached, and the score. `npx tsx scripts/mutation-summary.ts [report.json …]`.
 * Runs and files that no report here covers keep their rows from the previous results file (the
 * reports are not committed: a run made in another worktree is merged through its rows).
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

type Status = 'Killed' | 'Survived' | 'NoCoverage' | 'Timeout' | 'Ignored' | 'CompileError' | 'RuntimeError' | 'Pending';

interface Mutant {
  mutatorName: string;
  replacement?: string;
  status: Status;
  location: { start: { line: number; column: number }; end: { line: number; column: number } };
}

interface Report {
  files: Record<string, { source?: string; mutants: Mutant[] }>;
}

const ROOT = path.join(__dirname, '..');
const mutantKey = (m: Mutant): string =>
  `${m.location.start.line}:${m.location.start.column}-${m.location.end.line}:${m.location.end.column}:${m.mutatorName}:${m.replacement ?? ''}`;
const OUT = path.join(ROOT, 'bench', 'mutation-results.md');

/**
 * A report made on another version of a file still counts for the code that has not changed: a
 * mutant whose lines are found, all of them and only once, in today's file moves with them (code
 * added or removed above shifts it); the others are of code that changed or is gone (a later run
 * over the current file has them).
 */
async function current(name: string, source: string | undefined, mutants: Mutant[]): Promise<Mutant[]> {
  const now = await readFile(path.join(ROOT, name), 'utf8').catch(() => undefined);
  if (source === undefined || now === undefined || now === source) return mutants;
  const before = source.split('\n');
  const today = now.split('\n');
  const linesOf = new Map<string, number[]>();
  today.forEach((line, i) => linesOf.set(line, [...(linesOf.get(line) ?? []), i + 1]));
  const moved: Mutant[] = [];
  for (const m of mutants) {
    const { start, end } = m.location;
    const span = before.slice(start.line - 1, end.line);
    const at = (linesOf.get(span[0] ?? '') ?? []).filter((n) => span.every((line, k) => today[n - 1 + k] === line));
    if (at.length !== 1) continue;
    const shift = (at[0] as number) - start.line;
    moved.push({ ...m, location: { start: { ...start, line: start.line + shift }, end: { ...end, line: end.line + shift } } });
  }
  return moved;
}

interface Counts {
  killed: number;
  survived: number;
  noCoverage: number;
  ignored: number;
  errors: number;
}

function count(mutants: Mutant[]): Counts {
  const c: Counts = { killed: 0, survived: 0, noCoverage: 0, ignored: 0, errors: 0 };
  for (const m of mutants) {
    if (m.status === 'Killed' || m.status === 'Timeout') c.killed++;
    else if (m.status === 'Survived') c.survived++;
    else if (m.status === 'NoCoverage') c.noCoverage++;
    else if (m.status === 'Ignored') c.ignored++;
    else c.errors++;
  }
  return c;
}

/** Stryker's mutation score: detected over all valid mutants (survivors and uncovered ones count against it). */
const score = (c: Counts): string => {
  const valid = c.killed + c.survived + c.noCoverage;
  return valid === 0 ? '–' : `${((100 * c.killed) / valid).toFixed(1)} %`;
};
const covered = (c: Counts): string => {
  const valid = c.killed + c.survived;
  return valid === 0 ? '–' : `${((100 * c.killed) / valid).toFixed(1)} %`;
};

interface Carried {
  runs: Map<string, string>;
  files: Map<string, { row: string; total: number; counts: Counts }>;
  survivors: Map<string, string[]>;
}

/** The previous results file's rows, by run and by file. */
async function earlierRows(): Promise<Carried> {
  const carried: Carried = { runs: new Map(), files: new Map(), survivors: new Map() };
  const text = await readFile(OUT, 'utf8').catch(() => '');
  let table = '';
  for (const line of text.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('|---')) {
      if (!line.startsWith('|')) table = '';
      continue;
    }
    const cells = line.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, ''));
    if (table === '') {
      table = cells[0] ?? '';
      continue;
    }
    const key = cells[0] ?? '';
    if (table === 'run') carried.runs.set(key.replace(/ \(earlier run\)$/, ''), line);
    if (table === 'file') {
      const [total, killed, survived, noCoverage, ignored] = cells.slice(1, 6).map(Number) as [number, number, number, number, number];
      carried.files.set(key, { row: line, total, counts: { killed, survived, noCoverage, ignored, errors: total - killed - survived - noCoverage - ignored } });
    }
    if (table === 'where') {
      const file = key.replace(/:\d+:\d+$/, '');
      carried.survivors.set(file, [...(carried.survivors.get(file) ?? []), line]);
    }
  }
  return carried;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dir = path.join(ROOT, 'reports', 'mutation');
  const files = args.length > 0 ? args : (await readdir(dir)).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f));
  const byFile = new Map<string, Mutant[]>();
  const runs: string[] = [];
  const earlier = await earlierRows();
  for (const f of files) {
    const report = JSON.parse(await readFile(f, 'utf8')) as Report;
    const mutants = Object.values(report.files).flatMap((x) => x.mutants);
    const c = count(mutants);
    earlier.runs.delete(path.basename(f, '.json'));
    runs.push(`| ${path.basename(f, '.json')} | ${Object.keys(report.files).length} | ${mutants.length} | ${score(c)} |`);
    // Runs over different lines of one file add up; the same mutant in two runs counts once (the later run's result).
    for (const [name, { source, mutants: ms }] of Object.entries(report.files)) {
      const key = path.relative(ROOT, path.resolve(ROOT, name));
      const merged = new Map((byFile.get(key) ?? []).map((m) => [mutantKey(m), m]));
      for (const m of await current(key, source, ms)) merged.set(mutantKey(m), m);
      byFile.set(key, [...merged.values()]);
    }
  }
  for (const name of byFile.keys()) earlier.files.delete(name);
  for (const [run, row] of earlier.runs) runs.push(row.includes('(earlier run)') ? row : row.replace(`| ${run} |`, `| ${run} (earlier run) |`));
  const countsOf = new Map<string, { total: number; counts: Counts }>([
    ...[...byFile].map(([name, ms]) => [name, { total: ms.length, counts: count(ms) }] as const),
    ...[...earlier.files].map(([name, f]) => [name, f] as const),
  ]);
  const names = [...countsOf.keys()].sort();
  const rows: string[] = [];
  const folders = new Map<string, Counts>();
  const add = (a: Counts, b: Counts): Counts => ({ killed: a.killed + b.killed, survived: a.survived + b.survived, noCoverage: a.noCoverage + b.noCoverage, ignored: a.ignored + b.ignored, errors: a.errors + b.errors });
  const zero: Counts = { killed: 0, survived: 0, noCoverage: 0, ignored: 0, errors: 0 };
  const total = (c: Counts): number => c.killed + c.survived + c.noCoverage + c.ignored + c.errors;
  for (const name of names) {
    const { counts: c, total: n } = countsOf.get(name)!;
    rows.push(earlier.files.get(name)?.row ?? `| ${name} | ${n} | ${c.killed} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${score(c)} | ${covered(c)} |`);
    const folder = path.dirname(name);
    folders.set(folder, add(folders.get(folder) ?? zero, c));
  }
  const all = [...folders.values()].reduce(add, zero);
  const folderRows = [...folders].map(([f, c]) => `| ${f}/ | ${total(c)} | ${c.killed} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${score(c)} | ${covered(c)} |`);
  const survivors = names.flatMap((name) =>
    earlier.files.has(name)
      ? (earlier.survivors.get(name) ?? [])
      : (byFile.get(name) ?? [])
          .filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')
          .sort((a, b) => a.location.start.line - b.location.start.line || a.location.start.column - b.location.start.column)
          .map((m) => `| ${name}:${m.location.start.line}:${m.location.start.column} | ${m.status} | ${m.mutatorName} | \`${(m.replacement ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 90)}\` |`),
  );
  const md = [
    '# Mutation testing results',
    '',
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores (shared), Node ${process.version}, ${new Date().toISOString()}.`,
    'Command: `npm run mutate` (StrykerJS 9, vitest runner, per-test coverage, `vitest.mutate.config.mts`; MUTATE, MUTATE_TESTS and MUTATE_NAME narrow a run),',
    'summarised by `npx tsx scripts/mutation-summary.ts`. Score = killed (timeouts included) / (killed + survived + no coverage).',
    '"Ignored" are static mutants (module-level code run at import), left out because each would need the whole suite.',
    '',
    'Runs (MUTATE_NAME; each mutates the files and lines given in README, "Mutation testing"). An "earlier run" is kept from the previous version of this file:',
    'its report is not here, and its files keep their rows (a later report of a file replaces them).',
    '',
    '| run | files | mutants | score |',
    '|---|---|---|---|',
    ...runs,
    '',
    '| folder | mutants | killed | survived | no coverage | ignored | score | score of covered |',
    '|---|---|---|---|---|---|---|---|',
    ...folderRows,
    `| **all** | ${total(all)} | ${all.killed} | ${all.survived} | ${all.noCoverage} | ${all.ignored} | ${score(all)} | ${covered(all)} |`,
    '',
    '| file | mutants | killed | survived | no coverage | ignored | score | score of covered |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '## Mutants not killed',
    '',
    '| where | status | mutator | replacement |',
    '|---|---|---|---|',
    ...survivors,
    '',
  ].join('\n');
  await writeFile(OUT, md);
  console.log(`wrote ${path.relative(ROOT, OUT)}: ${names.length} files, score ${score(all)}`);
}

void main();
