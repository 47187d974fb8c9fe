import { InvalidInputError } from '../../src/index.js';
import type { SqliteDatabase } from './sqlite-database.js';

/**
 * The prefix of the store's table names when none is given: `stock_ledger_levels`,
 * `stock_ledger_entries`..., names an app's own tables (`stock_levels`, say) do not take.
 */
export const DEFAULT_TABLE_PREFIX = 'stock_ledger_';

/** What a table prefix may be: it goes into SQL text as is, so only letters, digits and `_`. */
const TABLE_PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;

/** The store's table names, all from one prefix. */
export interface SqliteTables {
  readonly prefix: string;
  readonly levels: string;
  readonly entries: string;
  readonly requests: string;
  readonly reversals: string;
  readonly reservations: string;
  readonly holds: string;
  /** What each buyer holds plus has bought of each SKU (purchase limits). */
  readonly buyerTotals: string;
  /** Per SKU, what its compacted entries folded to: counters. */
  readonly checkpoints: string;
  /** Per SKU and reservation, the `reserved_delta`s of its compacted entries (non-zero sums only). */
  readonly checkpointHolds: string;
  /** Per SKU and buyer, `reserved_delta - on_hand_delta` of its compacted entries (non-zero sums only). */
  readonly checkpointBuyers: string;
  /** One row: the highest entry `seq` compaction removed. */
  readonly horizon: string;
  /** The store's own schema-version table (not `user_version`, which belongs to the app). */
  readonly schema: string;
}

/**
 * The table names for a prefix, checked (`INVALID_INPUT` before the file is touched).
 *
 * @example
 * ```ts
 * tablesOf('shop_1_').levels; // 'shop_1_levels'
 * ```
 */
export function tablesOf(prefix: string = DEFAULT_TABLE_PREFIX): SqliteTables {
  if (typeof prefix !== 'string' || !TABLE_PREFIX.test(prefix)) {
    throw new InvalidInputError('tablePrefix', `must be 1 to 40 ASCII letters, digits or _, not starting with a digit: ${JSON.stringify(prefix)}`);
  }
  const name = (table: string): string => `${prefix}${table}`;
  return Object.freeze({
    prefix, levels: name('levels'), entries: name('entries'), requests: name('requests'), reversals: name('reversals'),
    reservations: name('reservations'), holds: name('holds'), buyerTotals: name('buyer_totals'), schema: name('schema'),
    checkpoints: name('checkpoints'), checkpointHolds: name('checkpoint_holds'), checkpointBuyers: name('checkpoint_buyers'), horizon: name('horizon'),
  });
}

/** The names of stock-ledger 0.1's default tables, from before there was a prefix. */
const LEGACY: Readonly<Record<'levels' | 'entries' | 'requests' | 'reversals' | 'reservations' | 'holds', string>> = {
  levels: 'stock_levels', entries: 'stock_entries', requests: 'stock_requests', reversals: 'stock_reversals',
  reservations: 'stock_reservations', holds: 'stock_holds',
};

