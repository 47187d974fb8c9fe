import { InvalidInputError, StoreUnavailableError } from '../../src/index.js';

/**
 * One row as a driver returns it; the store narrows every value it reads.
 *
 * @example
 * ```ts
 * const rows: readonly PostgresRow[] = (await pool.query('SELECT 1 AS one')).rows;
 * ```
 */
export type PostgresRow = Record<string, unknown>;

/**
 * The one thing the store needs of a database handle: run one statement with `$1`-style
 * parameters and give back its rows (the pg-boss pattern). pg's `Client` and `PoolClient`
 * already are one; the store sends an executor one statement per text.
 *
 * Kysely, Drizzle and Prisma plug in through `kyselyExecutor`, `drizzleExecutor` and
 * `prismaExecutor`; `connection` is needed only when the executor is handed to the store as
 * its `client` (the store then opens its own transactions on one connection at a time).
 *
 * @example
 * ```ts
 * const executor: PostgresExecutor = {
 *   query: async (text, values) => ({ rows: (await db.executeQuery(CompiledQuery.raw(text, [...values]))).rows }),
 *   connection: (fn) => db.connection().execute((conn) => fn(kyselyExecutor(conn))),
 * };
 * new PostgresStore({ client: executor });
 * ```
 */
export interface PostgresExecutor {
  query(text: string, values: readonly unknown[]): Promise<{ rows: readonly PostgresRow[] }>;
  /** Runs `fn` on one connection that nothing else uses until `fn` settles. */
  connection?<T>(fn: (executor: PostgresExecutor) => Promise<T>): Promise<T>;
}

/**
 * The subset of pg's `Client`/`PoolClient` the store uses (typed structurally: no pg import).
 *
 * @example
 * ```ts
 * const client: PgClientLike = await pool.connect(); // a pg PoolClient
 * ```
 */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: PostgresRow[] }>;
  /** pg 8.19+: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
  getTransactionStatus?(): string | null;
  release?(destroy?: boolean | Error): void;
  on?(event: 'error', listener: (error: Error) => void): unknown;
  removeListener?(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * The subset of pg's `Pool` the store uses.
 *
 * @example
 * ```ts
 * const pool: PgPoolLike = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 * ```
 */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: PostgresRow[] }>;
  connect(): Promise<PgClientLike & { release(destroy?: boolean | Error): void }>;
  readonly totalCount: number;
}

/** A postgres.js query: a promise of rows. */
type PostgresJsQuery = PromiseLike<readonly PostgresRow[]>;

/**
 * The subset of a postgres.js `sql` (the root, or a `sql.begin` scope) the store uses.
 *
 * @example
 * ```ts
 * const sql: PostgresJsLike = postgres(process.env.DATABASE_URL);
 * ```
 */
export interface PostgresJsLike {
  unsafe(text: string, values?: unknown[], options?: { prepare?: boolean }): PostgresJsQuery;
  reserve?(): Promise<PostgresJsLike & { release(): void }>;
  savepoint?<T>(fn: (sql: PostgresJsLike) => Promise<T>): Promise<T>;
  begin?: unknown;
}

/**
 * What `new PostgresStore({ client })` accepts.
 *
 * @example
 * ```ts
 * const client: PostgresClient = new pg.Pool(); // or pg.Client, postgres(), an executor
 * ```
 */
export type PostgresClient = PgPoolLike | PgClientLike | PostgresJsLike | PostgresExecutor;

/** One connection, for the time of one transaction (or one autocommit statement). */
export interface Connection {
  query(text: string, values?: readonly unknown[]): Promise<readonly PostgresRow[]>;
}

/** The body of a store-owned transaction: its value, and whether to commit (else roll back). */
export type TransactionBody<T> = (connection: Connection) => Promise<{ value: T; commit: boolean }>;

/**
 * How the store reaches the database: `transaction` runs a body inside a READ COMMITTED
 * transaction on one connection (a bound on lock waits when `lockTimeoutMs` is given), `query`
 * runs one autocommit statement on any connection.
 */
export interface Connector {
  readonly driver: 'pg-pool' | 'pg-client' | 'postgres.js' | 'executor';
  transaction<T>(body: TransactionBody<T>, lockTimeoutMs: number | null): Promise<T>;
  query(text: string, values?: readonly unknown[]): Promise<readonly PostgresRow[]>;
}

