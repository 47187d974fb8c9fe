import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, type SqliteStoreOptions } from 'stock-ledger/sqlite';
import { conformanceCases } from 'stock-ledger/testing';
import { afterAll, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-conformance-sqlite-'));
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The same suite, unchanged, with group commit on (the default) and off.
const variants: Array<[name: string, options: Omit<SqliteStoreOptions, 'path' | 'database'>]> = [
  ['sqlite', {}],
  ['sqlite (one transaction per operation)', { groupCommit: false }],
];
for (const [name, options] of variants) {
  // A fresh file per store: every property run starts from an empty ledger.
  for (const c of conformanceCases({ name, createStore: () => new SqliteStore({ ...options, path: join(dir, `ledger-${(files += 1)}.db`) }) })) {
    it(c.name, c.run, c.timeoutMs);
  }
}
