import type { CompactQuery, CompactStep, LevelsQueryOfStore, StoredLevelsPage } from '../../src/store-kit.js';
import { levelAsOf } from '../../src/store-kit.js';
import type { Connector } from './postgres-client.js';
import { countersOf, decodeKey, ENTRY_JSON, int, str, type LevelJson } from './postgres-codec.js';
import { isRetryableConflict } from './postgres-errors.js';
import type { Statements } from './postgres-sql.js';

/*
 * Retention (schema version 8): compaction in bounded atomic steps, the checkpoints it leaves
 * per SKU, the feed's horizon, and a paged listing of levels.
 */

/**
 * Tables and indexes of version 8. A SKU's checkpoint is what its removed entries folded to
 * (counters; per reservation, the held units; per buyer, what was taken): verify adds it to
 * the fold of the entries kept. Holds and buyers keep only non-zero sums. `compaction` holds
 * the horizon, the highest seq removed: its row is also the lock that runs steps one at a time.
 */
export function retentionTables(s: string): string {
  return `
  CREATE TABLE ${s}.checkpoints (
    sku text COLLATE "C" PRIMARY KEY,
    on_hand bigint NOT NULL,
    reserved bigint NOT NULL,
    version bigint NOT NULL
  );
  CREATE TABLE ${s}.checkpoint_holds (
    sku text COLLATE "C" NOT NULL,
    reservation_id text COLLATE "C" NOT NULL,
    qty bigint NOT NULL CHECK (qty <> 0),
    PRIMARY KEY (sku, reservation_id)
  );
  CREATE TABLE ${s}.checkpoint_buyers (
    sku text COLLATE "C" NOT NULL,
    buyer text COLLATE "C" NOT NULL,
    qty bigint NOT NULL CHECK (qty <> 0),
    PRIMARY KEY (sku, buyer)
  );
  CREATE TABLE ${s}.compaction (id int PRIMARY KEY CHECK (id = 1), through bigint NOT NULL CHECK (through >= 0));
  INSERT INTO ${s}.compaction (id, through) VALUES (1, 0);
  -- A reserve's entries may go while its request record stays (until the reservation's end
  -- goes): the record then keeps them, as JSON text, for its replays.
  ALTER TABLE ${s}.requests ADD COLUMN kept_entries text;
  -- Closed ids go oldest first, without a scan of every request; an entry's pin and what a step
  -- locks look entries up by the reservation an amend names.
  CREATE INDEX requests_closed ON ${s}.requests (at) WHERE kind = 'revoke';
  CREATE INDEX entries_by_reservation ON ${s}.entries (reservation_id) WHERE reservation_id IS NOT NULL;`;
}

/**
 * The walk, as one SQL function: at most `lim` numbered entries after seq `from_seq`, in seq
 * order (entries not yet numbered have no seq: never walked), each with whether it must stay
 * and the level rows its removal must hold locked. It stays when it is not older than the
 * cutoff, or its reservation (an amend's `reservation_id`, else the request id of a reserve,
 * commit, release or expire entry) is still recorded and not settled (held, or a live hold).
 * Its removal needs its own SKU and, when it may take records with it (every kind but
 * reserve: its own request, or a reservation it ends), every SKU of that id's entries and
 * reversal tallies: whoever could write for that id (a reverse) locks one of them, and so
 * either commits before the step reads or reads what the step left.
 */
function walkFunction(s: string): string {
  return `
  CREATE OR REPLACE FUNCTION ${s}.compact_walk(from_seq bigint, cutoff bigint, lim int)
  RETURNS TABLE (wseq bigint, stays boolean, needs text[]) LANGUAGE sql STABLE AS $fn$
    SELECT w.seq,
      w.at >= cutoff OR EXISTS (SELECT 1 FROM ${s}.reservations v WHERE v.id = w.rid
        AND (v.state = 'held' OR EXISTS (SELECT 1 FROM ${s}.holds h WHERE h.reservation_id = v.id))),
      CASE WHEN w.kind = 'reserve' THEN ARRAY[w.sku::text] ELSE ARRAY(
        SELECT w.sku::text UNION SELECT e.sku FROM ${s}.entries e WHERE e.request_id = w.request_id
        UNION SELECT e.sku FROM ${s}.entries e WHERE e.reservation_id = w.request_id
        UNION SELECT t.sku FROM ${s}.reversals t WHERE t.of_request = w.request_id) END
    FROM (SELECT e.seq, e.sku, e.kind, e.request_id, e.at,
        COALESCE(e.reservation_id, CASE WHEN e.kind IN ('reserve', 'commit', 'release', 'expire') THEN e.request_id END) AS rid
      FROM ${s}.entries e WHERE e.seq > from_seq ORDER BY e.seq LIMIT lim) w
    ORDER BY w.seq
  $fn$;`;
}

