/**
 * Vitest config for mutation testing only (`npm run mutate`, see stryker.config.mjs); `npm test`
 * and CI do not use it. The same aliases as vitest.config.ts, but only the fast suites that run
 * the core through the memory store: the unit tests, the conformance checkers and the memory
 * conformance suite. Redis and SQLite are left out: they need servers or files, are slow, and
 * run the same core.
 */
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * A setup file with no file on disk, served by the plugin below: fast-check's `endOnFailure`, so
 * a property that a mutant breaks fails at its first counterexample instead of shrinking it.
 */
const SETUP_ID = 'virtual:stock-ledger-mutate-setup.ts';
const SETUP = `import fc from 'fast-check';
fc.configureGlobal({ ...fc.readConfigureGlobal(), endOnFailure: true });
`;

export default defineConfig({
  plugins: [
    {
      name: 'stock-ledger:mutate-setup',
      enforce: 'pre',
      resolveId: (id) => (id.endsWith(SETUP_ID) ? id : undefined),
      load: (id) => (id.endsWith(SETUP_ID) ? SETUP : undefined),
    },
  ],
  resolve: { ...base.resolve },
  test: {
    include: [
      'test/canonical.test.ts',
      'test/errors.test.ts',
      'test/retry.test.ts',
      'test/memory-store.test.ts',
      'test/conformance-checkers.test.ts',
      'test/verify-item.test.ts',
      'test/validation-messages.test.ts',
      'test/decide.test.ts',
      'test/ledger-edges.test.ts',
      'test/conformance.memory.test.ts',
      'test/stock-events.test.ts',
    ],
    setupFiles: [SETUP_ID],
    env: {
      // One fixed seed (an existing knob: testing/property.ts, reservation-races.ts) for every
      // property and reservation flood: each mutant meets the inputs the dry run met.
      STOCK_LEDGER_SEED: '1',
    },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Stryker's vitest runner runs in worker threads whatever this says; say so here too.
    pool: 'threads',
  },
});
