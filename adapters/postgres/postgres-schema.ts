import { InvalidInputError } from '../../src/index.js';
import { connectorOf, type Connection, type Connector, type PostgresClient } from './postgres-client.js';
import { storeError } from './postgres-errors.js';
import { retentionFunctions, retentionTables } from './postgres-retention.js';

/**
 * The schema the store uses when the app names none: no app table can collide with it.
 *
 * @example
 * ```ts
 * new PostgresStore({ client: pool }).schema === DEFAULT_SCHEMA; // 'stock_ledger'
 * ```
 */
export const DEFAULT_SCHEMA = 'stock_ledger';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The schema name, checked: lower-case letters, digits and `_`, at most 63 characters, not
 * starting with a digit (so it needs no quoting rules and cannot inject SQL).
 *
 * @example
 * ```ts
 * checkSchema(undefined); // 'stock_ledger'
 * ```
 */
export function checkSchema(value: unknown): string {
  if (value === undefined) return DEFAULT_SCHEMA;
  if (typeof value !== 'string' || !SCHEMA_NAME.test(value) || value.startsWith('pg_')) {
    throw new InvalidInputError('schema', 'must be 1 to 63 of [a-z0-9_], not starting with a digit or pg_');
  }
  return value;
}

/**
 * The advisory-lock key space of one ledger: `(key, 1)` serializes the entry sequencer,
 * `(key, 2)` migrations. Derived from the schema name, so two ledgers on one server never
 * wait for each other (a hash collision only makes them share a lock).
 */
export function lockKey(schema: string): number {
  let h = 0x811c9dc5;
  for (const ch of `stock-ledger:${schema}`) h = Math.imul(h ^ (ch.codePointAt(0) as number), 0x01000193);
  return h | 0;
}

/**
 * The sequencer as one function, so that numbering costs one round trip: it takes the
 * ledger's sequencer lock, then numbers committed entries that have no seq, in (op, pos)
 * order, contiguously from the highest seq, in bounded statements. Each statement of a
 * volatile function takes a new snapshot under READ COMMITTED, so it sees every commit made
 * before the lock was granted.
 *
 * With \`wait\` it waits for the lock and runs in autocommit (it refuses other isolation levels
 * with 0A000; the store then runs it in a READ COMMITTED transaction of its own). Without, it
 * is called by a store-owned transaction right before its last write: it takes the lock only
 * if it is free (else returns null, and the store runs the sequencer after its commit), numbers
 * what waits (the transaction's earlier writes included), and returns the highest seq, from
 * which that last write numbers its own entries as it inserts them; the lock is then held only
 * for that statement and the COMMIT flush.
 * Returns the highest seq and the seqs of the entries of the ops in \`mine\` (a JSON array).
 * \`compacted\`: from schema version 8 on, the highest seq is never below the compaction horizon
 * (compaction may have removed every entry up to it; a seq must never be handed out twice).
 */
function sequencerFunction(s: string, compacted: boolean): string {
  return `
  CREATE OR REPLACE FUNCTION ${s}.number_entries(batch int, rounds int, mine text, wait boolean) RETURNS text LANGUAGE plpgsql AS $fn$
  DECLARE
    last bigint;
    done int;
    total int := 0;
    ops bigint[] := ARRAY(SELECT value::bigint FROM json_array_elements_text(mine::json));
  BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
      RAISE EXCEPTION 'stock-ledger sequencer needs READ COMMITTED' USING ERRCODE = '0A000';
    END IF;
    IF wait THEN
      -- A caller whose entries another run already numbered (before the lock, or while it
      -- waited for it) has nothing to do: it writes nothing, so it waits for no flush, and
      -- only one caller per wave of commits numbers the wave.
      IF cardinality(ops) > 0 AND NOT EXISTS (SELECT 1 FROM ${s}.entries WHERE op = ANY(ops) AND seq IS NULL) THEN
        RETURN ${s}.numbered_reply(0, ops);
      END IF;
      PERFORM pg_advisory_xact_lock(${lockKey(s)}, 1);
      IF cardinality(ops) > 0 AND NOT EXISTS (SELECT 1 FROM ${s}.entries WHERE op = ANY(ops) AND seq IS NULL) THEN
        RETURN ${s}.numbered_reply(0, ops);
      END IF;
    ELSIF NOT pg_try_advisory_xact_lock(${lockKey(s)}, 1) THEN
      RETURN NULL;
    END IF;
    FOR i IN 1..rounds LOOP
      SELECT ${highestSeq(s, compacted)} INTO last;
      WITH todo AS (SELECT op, pos, row_number() OVER (ORDER BY op, pos) AS n FROM ${s}.entries WHERE seq IS NULL ORDER BY op, pos LIMIT batch)
      UPDATE ${s}.entries e SET seq = last + todo.n FROM todo WHERE e.op = todo.op AND e.pos = todo.pos;
      GET DIAGNOSTICS done = ROW_COUNT;
      total := total + done;
      EXIT WHEN done < batch;
    END LOOP;
    RETURN ${s}.numbered_reply(total, ops);
  END
  $fn$;`;
}

