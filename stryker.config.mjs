/* global process */
// `npm run mutate`: mutation testing of the pipeline's logic (see README, "Mutation testing").
// Each mutant runs only against the tests that covered its line in the dry run (perTest).
// MUTATE (comma-separated globs) narrows the files, MUTATE_NAME names the run's reports, so runs
// over different folders can keep their results side by side.
const name = process.env.MUTATE_NAME ?? 'mutation';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.mts' },
  coverageAnalysis: 'perTest',
  mutate: process.env.MUTATE
    ? process.env.MUTATE.split(',')
    : [
        'functions/src/domain/**/*.ts',
        'functions/src/pipeline/**/*.ts',
        // The copier and its pieces.
        'functions/src/adapters/archive-copier.ts',
        'functions/src/adapters/signed-url-source.ts',
        'functions/src/adapters/resumable-upload.ts',
        'functions/src/adapters/stored-archive.ts',
        'functions/src/adapters/ranged-copy.ts',
        'functions/src/adapters/download-guard.ts',
        'functions/src/adapters/cloud-storage-archive-bucket.ts',
        'functions/src/adapters/crc32c.ts',
        'functions/src/adapters/firestore-export-store.ts',
        'functions/src/adapters/firestore-schedule-store.ts',
      ],
  // The machine is shared: one test process at a time, and a dry run that may take minutes.
  concurrency: 1,
  // Module-level code (schemas, constants) runs at import: such a "static" mutant needs the whole
  // suite (3-4 min here), so they are left out and counted as ignored in the report.
  ignoreStatic: true,
  timeoutMS: 30_000,
  dryRunTimeoutMinutes: 30,
  incremental: true,
  incrementalFile: `reports/stryker-incremental-${name}.json`,
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
