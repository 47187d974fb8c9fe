/**
 * The PostgreSQL store contenders: `StockLedger` + `PostgresStore` on a pg pool, a fresh schema
 * per measurement, with group commit (the default) and with one transaction per operation.
 */
import { StockLedger } from 'stock-ledger';
import { PostgresStore } from 'stock-ledger/postgres';
import { NAMES, ledgerRunner, seedLedger, withPolicyName, type Contender } from './contenders.js';
import { dropSchema, freshSchema, pgPool } from './raw-postgres.js';

function contender(url: string, name: string, groupCommit: boolean, policed = false): Contender {
  return {
    name: policed ? withPolicyName(name) : name,
    group: 'postgres',
    twin: policed,
    baseline: policed ? name : NAMES.rawPostgres,
    async open(workload) {
      const pool = pgPool(url);
      const schema = freshSchema();
      const ledger = await seedLedger(new StockLedger({ store: new PostgresStore({ client: pool, schema, groupCommit }) }), workload, policed);
      return ledgerRunner(ledger, async () => {
        await dropSchema(pool, schema);
        await pool.end();
      }, policed);
    },
  };
}

/** Both PostgreSQL store contenders. */
export function postgresStoreContenders(url: string): Contender[] {
  return [contender(url, NAMES.postgresStore, true), contender(url, `${NAMES.postgresStore} (1 tx/op)`, false), contender(url, NAMES.postgresStore, true, true)];
}