/**
 * The highest seq handed out, as one SQL expression: the highest kept, or (version 8 on) the
 * compaction horizon when that is higher, both read in one snapshot.
 */
function highestSeq(s: string, compacted: boolean): string {
  const kept = `(SELECT COALESCE(max(seq), 0) FROM ${s}.entries)`;
  return compacted ? `GREATEST(${kept}, (SELECT through FROM ${s}.compaction WHERE id = 1))` : kept;
}

/** The sequencer's reply: how many it numbered, the highest seq, and the seqs of the entries of `ops`. */
function numberedReplyFunction(s: string, compacted: boolean): string {
  return `
  CREATE OR REPLACE FUNCTION ${s}.numbered_reply(total int, ops bigint[]) RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT json_build_object('numbered', total, 'last', ${highestSeq(s, compacted)},
      'seqs', (SELECT COALESCE(json_agg(json_build_object('op', op, 'pos', pos, 'seq', seq)), '[]')
        FROM ${s}.entries WHERE op = ANY(ops) AND seq IS NOT NULL))::text
  $fn$;`;
}

/** Migrations in order; index + 1 is the schema version they lead to. `S` is the schema. */
const MIGRATIONS: ReadonlyArray<(s: string) => string> = [
  (s) => `
  CREATE TABLE ${s}.levels (
    sku text COLLATE "C" PRIMARY KEY,
    on_hand bigint NOT NULL,
    reserved bigint NOT NULL CHECK (reserved >= 0),
    version bigint NOT NULL,
    CHECK (on_hand >= reserved)
  );
  -- One row per entry. (op, pos) orders the entries of a SKU as its versions: op is taken from
  -- ops while the writer holds the lock of every SKU it writes. seq is set after commit by the
  -- sequencer, contiguously, in (op, pos) order.
  CREATE SEQUENCE ${s}.ops;
  CREATE TABLE ${s}.entries (
    op bigint NOT NULL,
    pos integer NOT NULL,
    seq bigint UNIQUE,
    request_id text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    sku text COLLATE "C" NOT NULL,
    on_hand_delta bigint NOT NULL,
    reserved_delta bigint NOT NULL,
    on_hand_after bigint NOT NULL,
    reserved_after bigint NOT NULL,
    version_after bigint NOT NULL,
    at bigint NOT NULL,
    meta text,
    PRIMARY KEY (op, pos)
  );
  CREATE INDEX entries_unnumbered ON ${s}.entries (op, pos) WHERE seq IS NULL;
  CREATE INDEX entries_by_sku ON ${s}.entries (sku, seq);
  CREATE INDEX entries_by_request ON ${s}.entries (request_id, kind);
  -- The outcome of a request is not stored: it is rebuilt from its entries (each carries the
  -- SKU's version after it) and, for a reserve, its reservation row.
  CREATE TABLE ${s}.requests (
    request_id text COLLATE "C" PRIMARY KEY,
    kind text NOT NULL,
    fingerprint text NOT NULL,
    at bigint NOT NULL
  );
  CREATE TABLE ${s}.reversals (
    of_request text COLLATE "C" NOT NULL,
    sku text COLLATE "C" NOT NULL,
    qty bigint NOT NULL CHECK (qty > 0),
    PRIMARY KEY (of_request, sku)
  );
  CREATE TABLE ${s}.reservations (
    id text COLLATE "C" PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    lines text NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL,
    committed text,
    meta text
  );
  CREATE TABLE ${s}.holds (
    reservation_id text COLLATE "C" NOT NULL,
    sku text COLLATE "C" NOT NULL,
    qty bigint NOT NULL CHECK (qty > 0),
    expires_at bigint NOT NULL,
    PRIMARY KEY (reservation_id, sku)
  );
  CREATE INDEX holds_by_sku ON ${s}.holds (sku, expires_at, reservation_id);
  CREATE INDEX holds_by_expiry ON ${s}.holds (expires_at, reservation_id, sku);
  ${numberedReplyFunction(s, false)}
  ${sequencerFunction(s, false)}
  `,
  // Version 2: a sequencer call whose entries are already numbered returns without numbering
  // (one writer per wave of commits instead of one per commit).
  (s) => `${numberedReplyFunction(s, false)}
  ${sequencerFunction(s, false)}`,
  // Version 3: extend moves expires_at; the expiry a reservation was made with stays here
  // (null until the first extend), for its reserve's replay.
  (s) => `ALTER TABLE ${s}.reservations ADD COLUMN first_expires_at bigint;`,
  // Version 4: a policy per SKU (setPolicy). A backorder lets on_hand go below reserved, even
  // below 0: the check becomes available >= 0 (levels_check is the name PostgreSQL gave the
  // inline check of version 1). Each entry keeps the policy right after it, as it keeps the
  // counters, so replays rebuild levels with the policy as it stood then; old rows had none.
  (s) => `
  ALTER TABLE ${s}.levels DROP CONSTRAINT levels_check,
    ADD COLUMN backorder_max bigint NOT NULL DEFAULT 0 CHECK (backorder_max >= 0),
    ADD COLUMN low_stock_at bigint CHECK (low_stock_at >= 0),
    ADD CONSTRAINT levels_available CHECK (on_hand - reserved + backorder_max >= 0);
  ALTER TABLE ${s}.entries ADD COLUMN backorder_max_after bigint NOT NULL DEFAULT 0, ADD COLUMN low_stock_at_after bigint;`,
  // Version 5: purchase limits. The policy gains buyer_max (null: no limit), kept after each
  // entry like the rest of the policy. Entries and reservations name their buyer (stored
  // escaped like every key; null: none). buyer_totals keeps what each buyer holds plus has
  // bought of a SKU, one row per (sku, buyer) in separate columns (no two pairs can share a
  // row), only while it is above 0. It is written under the SKU's level row lock, like the
  // level; a total belongs to a SKU the ledger knows, and goes with its level row.
  (s) => `
  ALTER TABLE ${s}.levels ADD COLUMN buyer_max bigint CHECK (buyer_max >= 0);
  ALTER TABLE ${s}.entries ADD COLUMN buyer_max_after bigint, ADD COLUMN buyer text COLLATE "C";
  ALTER TABLE ${s}.reservations ADD COLUMN buyer text COLLATE "C";
  CREATE TABLE ${s}.buyer_totals (
    sku text COLLATE "C" NOT NULL REFERENCES ${s}.levels (sku) ON DELETE CASCADE,
    buyer text COLLATE "C" NOT NULL,
    qty bigint NOT NULL CHECK (qty > 0),
    PRIMARY KEY (sku, buyer)
  );`,
  // Version 6: anyOf lines. Which SKUs served each line of a deduct or reserve that had one is
  // a choice the entries do not show (two lines may share a SKU), so it is stored with the
  // request, as JSON text (null: the request had no anyOf line), for its replays.
  (s) => `ALTER TABLE ${s}.requests ADD COLUMN allocations text;`,
  // Version 7: carts that change (amend). An amend entry carries the amend's own request id and
  // the id of the reservation whose hold it moves (escaped; null on every other entry), so the
  // verify fold groups holds by it. The reservation as the amend left it is stored with the
  // request, as JSON text (null but on amends): later amends and commits change the record,
  // and the amend's replays show it as it was. Only nullable columns: every row stays valid.
  (s) => `
  ALTER TABLE ${s}.entries ADD COLUMN reservation_id text COLLATE "C";
  ALTER TABLE ${s}.requests ADD COLUMN amended text;`,
  // Version 8: retention. Compaction removes old entries and records, leaving per-SKU
  // checkpoints and the feed's horizon (see postgres-retention.ts). The sequencer then numbers
  // from the horizon when every entry up to it is gone: a seq is never handed out twice.
  (s) => `${retentionTables(s)}
  ${numberedReplyFunction(s, true)}
  ${sequencerFunction(s, true)}
  ${retentionFunctions(s)}`,
];

