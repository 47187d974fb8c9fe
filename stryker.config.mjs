// Mutation testing of the core, src/ (StrykerJS 9; 10.x needs Node 22): `npm run mutate`.
// Not part of CI: it takes long (about an hour on 2 cores). The tests are the fast suites that
// run the core through the memory store (vitest.mutate.config.ts). Reports: a score table per
// file on the console, reports/mutation/mutation.html and reports/mutation/mutation.json.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  // index.ts and store-kit.ts only re-export; types.ts holds types only (store.ts has namedSkus).
  mutate: ['src/**/*.ts', '!src/index.ts', '!src/store-kit.ts', '!src/types.ts'],
  coverageAnalysis: 'perTest',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: false, reportScoreTable: true },
  thresholds: { high: 90, low: 75, break: null },
  // The machine has 2 cores and is shared: at most 2 test runners.
  concurrency: 2,
  // A mutant times out after 2 x its tests' dry-run time + 10 s (the slowest, the model-based
  // differential, takes about 4 s).
  timeoutFactor: 2,
  timeoutMS: 10_000,
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