/**
 * Folds the entries with seq in (`from_seq`, `upto`] into their SKUs' checkpoints. Holds and
 * buyers: the new sum is upserted, or its row deleted at 0 (one statement writes a row once).
 */
function foldSql(s: string): string {
  const range = 'e.seq > from_seq AND e.seq <= upto';
  const merge = (table: string, key: string, select: string, where: string): string => `
    WITH d AS (SELECT e.sku, ${select} FROM ${s}.entries e WHERE ${range} AND ${where} GROUP BY 1, 2),
    m AS (SELECT d.sku, d.k, COALESCE(c.qty, 0) + d.q AS q FROM d LEFT JOIN ${s}.${table} c ON c.sku = d.sku AND c.${key} = d.k),
    up AS (INSERT INTO ${s}.${table} AS c (sku, ${key}, qty) SELECT m.sku, m.k, m.q FROM m WHERE m.q <> 0
      ON CONFLICT (sku, ${key}) DO UPDATE SET qty = excluded.qty RETURNING 1)
    DELETE FROM ${s}.${table} c USING m WHERE m.q = 0 AND c.sku = m.sku AND c.${key} = m.k;`;
  return `
    INSERT INTO ${s}.checkpoints AS c (sku, on_hand, reserved, version)
      SELECT e.sku, sum(e.on_hand_delta), sum(e.reserved_delta), count(*) FROM ${s}.entries e WHERE ${range} GROUP BY e.sku
      ON CONFLICT (sku) DO UPDATE SET on_hand = c.on_hand + excluded.on_hand, reserved = c.reserved + excluded.reserved, version = c.version + excluded.version;
    ${merge('checkpoint_holds', 'reservation_id', 'COALESCE(e.reservation_id, e.request_id) AS k, sum(e.reserved_delta) AS q', 'e.reserved_delta <> 0')}
    ${merge('checkpoint_buyers', 'buyer', 'e.buyer AS k, sum(e.reserved_delta - e.on_hand_delta) AS q', 'e.buyer IS NOT NULL')}`;
}

/**
 * What the entries in (`from_seq`, `upto`] take with them. A reserve's request record that
 * stays first keeps a copy of its entries. Each own request (restock, deduct, adjust,
 * reverse, policy, amend) goes, with its reversal tally; each settled reservation a commit,
 * release or expire entry ends goes, with its reserve's request record and its reversal
 * tally. Records are matched by time too: an id applied anew after an earlier step removed
 * its record is another request (made later than the entry), and stays.
 */
function dropRecordsSql(s: string): string {
  const range = 'e.seq > from_seq AND e.seq <= upto';
  return `
    UPDATE ${s}.requests r SET kept_entries = (SELECT json_agg(${ENTRY_JSON} ORDER BY e.op, e.pos)::text
        FROM ${s}.entries e WHERE e.request_id = r.request_id AND e.kind = 'reserve')
      FROM (SELECT DISTINCT e.request_id AS id, e.at FROM ${s}.entries e WHERE ${range} AND e.kind = 'reserve') y
      WHERE r.request_id = y.id AND r.kind = 'reserve' AND r.at = y.at AND r.kept_entries IS NULL;
    WITH y AS (SELECT DISTINCT e.request_id AS id, e.kind, e.at FROM ${s}.entries e WHERE ${range} AND e.kind <> 'reserve'),
      dq AS (DELETE FROM ${s}.requests r USING y WHERE y.kind NOT IN ('commit', 'release', 'expire') AND r.request_id = y.id
        AND r.kind = y.kind AND r.at = y.at AND r.request_id = ANY(ARRAY(SELECT id FROM y)) RETURNING r.request_id),
      dv AS (DELETE FROM ${s}.reservations v USING y WHERE y.kind IN ('commit', 'release', 'expire') AND v.id = y.id AND v.created_at <= y.at
        AND v.state <> 'held' AND NOT EXISTS (SELECT 1 FROM ${s}.holds h WHERE h.reservation_id = v.id)
        AND v.id = ANY(ARRAY(SELECT id FROM y)) RETURNING v.id, v.created_at),
      dr AS (DELETE FROM ${s}.requests r USING dv WHERE r.request_id = dv.id AND r.kind = 'reserve' AND r.at = dv.created_at
        AND r.request_id = ANY(ARRAY(SELECT id FROM dv)) RETURNING r.request_id),
      dt AS (DELETE FROM ${s}.reversals t WHERE t.of_request = ANY(ARRAY(SELECT request_id FROM dq UNION SELECT id FROM dv)) RETURNING 1)
    SELECT (SELECT count(*) FROM dq) + (SELECT count(*) FROM dr), (SELECT count(*) FROM dv) INTO n_requests, n_reservations;`;
}