function tableExists(db: SqliteDatabase, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/**
 * Version 3: a ledger created before the prefix existed (at version 1 or 2, `from`) kept its
 * tables under the old default names (its version table already had the default prefix's
 * name). Renamed in place, indexes rebuilt under their new names. A new ledger never touches
 * those names: they may be the app's own tables.
 */
function renameLegacyTables(db: SqliteDatabase, t: SqliteTables, from: number): void {
  if (t.prefix !== DEFAULT_TABLE_PREFIX || from === 0) return;
  for (const table of Object.keys(LEGACY) as (keyof typeof LEGACY)[]) {
    if (tableExists(db, LEGACY[table]) && !tableExists(db, t[table])) db.exec(`ALTER TABLE ${LEGACY[table]} RENAME TO ${t[table]}`);
  }
  db.exec(`
    DROP INDEX IF EXISTS stock_entries_by_sku;
    DROP INDEX IF EXISTS stock_holds_by_sku;
    DROP INDEX IF EXISTS stock_holds_by_expiry;
    CREATE INDEX IF NOT EXISTS ${t.prefix}entries_by_sku ON ${t.entries} (sku, seq);
    CREATE INDEX IF NOT EXISTS ${t.prefix}holds_by_sku ON ${t.holds} (sku, expires_at, reservation_id);
    CREATE INDEX IF NOT EXISTS ${t.prefix}holds_by_expiry ON ${t.holds} (expires_at, reservation_id, sku);
  `);
}

/**
 * Version 4: per-SKU policy (`setPolicy`). Levels gain `backorder_max` and `low_stock_at`, and
 * on-hand may go negative, so the CHECK `on_hand >= reserved` becomes `on_hand - reserved +
 * backorder_max >= 0`. SQLite cannot alter a CHECK: the levels table is rebuilt (create, copy,
 * drop, rename) inside the migration's transaction, so a crash leaves the old table whole.
 * Entries gain `policy` (JSON text, on policy entries only).
 */
function addPolicy(db: SqliteDatabase, t: SqliteTables): void {
  const rebuilt = `${t.levels}_v4`;
  db.exec(`
  CREATE TABLE ${rebuilt} (
    sku TEXT PRIMARY KEY NOT NULL,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL CHECK (reserved >= 0),
    version INTEGER NOT NULL,
    backorder_max INTEGER NOT NULL DEFAULT 0 CHECK (backorder_max >= 0),
    low_stock_at INTEGER NULL CHECK (low_stock_at >= 0),
    CHECK (on_hand - reserved + backorder_max >= 0)
  ) WITHOUT ROWID;
  INSERT INTO ${rebuilt} (sku, on_hand, reserved, version) SELECT sku, on_hand, reserved, version FROM ${t.levels};
  DROP TABLE ${t.levels};
  ALTER TABLE ${rebuilt} RENAME TO ${t.levels};
  ALTER TABLE ${t.entries} ADD COLUMN policy TEXT;
  `);
}

/**
 * Version 5: purchase limits. Levels gain `buyer_max` (NULL: no limit); entries and reservations
 * gain `buyer` (NULL: none named), so replays, holds and the verify fold can name it; and a table
 * of totals per (SKU, buyer), two columns rather than one joined key, so no pair of caller
 * strings can collide (U+0000 included). A row whose total falls to 0 is deleted: a missing row
 * reads as 0, and the table holds only buyers who have something. Only columns are added, and
 * every new one is NULL or in a new table: rows of every earlier version stay valid as they are.
 */
function addBuyers(db: SqliteDatabase, t: SqliteTables): void {
  db.exec(`
  ALTER TABLE ${t.levels} ADD COLUMN buyer_max INTEGER NULL CHECK (buyer_max >= 0);
  ALTER TABLE ${t.entries} ADD COLUMN buyer TEXT;
  ALTER TABLE ${t.reservations} ADD COLUMN buyer TEXT;
  CREATE TABLE ${t.buyerTotals} (
    sku TEXT NOT NULL,
    buyer TEXT NOT NULL,
    taken INTEGER NOT NULL CHECK (taken > 0),
    PRIMARY KEY (sku, buyer)
  ) WITHOUT ROWID;
  `);
}

/**
 * Version 6: carts that change. Entries gain `reservation_id` (NULL but on `amend` entries,
 * which carry the amend's own request id and the id of the reservation whose hold they move),
 * so the verify fold groups holds by it. Only a NULL column is added: every row stays valid.
 */
function addAmends(db: SqliteDatabase, t: SqliteTables): void {
  db.exec(`ALTER TABLE ${t.entries} ADD COLUMN reservation_id TEXT;`);
}

/**
 * Version 7: retention. Compaction deletes old entries, request records and finished
 * reservations, and folds each deleted entry into its SKU's checkpoint (counters, holds per
 * reservation, totals per buyer: what verify adds to the fold of the entries kept). The
 * horizon row keeps the highest `seq` removed, so the feed knows where it starts and a new
 * entry is never numbered at or below it, even once every entry is gone. Closed ids (revoke
 * records, which have no entries) are found by time through a partial index, so it costs
 * nothing on other requests. Only new tables and an index: every row stays valid.
 */
function addRetention(db: SqliteDatabase, t: SqliteTables): void {
  db.exec(`
  CREATE TABLE ${t.checkpoints} (
    sku TEXT PRIMARY KEY NOT NULL,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0)
  ) WITHOUT ROWID;
  CREATE TABLE ${t.checkpointHolds} (
    sku TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty <> 0),
    PRIMARY KEY (sku, reservation_id)
  ) WITHOUT ROWID;
  CREATE TABLE ${t.checkpointBuyers} (
    sku TEXT NOT NULL,
    buyer TEXT NOT NULL,
    taken INTEGER NOT NULL CHECK (taken <> 0),
    PRIMARY KEY (sku, buyer)
  ) WITHOUT ROWID;
  CREATE TABLE ${t.horizon} (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    compacted_through INTEGER NOT NULL CHECK (compacted_through >= 0)
  );
  INSERT INTO ${t.horizon} (id, compacted_through) VALUES (1, 0);
  CREATE INDEX ${t.prefix}closed_ids_by_at ON ${t.requests} (at) WHERE kind = 'revoke';
  `);
}

/**
 * Schema migrations, in order; the index + 1 is the schema version they lead to. The version
 * is recorded in the store's own table (not `user_version`, which belongs to the app when it
 * hands its own database in).
 */
const MIGRATIONS: readonly ((db: SqliteDatabase, t: SqliteTables, from: number) => void)[] = [
  (db, t) => db.exec(`
  CREATE TABLE ${t.prefix}levels (
    sku TEXT PRIMARY KEY NOT NULL,
    on_hand INTEGER NOT NULL CHECK (on_hand >= reserved),
    reserved INTEGER NOT NULL CHECK (reserved >= 0),
    version INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE ${t.prefix}entries (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    sku TEXT NOT NULL,
    on_hand_delta INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    on_hand_after INTEGER NOT NULL,
    reserved_after INTEGER NOT NULL,
    at INTEGER NOT NULL,
    meta TEXT
  );
  -- No unique index on (request_id, kind, sku): the request record, checked in the same
  -- transaction, already makes each request apply once, and every extra index is one more
  -- page written per operation.
  CREATE INDEX ${t.prefix}entries_by_sku ON ${t.prefix}entries (sku, seq);
  CREATE TABLE ${t.prefix}requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE ${t.prefix}reversals (
    of_request TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (of_request, sku)
  ) WITHOUT ROWID;
  `),
  (db, t) => db.exec(`
  CREATE TABLE ${t.prefix}reservations (
    id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    lines TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    committed TEXT,
    meta TEXT,
    outcome TEXT
  );
  CREATE TABLE ${t.prefix}holds (
    reservation_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, sku)
  ) WITHOUT ROWID;
  CREATE INDEX ${t.prefix}holds_by_sku ON ${t.prefix}holds (sku, expires_at, reservation_id);
  CREATE INDEX ${t.prefix}holds_by_expiry ON ${t.prefix}holds (expires_at, reservation_id, sku);
  `),
  renameLegacyTables,
  addPolicy,
  addBuyers,
  addAmends,
  addRetention,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the schema up to {@link SCHEMA_VERSION} in one `BEGIN IMMEDIATE` transaction, so
 * several processes opening one file at once migrate it exactly once. A current schema is
 * only read, so opening takes no write lock.
 */
export function migrate(db: SqliteDatabase, t: SqliteTables = tablesOf()): void {
  if (schemaVersion(db, t.prefix) === SCHEMA_VERSION) return;
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${t.schema} (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)`);
    const row = db.prepare(`SELECT value FROM ${t.schema} WHERE key = 'version'`).get() as { value: number } | undefined;
    const current = row?.value ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new InvalidInputError('database', `has stock-ledger schema version ${current}; this code knows up to ${SCHEMA_VERSION}: upgrade stock-ledger`);
    }
    for (let version = current + 1; version <= SCHEMA_VERSION; version += 1) (MIGRATIONS[version - 1] as (typeof MIGRATIONS)[number])(db, t, current);
    db.prepare(`INSERT INTO ${t.schema} (key, value) VALUES ('version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(SCHEMA_VERSION);
  }).immediate();
}

/**
 * The recorded schema version of the ledger whose tables have `tablePrefix` (0 for a database
 * the store never opened with it).
 *
 * @example
 * ```ts
 * schemaVersion(db); // SCHEMA_VERSION once a SqliteStore has opened it
 * ```
 */
export function schemaVersion(db: SqliteDatabase, tablePrefix: string = DEFAULT_TABLE_PREFIX): number {
  const t = tablesOf(tablePrefix);
  if (!tableExists(db, t.schema)) return 0;
  const row = db.prepare(`SELECT value FROM ${t.schema} WHERE key = 'version'`).get() as { value: number } | undefined;
  return row?.value ?? 0;
}
