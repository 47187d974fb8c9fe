/**
 * The PostgreSQL store contenders: `StockLedger` + `PostgresStore` on a pg pool, a fresh schema
 * per measurement, with group commit (the default) and with one transaction per operation.
 */
import { StockLedger } from 'stock-ledger';
import { PostgresStore } from 'stock-ledger/postgres';
import { NAMES, ledgerRunner, seedLedger, type Contender } from './contenders.js';
import { dropSchema, freshSchema, pgPool } from './raw-postgres.js';

function contender(url: string, name: string, groupCommit: boolean): Contender {
  return {
    name,
    group: 'postgres',
    baseline: NAMES.rawPostgres,
    async open(workload) {
      const pool = pgPool(url);
      const schema = freshSchema();
      const ledger = await seedLedger(new StockLedger({ store: new PostgresStore({ client: pool, schema, groupCommit }) }), workload);
      return ledgerRunner(ledger, async () => {
        await dropSchema(pool, schema);
        await pool.end();
      });
    },
  };
}

/** Both PostgreSQL store contenders. */
export function postgresStoreContenders(url: string): Contender[] {
  return [contender(url, NAMES.postgresStore, true), contender(url, `${NAMES.postgresStore} (1 tx/op)`, false)];
}