/**
 * The schema version this code writes.
 *
 * @example
 * ```ts
 * if ((await schemaVersion({ client: pool })) < SCHEMA_VERSION) await migrate({ client: pool });
 * ```
 */
export const SCHEMA_VERSION = MIGRATIONS.length;

async function recordedVersion(connection: Pick<Connection, 'query'>, schema: string): Promise<number> {
  const rows = await connection.query(
    `SELECT CASE WHEN to_regclass($1::text) IS NULL THEN 0 ELSE (SELECT 1) END AS present`,
    [`${schema}.schema_version`],
  );
  if (Number(rows[0]?.['present'] ?? 0) === 0) return 0;
  const version = await connection.query(`SELECT version FROM ${schema}.schema_version WHERE id = 1`);
  return Number(version[0]?.['version'] ?? 0);
}

/**
 * Creates or migrates the store's schema to {@link SCHEMA_VERSION}, in one transaction under
 * an advisory lock, so several processes starting at once migrate it exactly once. A current
 * schema is only read. A schema newer than this code is refused with `INVALID_INPUT`.
 * `PostgresStore` calls it before its first operation; teams that run migrations themselves
 * call it from their migration step (and may then pass `migrate: false` to the store).
 *
 * @example
 * ```ts
 * import { migrate } from 'stock-ledger/postgres';
 * await migrate({ client: pool, schema: 'shop_1' });
 * ```
 */