/**
 * One compaction step as one function (one round trip, so locks are held for the step's
 * statements only), in the caller's READ COMMITTED transaction; each statement reads a new
 * snapshot.
 *
 * 1. The horizon row, locked: steps run one at a time, each after the last one's commit.
 * 2. The walk as it stands, and the level rows that would need: the head entry's are waited
 *    for (in SKU order, like every writer; bounded by lock_timeout), the rest taken only when
 *    free (SKIP LOCKED): a step never waits while holding many rows. The rows it holds are
 *    rewritten unchanged, so a writer that read before this commits and waited for one of
 *    them sees the row changed and reads again (the lock-and-load's staleness check).
 * 3. The walk again, now that the rows are held, cut at the first entry that stays or needs a
 *    row the step could not take; what is before the cut is folded and deleted, with its
 *    records, and the horizon moves to its last seq.
 * 4. Closed ids (revoke records) older than the cutoff, at most `lim`.
 */
function stepFunction(s: string): string {
  return `
  CREATE OR REPLACE FUNCTION ${s}.compact_step(cutoff bigint, lim int) RETURNS text LANGUAGE plpgsql AS $fn$
  DECLARE
    from_seq bigint;
    upto bigint;
    head text[];
    need text[];
    got text[] := '{}';
    walked int;
    cut bigint;
    pinned boolean;
    n_entries int := 0;
    n_requests int := 0;
    n_reservations int := 0;
    n_closed int := 0;
  BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
      RAISE EXCEPTION 'stock-ledger compaction needs READ COMMITTED' USING ERRCODE = '0A000';
    END IF;
    SELECT c.through INTO from_seq FROM ${s}.compaction c WHERE c.id = 1 FOR UPDATE;
    WITH w AS (SELECT * FROM ${s}.compact_walk(from_seq, cutoff, lim)),
    p AS (SELECT * FROM w WHERE NOT EXISTS (SELECT 1 FROM w x WHERE x.stays AND x.wseq <= w.wseq))
    SELECT (SELECT p.needs FROM p ORDER BY p.wseq LIMIT 1), ARRAY(SELECT DISTINCT unnest(p.needs) FROM p) INTO head, need;
    IF head IS NOT NULL THEN
      PERFORM l.sku FROM ${s}.levels l WHERE l.sku = ANY(head) ORDER BY l.sku FOR UPDATE;
      SELECT head || COALESCE(array_agg(k.sku), '{}') INTO got FROM (SELECT l.sku::text AS sku FROM ${s}.levels l
        WHERE l.sku = ANY(need) AND l.sku <> ALL(head) ORDER BY l.sku FOR UPDATE SKIP LOCKED) k;
      UPDATE ${s}.levels l SET version = l.version WHERE l.sku = ANY(got);
    END IF;
    WITH w AS (SELECT * FROM ${s}.compact_walk(from_seq, cutoff, lim)),
    c AS (SELECT count(*) AS n, min(w.wseq) FILTER (WHERE w.stays OR NOT w.needs <@ got) AS at_seq FROM w)
    SELECT c.n, c.at_seq, (SELECT w.stays FROM w WHERE w.wseq = c.at_seq),
      COALESCE((SELECT max(w.wseq) FROM w WHERE c.at_seq IS NULL OR w.wseq < c.at_seq), from_seq)
    INTO walked, cut, pinned, upto FROM c;
    IF upto > from_seq THEN
      ${foldSql(s)}
      ${dropRecordsSql(s)}
      DELETE FROM ${s}.entries e WHERE e.seq > from_seq AND e.seq <= upto;
      GET DIAGNOSTICS n_entries = ROW_COUNT;
      UPDATE ${s}.compaction c SET through = upto WHERE c.id = 1;
    END IF;
    DELETE FROM ${s}.requests r WHERE r.kind = 'revoke' AND r.request_id = ANY(ARRAY(
      SELECT q.request_id FROM ${s}.requests q WHERE q.kind = 'revoke' AND q.at < cutoff ORDER BY q.at LIMIT lim));
    GET DIAGNOSTICS n_closed = ROW_COUNT;
    RETURN json_build_object('requests', n_requests + n_closed, 'reservations', n_reservations, 'entries', n_entries, 'through', upto,
      'more', (cut IS NULL AND walked = lim) OR (cut IS NOT NULL AND NOT pinned) OR n_closed = lim)::text;
  END
  $fn$;`;
}

