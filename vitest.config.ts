import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^stock-ledger\/memory$/, replacement: here('./adapters/memory/index.ts') },
      { find: /^stock-ledger\/sqlite$/, replacement: here('./adapters/sqlite/index.ts') },
      { find: /^stock-ledger\/redis$/, replacement: here('./adapters/redis/index.ts') },
      { find: /^stock-ledger\/postgres$/, replacement: here('./adapters/postgres/index.ts') },
      { find: /^stock-ledger\/store$/, replacement: here('./src/store-kit.ts') },
      { find: /^stock-ledger\/testing$/, replacement: here('./testing/index.ts') },
      { find: /^stock-ledger\/otel$/, replacement: here('./otel/index.ts') },
      { find: /^stock-ledger$/, replacement: here('./src/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
