/**
 * The subset of better-sqlite3's `Statement` the store uses, typed structurally so the core
 * compiles without the driver installed.
 */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** A function wrapped in a transaction; `immediate` starts it with `BEGIN IMMEDIATE`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the shape better-sqlite3's own types use, so its Database is assignable
type AnyArgs = (...args: any[]) => unknown;
type ArgumentsOf<F extends AnyArgs> = F extends (...args: infer A) => unknown ? A : never;

export interface SqliteTransaction<F extends AnyArgs> {
  (...args: ArgumentsOf<F>): ReturnType<F>;
  immediate(...args: ArgumentsOf<F>): ReturnType<F>;
  deferred(...args: ArgumentsOf<F>): ReturnType<F>;
}

/**
 * The subset of better-sqlite3's `Database` (version 12) the store uses.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3';
 * const database: SqliteDatabase = new Database('stock.db');
 * ```
 */
export interface SqliteDatabase {
  readonly open: boolean;
  /** Whether a transaction is open on the connection (the app's own, or the store's). */
  readonly inTransaction: boolean;
  prepare(source: string): SqliteStatement;
  exec(source: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<F extends AnyArgs>(fn: F): SqliteTransaction<F>;
  close(): unknown;
}

/** The better-sqlite3 constructor, as loaded on demand. */
export type SqliteDatabaseConstructor = new (path: string, options?: { timeout?: number }) => SqliteDatabase;
