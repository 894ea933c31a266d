import { defineConfig } from 'vitest/config';
import base from './vitest.config.mts';

// The suite StrykerJS runs each mutant against (`npm run mutate`). By default the unit and
// integration tests, without the memory measurement and the document checks; MUTATE_TESTS
// (comma-separated globs) narrows it for a run, e.g. the pure domain against test/unit only.
// The end-to-end tests are left out: each mutant they cover would start a whole local stack
// again (about 45 s a mutant on this machine), which no run on 2 shared cores could finish.
// (Spread, not mergeConfig: that would append to the base's include list instead of replacing it.)
const include = process.env.MUTATE_TESTS ? process.env.MUTATE_TESTS.split(',') : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'];

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include,
    exclude: [
      'test/integration/archive-copier-memory.test.ts',
      'test/unit/openapi-document.test.ts',
      'test/unit/readme-config-table.test.ts',
    ],
    maxWorkers: 1,
  },
});
