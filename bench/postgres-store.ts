/**
 * The PostgreSQL store contenders: `StockLedger` + `PostgresStore` on a pg pool, a fresh schema
 * per measurement, with group commit (the default) and with one transaction per operation.
 */
import type { Contender } from './contenders.js';

/** None until the store exists; the raw baselines run on their own. */
export function postgresStoreContenders(_url: string): Contender[] {
  return [];
}