/** How long the store waits for a shared single connection the app has a transaction open on. */
const SHARED_CLIENT_WAIT_MS = 5000;
const SHARED_CLIENT_POLL_MS = 2;

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';
const field = (value: unknown, key: string): unknown => (value as Record<string, unknown> | null)?.[key];

function isPostgresJs(value: unknown): value is PostgresJsLike {
  return isFunction(value) && isFunction(field(value, 'unsafe'));
}

function isPgPool(value: unknown): value is PgPoolLike {
  return typeof value === 'object' && value !== null && isFunction(field(value, 'connect')) && isFunction(field(value, 'query')) &&
    typeof field(value, 'totalCount') === 'number';
}

function isQueryable(value: unknown): value is PgClientLike {
  return typeof value === 'object' && value !== null && isFunction(field(value, 'query'));
}

/** Names of prepared statements by text: pg then parses and plans each of the store's few texts once per connection. */
const statementNames = new Map<string, string>();

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    // FNV-1a over the text, twice with different seeds: 64 bits, so two texts never share a name in practice.
    let a = 0x811c9dc5;
    let b = 0x1b873593;
    for (let i = 0; i < text.length; i += 1) {
      a = Math.imul(a ^ text.charCodeAt(i), 0x01000193);
      b = Math.imul(b ^ text.charCodeAt(i), 0x5bd1e995);
    }
    name = `stock_ledger_${(a >>> 0).toString(16)}${(b >>> 0).toString(16)}`;
    statementNames.set(text, name);
  }
  return name;
}

function pgConnection(client: PgClientLike): Connection {
  return {
    query: async (text, values = []) => {
      // Only statements with parameters: pg sends those through the extended protocol anyway.
      const config = values.length === 0 ? text : { name: statementName(text), text, values: [...values] };
      return (await (client.query as (config: unknown) => Promise<{ rows: PostgresRow[] }>)(config)).rows;
    },
  };
}

function postgresJsConnection(sql: PostgresJsLike): Connection {
  // Prepared statements (named, per connection) save a parse per call; the store's texts are few and fixed.
  return { query: async (text, values = []) => [...(await sql.unsafe(text, [...values], { prepare: values.length > 0 }))] };
}

function executorConnection(executor: PostgresExecutor): Connection {
  return { query: async (text, values = []) => (await executor.query(text, values)).rows };
}

/** Turns the rows of a query into a Connection, whatever the handle. */
function connectionOf(handle: unknown): Connection {
  if (isPostgresJs(handle)) return postgresJsConnection(handle);
  if (isQueryable(handle)) return isFunction(field(handle, 'release')) || isFunction(field(handle, 'getTransactionStatus'))
    ? pgConnection(handle)
    : executorConnection(handle as unknown as PostgresExecutor);
  throw new InvalidInputError('client', 'must be a pg Pool or Client, a postgres.js sql, or an executor { query(text, values) }');
}

/** A failure that took the connection with it (no SQLSTATE, or the server ending the session). */
function connectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return code.startsWith('08') || code.startsWith('57P');
}

/** One promise chain: a single connection runs one store transaction at a time. */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * Recognises the handle by its shape (no driver is imported) and builds the store's connector.
 *
 * @example
 * ```ts
 * const connector = connectorOf(new pg.Pool());
 * await connector.transaction(async (c) => ({ value: await c.query('SELECT 1'), commit: true }), null);
 * ```
 */
export function connectorOf(client: unknown): Connector {
  if (isPostgresJs(client)) return postgresJsConnector(client);
  if (isPgPool(client)) return pgPoolConnector(client);
  if (isQueryable(client)) {
    if (isFunction(field(client, 'getTransactionStatus')) || isFunction(field(client, 'release'))) return sharedClientConnector(client);
    return executorConnector(client as unknown as PostgresExecutor);
  }
  throw new InvalidInputError('client', 'must be a pg Pool or Client, a postgres.js sql, or an executor { query(text, values) }');
}

const BEGIN = 'BEGIN ISOLATION LEVEL READ COMMITTED';
const lockTimeoutText = (lockTimeoutMs: number): string => `SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`;

/**
 * BEGIN, with a bound on lock waits when asked. pg takes both statements in one round trip
 * (simple protocol); an executor may not take several statements in one text, so it gets two.
 */
async function begin(connection: Connection, lockTimeoutMs: number | null, oneText: boolean): Promise<void> {
  if (lockTimeoutMs === null) {
    await connection.query(BEGIN);
  } else if (oneText) {
    await connection.query(`${BEGIN}; ${lockTimeoutText(lockTimeoutMs)}`);
  } else {
    await connection.query(BEGIN);
    await connection.query(lockTimeoutText(lockTimeoutMs));
  }
}

