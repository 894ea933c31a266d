/**
 * Writes bench/mutation-results.md from StrykerJS's JSON reports (reports/mutation/*.json, one per
 * `npm run mutate` run): per file, how many mutants the tests killed, which survived, which no test
 * reached, and the score. `npx tsx scripts/mutation-summary.ts [report.json …]`.
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
  files: Record<string, { mutants: Mutant[] }>;
}

const ROOT = path.join(__dirname, '..');
const mutantKey = (m: Mutant): string =>
  `${m.location.start.line}:${m.location.start.column}-${m.location.end.line}:${m.location.end.column}:${m.mutatorName}:${m.replacement ?? ''}`;
const OUT = path.join(ROOT, 'bench', 'mutation-results.md');

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

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dir = path.join(ROOT, 'reports', 'mutation');
  const files = args.length > 0 ? args : (await readdir(dir)).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f));
  const byFile = new Map<string, Mutant[]>();
  const runs: string[] = [];
  for (const f of files) {
    const report = JSON.parse(await readFile(f, 'utf8')) as Report;
    const mutants = Object.values(report.files).flatMap((x) => x.mutants);
    const c = count(mutants);
    runs.push(`| ${path.basename(f, '.json')} | ${Object.keys(report.files).length} | ${mutants.length} | ${score(c)} |`);
    // Runs over different lines of one file add up; the same mutant in two runs counts once (the later run's result).
    for (const [name, { mutants: ms }] of Object.entries(report.files)) {
      const key = path.relative(ROOT, path.resolve(ROOT, name));
      const merged = new Map((byFile.get(key) ?? []).map((m) => [mutantKey(m), m]));
      for (const m of ms) merged.set(mutantKey(m), m);
      byFile.set(key, [...merged.values()]);
    }
  }
  const names = [...byFile.keys()].sort();
  const rows: string[] = [];
  const folders = new Map<string, Mutant[]>();
  for (const name of names) {
    const mutants = byFile.get(name) ?? [];
    const c = count(mutants);
    rows.push(`| ${name} | ${mutants.length} | ${c.killed} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${score(c)} | ${covered(c)} |`);
    const folder = path.dirname(name);
    folders.set(folder, [...(folders.get(folder) ?? []), ...mutants]);
  }
  const all = count([...byFile.values()].flat());
  const folderRows = [...folders].map(([f, ms]) => {
    const c = count(ms);
    return `| ${f}/ | ${ms.length} | ${c.killed} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${score(c)} | ${covered(c)} |`;
  });
  const survivors = names.flatMap((name) =>
    (byFile.get(name) ?? [])
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
    'Runs (MUTATE_NAME; each mutates the files and lines given in README, "Mutation testing"):',
    '',
    '| run | files | mutants | score |',
    '|---|---|---|---|',
    ...runs,
    '',
    '| folder | mutants | killed | survived | no coverage | ignored | score | score of covered |',
    '|---|---|---|---|---|---|---|---|',
    ...folderRows,
    `| **all** | ${all.killed + all.survived + all.noCoverage + all.ignored + all.errors} | ${all.killed} | ${all.survived} | ${all.noCoverage} | ${all.ignored} | ${score(all)} | ${covered(all)} |`,
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
