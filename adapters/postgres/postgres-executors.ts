import { InvalidInputError } from '../../src/index.js';
import type { PostgresExecutor, PostgresRow } from './postgres-client.js';

/*
 * Small adapters from query builders and ORMs to the store's executor: each runs the store's
 * own SQL text with its `$n` parameters on whatever connection the builder's handle stands for
 * (a transaction of the app's, or the builder's pool). None imports its library: the handles are
 * typed by the few members used, and each adapter is tested against the real library.
 */

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';

/** The rows of a result, whether the driver returns `{ rows }` or the rows themselves. */
function rowsOf(result: unknown): readonly PostgresRow[] {
  if (Array.isArray(result)) return result as PostgresRow[];
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows as PostgresRow[];
  return [];
}

/** Kysely's compiled query, as far as its executor reads it (the adapter builds what `CompiledQuery.raw` does). */
interface KyselyCompiledQuery {
  readonly sql: string;
  readonly parameters: readonly unknown[];
  readonly query: { readonly kind: string };
  readonly queryId: { readonly queryId: string };
}

/**
 * The members of a Kysely instance, transaction or connection the adapter uses.
 *
 * @example
 * ```ts
 * const handle: KyselyLike = db; // a Kysely<DB>, a Transaction<DB>, or db.connection()'s conn
 * ```
 */
export interface KyselyLike {
  /** Takes Kysely's own CompiledQuery, whose node types the adapter does not import: typed `never`, built by the adapter. */
  executeQuery(query: never): Promise<{ rows: unknown[] }>;
  withoutPlugins?(): KyselyLike;
  connection?(): { execute<T>(fn: (connection: KyselyLike) => Promise<T>): Promise<T> };
  readonly isTransaction?: boolean;
}

function kyselyQuery(text: string, values: readonly unknown[]): KyselyCompiledQuery {
  return Object.freeze({
    sql: text,
    parameters: Object.freeze([...values]),
    query: Object.freeze({ kind: 'RawNode', sqlFragments: Object.freeze([text]), parameters: Object.freeze([]) }),
    queryId: Object.freeze({ queryId: 'stock-ledger' }),
  });
}

function kyselyRun(handle: KyselyLike): PostgresExecutor['query'] {
  // Plugins (CamelCasePlugin, say) would rewrite the store's result columns: run without them.
  const plain = isFunction(handle.withoutPlugins) ? handle.withoutPlugins() : handle;
  return async (text, values) => ({ rows: rowsOf(await plain.executeQuery(kyselyQuery(text, values) as never)) });
}

/**
 * Kysely (PostgresDialect or any PostgreSQL dialect): a `Transaction` for `{ transaction }`, or
 * the `Kysely` instance itself as the store's `client` (the store then borrows one connection
 * per transaction of its own through `db.connection()`).
 *
 * @example
 * ```ts
 * const ledger = new StockLedger({ store: new PostgresStore({ client: kyselyExecutor(db) }) });
 * await db.transaction().execute(async (trx) => {
 *   await trx.insertInto('orders').values({ id: 'order-1' }).execute();
 *   await ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 2 }, { transaction: kyselyExecutor(trx) });
 * });
 * ```
 */
export function kyselyExecutor(handle: KyselyLike): PostgresExecutor {
  if (typeof handle !== 'object' || handle === null || !isFunction(handle.executeQuery)) {
    throw new InvalidInputError('kyselyExecutor', 'must be a Kysely instance or transaction (it has executeQuery())');
  }
  const query = kyselyRun(handle);
  const lend = handle.connection;
  if (handle.isTransaction === true || !isFunction(lend)) return { query };
  return {
    query,
    connection: (fn) => lend.call(handle).execute((connection) => fn({ query: kyselyRun(connection) })),
  };
}

/**
 * The members of a Drizzle database or transaction the adapter uses (`db._.session`, the
 * session Drizzle runs every query through: node-postgres or postgres.js).
 *
 * @example
 * ```ts
 * const handle: DrizzleLike = tx; // the tx of db.transaction(async (tx) => ...)
 * ```
 */
export interface DrizzleLike {
  readonly _: {
    readonly session: {
      prepareQuery(query: { sql: string; params: unknown[] }, fields: undefined, name: undefined, isResponseInArrayMode: boolean): {
        execute(): Promise<unknown>;
      };
    };
  };
}

/**
 * Drizzle on node-postgres or postgres.js: the `tx` of `db.transaction()` for
 * `{ transaction }`. As the store's `client`, hand it the pool Drizzle was built on
 * (`db.$client`), which the store drives itself.
 *
 * @example
 * ```ts
 * const ledger = new StockLedger({ store: new PostgresStore({ client: db.$client }) });
 * await db.transaction(async (tx) => {
 *   await tx.insert(orders).values({ id: 'order-1' });
 *   await ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 2 }, { transaction: drizzleExecutor(tx) });
 * });
 * ```
 */
export function drizzleExecutor(handle: DrizzleLike): PostgresExecutor {
  const session = (handle as { _?: { session?: DrizzleLike['_']['session'] } } | null)?._?.session;
  if (session === undefined || !isFunction(session.prepareQuery)) {
    throw new InvalidInputError('drizzleExecutor', 'must be a Drizzle PostgreSQL database or transaction (it has _.session)');
  }
  return {
    query: async (text, values) => ({ rows: rowsOf(await session.prepareQuery({ sql: text, params: [...values] }, undefined, undefined, false).execute()) }),
  };
}

/**
 * The members of a Prisma interactive transaction the adapter uses.
 *
 * @example
 * ```ts
 * const handle: PrismaLike = tx; // the tx of prisma.$transaction(async (tx) => ...)
 * ```
 */
export interface PrismaLike {
  $queryRawUnsafe(text: string, ...values: unknown[]): Promise<unknown>;
}

/**
 * Prisma (PostgreSQL, through a driver adapter or its engine): the `tx` of an interactive
 * `prisma.$transaction(async (tx) => ...)` for `{ transaction }`. As the store's `client`, hand
 * it the pg pool your Prisma adapter uses (`new PrismaPg(pool)`), which the store drives itself.
 *
 * @example
 * ```ts
 * await prisma.$transaction(async (tx) => {
 *   await tx.order.create({ data: { id: 'order-1' } });
 *   await ledger.deduct({ requestId: 'order-1', sku: 'A', qty: 2 }, { transaction: prismaExecutor(tx) });
 * });
 * ```
 */
export function prismaExecutor(handle: PrismaLike): PostgresExecutor {
  if (typeof handle !== 'object' || handle === null || !isFunction(handle.$queryRawUnsafe)) {
    throw new InvalidInputError('prismaExecutor', 'must be a Prisma client or interactive transaction (it has $queryRawUnsafe())');
  }
  return { query: async (text, values) => ({ rows: rowsOf(await handle.$queryRawUnsafe(text, ...values)) }) };
}