/** A transaction on one connection the caller holds: BEGIN, the body, COMMIT or ROLLBACK. */
async function inTransaction<T>(connection: Connection, body: TransactionBody<T>, lockTimeoutMs: number | null, oneText = true): Promise<T> {
  await begin(connection, lockTimeoutMs, oneText);
  let done: { value: T; commit: boolean };
  try {
    done = await body(connection);
  } catch (error) {
    // Leave no transaction open on a connection that lives on. A dead one the server rolled back.
    if (!connectionLost(error)) await connection.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  // Nothing written: ROLLBACK, which waits for no disk flush.
  await connection.query(done.commit ? 'COMMIT' : 'ROLLBACK');
  return done.value;
}

function pgPoolConnector(pool: PgPoolLike): Connector {
  return {
    driver: 'pg-pool',
    async transaction(body, lockTimeoutMs) {
      const client = await pool.connect();
      // A checked-out pg client whose connection dies between two statements emits 'error';
      // unheard, that would end the process. The failure also fails the next statement, so
      // hearing it is enough; the listener goes when the client goes back.
      const onError = (): void => {};
      client.on?.('error', onError);
      try {
        const value = await inTransaction(pgConnection(client), body, lockTimeoutMs);
        client.removeListener?.('error', onError);
        client.release();
        return value;
      } catch (error) {
        client.removeListener?.('error', onError);
        // A connection that failed mid-transaction may still have it open: never hand it back.
        client.release(true);
        throw error;
      }
    },
    query: (text, values) => pgConnection(pool).query(text, values),
  };
}

/** Thrown through postgres.js's `sql.begin` to make it roll back a transaction that wrote nothing. */
class RollBack<T> extends Error {
  readonly value: T;

  constructor(value: T) {
    super('stock-ledger: roll back');
    this.value = value;
  }
}

function postgresJsConnector(sql: PostgresJsLike): Connector {
  const root = postgresJsConnection(sql);
  const begin = sql.begin;
  if (!isFunction(begin)) throw new InvalidInputError('client', 'must be the root sql of postgres.js (it has begin())');
  return {
    driver: 'postgres.js',
    async transaction<T>(body: TransactionBody<T>, lockTimeoutMs: number | null): Promise<T> {
      // sql.begin, not reserve(): postgres.js 3.4 hands a dead reserved connection back to its pool.
      const run = begin as (options: string, fn: (tx: PostgresJsLike) => Promise<T>) => Promise<T>;
      try {
        return await run.call(sql, 'isolation level read committed', async (tx) => {
          const connection = postgresJsConnection(tx);
          if (lockTimeoutMs !== null) await connection.query(lockTimeoutText(lockTimeoutMs));
          const done = await body(connection);
          if (!done.commit) throw new RollBack(done.value);
          return done.value;
        });
      } catch (error) {
        if (error instanceof RollBack) return error.value as T;
        throw error;
      }
    },
    query: (text, values) => root.query(text, values),
  };
}

/**
 * A single pg `Client`: one store transaction at a time, and never while the app has its own
 * transaction open on it (the store waits for that to end, bounded), so an operation the app
 * did not hand its transaction can never run inside it.
 */
function sharedClientConnector(client: PgClientLike): Connector {
  const serial = new Serial();
  const connection = pgConnection(client);
  const idle = async (): Promise<void> => {
    const deadline = Date.now() + SHARED_CLIENT_WAIT_MS;
    while (client.getTransactionStatus?.() === 'T' || client.getTransactionStatus?.() === 'E') {
      if (Date.now() >= deadline) {
        throw new StoreUnavailableError(
          `PostgreSQL: a transaction of the app's stayed open on the store's client for ${SHARED_CLIENT_WAIT_MS} ms; ` +
            'an operation runs inside it only when the call hands it in ({ transaction })',
        );
      }
      await new Promise((resolve) => setTimeout(resolve, SHARED_CLIENT_POLL_MS));
    }
  };
  return {
    driver: 'pg-client',
    transaction: (body, lockTimeoutMs) => serial.run(async () => {
      await idle();
      return inTransaction(connection, body, lockTimeoutMs);
    }),
    query: (text, values) => serial.run(async () => {
      await idle();
      return connection.query(text, values);
    }),
  };
}

function executorConnector(executor: PostgresExecutor): Connector {
  const serial = new Serial();
  const whole = executorConnection(executor);
  const lend = executor.connection;
  return {
    driver: 'executor',
    transaction: <T>(body: TransactionBody<T>, lockTimeoutMs: number | null): Promise<T> => {
      // Without connection(), the executor is one connection: serialize the store's transactions on it.
      if (lend === undefined) return serial.run(() => inTransaction(whole, body, lockTimeoutMs, false));
      return lend.call<PostgresExecutor, [(one: PostgresExecutor) => Promise<T>], Promise<T>>(executor, (one) =>
        inTransaction(executorConnection(one), body, lockTimeoutMs, false));
    },
    query: (text, values) => whole.query(text, values),
  };
}

const POSTGRES_JS_SCOPE = Symbol.for('stock-ledger.postgres-js-scope');

/**
 * Wraps the `sql` of a postgres.js `sql.begin()` scope for `{ transaction }`: the scope is a
 * function, and the ledger takes an object there (the store also accepts the bare scope, for
 * a core that lets functions through).
 *
 * @example
 * ```ts
 * await sql.begin(async (tx) => {
 *   await tx`INSERT INTO orders (id) VALUES (${id})`;
 *   await ledger.deduct({ requestId: id, sku: 'A', qty: 1 }, { transaction: postgresJsTransaction(tx) });
 * });
 * ```
 */
export function postgresJsTransaction(scope: PostgresJsLike): object {
  if (!isPostgresJs(scope) || !isFunction(scope.savepoint)) {
    throw new InvalidInputError('transaction', 'must be the sql of a postgres.js sql.begin() scope (it has savepoint())');
  }
  return Object.freeze({ [POSTGRES_JS_SCOPE]: scope });
}

function unwrapPostgresJs(handed: unknown): unknown {
  const scope = typeof handed === 'object' && handed !== null ? (handed as Record<symbol, unknown>)[POSTGRES_JS_SCOPE] : undefined;
  return scope ?? handed;
}

/** The app's open transaction, as the store runs statements in it. */
export interface Joined {
  /**
   * Runs `fn` inside a savepoint of the app's transaction: released when `fn` resolves,
   * rolled back to when it throws (the app's transaction stays usable either way).
   */
  savepoint<T>(fn: (connection: Connection) => Promise<T>): Promise<T>;
}

/**
 * The app's transaction handed in with `{ transaction }`: a pg `Client`/`PoolClient` after
 * BEGIN, the `sql` of a postgres.js `sql.begin` scope, or an executor running in one.
 *
 * @example
 * ```ts
 * const joined = joinedOf(await pool.connect());
 * ```
 */
export function joinedOf(handed: unknown): Joined {
  const transaction = unwrapPostgresJs(handed);
  if (isPostgresJs(transaction)) {
    const savepoint = transaction.savepoint;
    if (!isFunction(savepoint)) {
      throw new InvalidInputError('options.transaction', 'must be the sql of a postgres.js sql.begin() scope (it has savepoint())');
    }
    // postgres.js remembers any failed query of a scope and fails the scope with it; its own
    // savepoint scope keeps our statements' failures out of the app's scope.
    return {
      savepoint: <T>(fn: (connection: Connection) => Promise<T>): Promise<T> =>
        savepoint.call(transaction, (scoped: PostgresJsLike) => fn(postgresJsConnection(scoped))) as Promise<T>,
    };
  }
  if (!isQueryable(transaction)) {
    throw new InvalidInputError('options.transaction', 'must be a pg client after BEGIN, a postgres.js sql.begin() scope, or an executor');
  }
  const status = transaction.getTransactionStatus?.();
  if (status === 'I') throw new InvalidInputError('options.transaction', 'no transaction is open on this client: BEGIN first');
  const connection = connectionOf(transaction);
  return {
    async savepoint<T>(fn: (connection: Connection) => Promise<T>): Promise<T> {
      await connection.query('SAVEPOINT stock_ledger');
      let result: T;
      try {
        result = await fn(connection);
      } catch (error) {
        // Undo our statements only; if even that fails the connection is gone, and the app's
        // transaction with it: the original error says why.
        await connection.query('ROLLBACK TO SAVEPOINT stock_ledger').catch(() => undefined);
        await connection.query('RELEASE SAVEPOINT stock_ledger').catch(() => undefined);
        throw error;
      }
      await connection.query('RELEASE SAVEPOINT stock_ledger');
      return result;
    },
  };
}