/** The functions of version 8 (the tables must exist: SQL function bodies are checked when created). */
export function retentionFunctions(s: string): string {
  return `${walkFunction(s)}
  ${stepFunction(s)}`;
}

/** Attempts of a step that lost a deadlock (it locks level rows, as writers do). */
const STEP_ATTEMPTS_MAX = 8;
const BACKOFF_MS_MAX = 20;

/**
 * One compaction step in a transaction of its own; run again after a deadlock or a
 * serialization failure (bounded, with jitter). A lock wait past the store's lock timeout
 * surfaces (as `STORE_UNAVAILABLE`, once mapped by the caller): the ledger retries it.
 *
 * @example
 * ```ts
 * const step = await compactStep(connector, statements('stock_ledger'), { before, limit: 1000, now }, 5000);
 * ```
 */
export async function compactStep(connector: Connector, sql: Statements, query: CompactQuery, lockTimeoutMs: number): Promise<CompactStep> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await connector.transaction(async (connection) => {
        const rows = await connection.query(sql.compact, [query.before, query.limit]);
        const step = stepOf(JSON.parse(str(rows[0]?.['j'], 'compaction step')) as StepJson);
        // Nothing removed: roll back (the horizon row's lock needs no commit flush).
        return { value: step, commit: step.requests + step.entries > 0 };
      }, lockTimeoutMs);
    } catch (error) {
      if (!isRetryableConflict(error) || attempt >= STEP_ATTEMPTS_MAX) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(BACKOFF_MS_MAX, 2 ** attempt)));
    }
  }
}

interface StepJson {
  requests: number; reservations: number; entries: number; through: number | string; more: boolean;
}

function stepOf(step: StepJson): CompactStep {
  return {
    requests: int(step.requests, 'requests removed'), reservations: int(step.reservations, 'reservations removed'),
    entries: int(step.entries, 'entries removed'), compactedThrough: int(step.through, 'compaction horizon'), more: step.more,
  };
}

/** A page of levels as the levels statement returns it: rows with their due holds, and the last SKU looked at. */
export interface LevelsJson {
  next: string | null;
  levels: Array<LevelJson & { dq: number | string; dn: number | string }>;
}

/**
 * The page as of `now` (due holds count as expired), filtered exactly: the statement kept the
 * rows whose stored `available` passes, a superset (due holds only raise it).
 *
 * @example
 * ```ts
 * const page = levelsPageOf(JSON.parse(reply), { after: null, limit: 100, availableAtMost: 5, now });
 * ```
 */
export function levelsPageOf(data: LevelsJson, query: LevelsQueryOfStore): StoredLevelsPage {
  const most = query.availableAtMost;
  const levels = data.levels
    .map((row) => levelAsOf(decodeKey(row.s), countersOf(row), { qty: int(row.dq, 'due qty'), count: int(row.dn, 'due count') }))
    .filter((level) => most === null || level.available <= most);
  return { levels, next: data.next === null ? null : decodeKey(data.next) };
}
