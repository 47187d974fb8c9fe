import { InvalidInputError } from '../../src/index.js';
import type { SqliteDatabase } from './sqlite-database.js';

/**
 * Schema migrations, in order; the index + 1 is the schema version they lead to. The version
 * is recorded in the store's own table (not `user_version`, which belongs to the app when it
 * hands its own database in).
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE stock_levels (
    sku TEXT PRIMARY KEY NOT NULL,
    on_hand INTEGER NOT NULL CHECK (on_hand >= reserved),
    reserved INTEGER NOT NULL CHECK (reserved >= 0),
    version INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE stock_entries (
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
  CREATE INDEX stock_entries_by_sku ON stock_entries (sku, seq);
  CREATE TABLE stock_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE stock_reversals (
    of_request TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (of_request, sku)
  ) WITHOUT ROWID;
  `,
  `
  CREATE TABLE stock_reservations (
    id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    lines TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    committed TEXT,
    meta TEXT,
    outcome TEXT
  );
  CREATE TABLE stock_holds (
    reservation_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, sku)
  ) WITHOUT ROWID;
  CREATE INDEX stock_holds_by_sku ON stock_holds (sku, expires_at, reservation_id);
  CREATE INDEX stock_holds_by_expiry ON stock_holds (expires_at, reservation_id, sku);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the schema up to {@link SCHEMA_VERSION} in one `BEGIN IMMEDIATE` transaction, so
 * several processes opening one file at once migrate it exactly once. A current schema is
 * only read, so opening takes no write lock.
 */
export function migrate(db: SqliteDatabase): void {
  if (schemaVersion(db) === SCHEMA_VERSION) return;
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS stock_ledger_schema (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)');
    const row = db.prepare("SELECT value FROM stock_ledger_schema WHERE key = 'version'").get() as { value: number } | undefined;
    const current = row?.value ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new InvalidInputError('database', `has stock-ledger schema version ${current}; this code knows up to ${SCHEMA_VERSION}: upgrade stock-ledger`);
    }
    for (let version = current + 1; version <= SCHEMA_VERSION; version += 1) db.exec(MIGRATIONS[version - 1] as string);
    db.prepare("INSERT INTO stock_ledger_schema (key, value) VALUES ('version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(SCHEMA_VERSION);
  }).immediate();
}

/** The recorded schema version (0 for a database the store never opened). */
export function schemaVersion(db: SqliteDatabase): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stock_ledger_schema'").get();
  if (exists === undefined) return 0;
  const row = db.prepare("SELECT value FROM stock_ledger_schema WHERE key = 'version'").get() as { value: number } | undefined;
  return row?.value ?? 0;
}