export async function migrate(options: { client: PostgresClient; schema?: string }): Promise<number> {
  const schema = checkSchema(options.schema);
  const connector = connectorOf(options.client);
  try {
    return await migrateWith(connector, schema);
  } catch (error) {
    throw storeError(error, 'PostgreSQL migration');
  }
}

/**
 * {@link migrate} through the store's connector. `target` (default {@link SCHEMA_VERSION})
 * stops at an earlier version: tests build the schema an older release left, to upgrade it.
 */
export async function migrateWith(connector: Connector, schema: string, target = SCHEMA_VERSION): Promise<number> {
  if ((await recordedVersion(connector, schema)) === target) return target;
  return connector.transaction(async (connection) => {
    await connection.query('SELECT pg_advisory_xact_lock($1::int, 2)', [lockKey(schema)]);
    await connection.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await connection.query(`CREATE TABLE IF NOT EXISTS ${schema}.schema_version (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)`);
    const current = await recordedVersion(connection, schema);
    if (current > SCHEMA_VERSION) {
      throw new InvalidInputError('schema', `${schema} has stock-ledger schema version ${current}; this code knows up to ${SCHEMA_VERSION}: upgrade stock-ledger`);
    }
    if (current >= target) return { value: current, commit: false };
    for (let version = current + 1; version <= target; version += 1) {
      await connection.query((MIGRATIONS[version - 1] as (s: string) => string)(schema));
    }
    await connection.query(
      `INSERT INTO ${schema}.schema_version (id, version) VALUES (1, $1::int) ON CONFLICT (id) DO UPDATE SET version = excluded.version`,
      [target],
    );
    return { value: target, commit: true };
  }, null);
}

/**
 * The recorded schema version of a ledger (0 when it was never created).
 *
 * @example
 * ```ts
 * await schemaVersion({ client: pool }); // 1
 * ```
 */
export async function schemaVersion(options: { client: PostgresClient; schema?: string }): Promise<number> {
  const schema = checkSchema(options.schema);
  const connector = connectorOf(options.client);
  try {
    return await recordedVersion(connector, schema);
  } catch (error) {
    throw storeError(error, 'PostgreSQL');
  }
}
