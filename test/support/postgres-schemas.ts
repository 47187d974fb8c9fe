/**
 * Fresh, empty ledgers for the conformance suite, fast: creating a schema costs ~60 ms of DDL,
 * and the suite creates hundreds of stores. A schema whose store was closed is emptied (a few
 * DELETEs) and handed to the next store; only when none is free is a new one created.
 */
import { PostgresStore, type PostgresClient, type PostgresStoreOptions } from 'stock-ledger/postgres';

// buyer_totals first: it refers to levels.
const TABLES = [
  'buyer_totals', 'entries', 'levels', 'requests', 'reversals', 'holds', 'reservations', 'checkpoints', 'checkpoint_holds', 'checkpoint_buyers',
] as const;

/**
 * Hands out stores on empty schemas `<prefix>_<n>`, recycling the schemas of closed stores.
 *
 * @example
 * const schemas = new RecycledSchemas(pool, 'conf');
 * const store = await schemas.store({ client: pool });
 */
export class RecycledSchemas {
  readonly #admin: PostgresClient & { query(text: string): Promise<unknown> };
  readonly #prefix: string;
  readonly #free: string[] = [];
  #made = 0;

  constructor(admin: PostgresClient & { query(text: string): Promise<unknown> }, prefix: string) {
    this.#admin = admin;
    this.#prefix = prefix;
  }

  /** A store on an empty schema of its own; closing it returns the schema for reuse. */
  async store(options: Omit<PostgresStoreOptions, 'schema'>): Promise<PostgresStore> {
    const reused = this.#free.pop();
    const schema = reused ?? `${this.#prefix}_${(this.#made += 1)}`;
    // The compaction horizon goes back to 0 too: the next ledger numbers its entries from 1.
    const empty = [...TABLES.map((t) => `DELETE FROM ${schema}.${t}`), `UPDATE ${schema}.compaction SET through = 0`];
    if (reused !== undefined) await this.#admin.query(empty.join('; '));
    const free = this.#free;
    let closed = false;
    return new (class extends PostgresStore {
      override async close(): Promise<void> {
        await super.close();
        if (closed) return;
        closed = true;
        free.push(schema);
      }
    })({ ...options, schema });
  }
}
