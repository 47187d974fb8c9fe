import { ENTRY_JSON, levelFields } from './postgres-codec.js';

/**
 * Every statement of the store, built once per schema. Lists travel as one JSON text
 * parameter each (`$n::text::json`), so both drivers send them alike and no array typing
 * is involved; replies that carry more than scalars come back as one JSON text column.
 */
export interface Statements {
  /** Unlocked reads that tell which SKUs commands will touch: reservation lines and buyers, originals' SKUs, due holds anywhere. */
  plan: string;
  /**
   * Locks levels (sorted) and, in the same statement, loads what decide reads, with a snapshot
   * check: each row's version and xmin as locked and as the load's snapshot saw it.
   */
  lockAndLoad: string;
  /** Creates missing level rows, locking every row named, in sorted order. */
  ensureLevels: string;
  /** Writes one flush of decided writes; returns the op it took. */
  flush: string;
  /** Runs the sequencer function: waiting for its lock ($4 true, autocommit) or only if it is free ($4 false). */
  numberEntries: string;
  /** After a sweep: whether due holds are left ($1 its time), and whether one sorts before the last it took ($2-$4). */
  sweepLeft: string;
  /** Whether any committed entry has no seq yet. */
  anyUnnumbered: string;
  stocks: string;
  entries: string;
  entriesOfSku: string;
  request: string;
  reservation: string;
  holds: string;
  /** Per SKU ($2, a JSON list), the total of buyer $1 as stored, less its holds due by $3 (reads count them as expired). */
  buyerTotals: string;
  verifyChunk: string;
  /** One compaction step ($1 the cutoff, $2 the limit): the step's JSON reply (see postgres-retention.ts). */
  compact: string;
  /** The horizon: the highest seq compaction removed. */
  compactedThrough: string;
  /** A page of levels: $1 after (escaped; '' for the first), $2 SKUs per page, $3 availableAtMost (null: all), $4 now. */
  levels: string;
}

/**
 * `= ANY(...)` over a JSON list parameter: an array, so the planner probes the index once per
 * key (an IN over a set-returning function can turn into a scan of the whole table).
 */
const anyOf = (n: number): string => `ANY(ARRAY(SELECT value FROM json_array_elements_text($${n}::text::json)))`;

/** Entries of one request id and kind as a JSON array, in (op, pos) order. */
const entriesOf = (s: string, id: string, kind: string): string =>
  `(SELECT COALESCE(json_agg(${ENTRY_JSON} ORDER BY e.op, e.pos), '[]') FROM ${s}.entries e WHERE e.request_id = ${id} AND e.kind = ${kind})`;

// A reserve whose entries compaction removed keeps them with its record (kept_entries, schema 8).
const requestJson = (s: string): string =>
  `json_build_object('id', r.request_id, 'k', r.kind, 'f', r.fingerprint, 'at', r.at, 'a', r.allocations, 'am', r.amended, ` +
  `'e', COALESCE(r.kept_entries::json, ${entriesOf(s, 'r.request_id', 'r.kind')}))`;

const reservationJson = (s: string): string =>
  `json_build_object('id', v.id, 'st', v.state, 'l', v.lines, 'xp', v.expires_at, 'fx', v.first_expires_at, 'c', v.created_at, 'cm', v.committed, 'm', v.meta, 'b', v.buyer, ` +
  `'h', (SELECT COALESCE(json_agg(h.sku ORDER BY h.sku), '[]') FROM ${s}.holds h WHERE h.reservation_id = v.id), ` +
  `'e', CASE v.state WHEN 'committed' THEN ${entriesOf(s, 'v.id', "'commit'")} WHEN 'released' THEN ${entriesOf(s, 'v.id', "'release'")} END)`;

const holdJson = "json_build_object('s', sku, 'r', reservation_id, 'xp', expires_at)";

/**
 * The load part: $2 request ids, $3 reservation ids, $4 SKUs whose due holds to load (besides
 * newly locked ones with reserved units), $5 ids whose reversal tallies to load, $6 the horizon
 * (latest `at` of the commands), $7 due holds per SKU to fetch, $8 due holds anywhere to fetch,
 * $9 (SKU, buyer) pairs whose buyer totals to load.
 *
 * Buyer totals come for the pairs asked, and for the pairs the loaded requests and reservations
 * will move (a deduct's, reserve's or commit's entries name them: a reverse gives back to that
 * buyer; a reservation's holds with its buyer: a commit, a release or an expiry gives back, and
 * an amend may have added SKUs its reserve never had), so those need no round of their own.
 * Each pair comes with its total (0 when no row): the view keeps only pairs of SKUs the
 * transaction holds locked.
 */
function load(s: string, newlyHeld: string): string {
  return `
  hs AS (SELECT value AS sku FROM json_array_elements_text($4::text::json) UNION SELECT sku FROM ${newlyHeld}),
  dh AS (SELECT d.* FROM hs CROSS JOIN LATERAL (
    SELECT sku, reservation_id, expires_at FROM ${s}.holds WHERE sku = hs.sku AND expires_at <= $6::bigint
    ORDER BY expires_at, reservation_id LIMIT $7::int) d),
  an AS (SELECT sku, reservation_id, expires_at FROM ${s}.holds WHERE $8::int > 0 AND expires_at <= $6::bigint
    ORDER BY expires_at, reservation_id, sku LIMIT $8::int),
  rv AS (SELECT value AS id FROM json_array_elements_text($3::text::json) UNION SELECT reservation_id FROM dh UNION SELECT reservation_id FROM an),
  bq AS (SELECT x.s, x.b FROM json_to_recordset($9::text::json) AS x(s text, b text)
    UNION SELECT e.sku, e.buyer FROM ${s}.entries e WHERE e.buyer IS NOT NULL AND e.kind IN ('deduct', 'reserve', 'commit')
      AND e.request_id = ANY(ARRAY(SELECT value FROM json_array_elements_text($2::text::json) UNION SELECT id FROM rv))
    UNION SELECT h.sku, v.buyer FROM ${s}.holds h JOIN ${s}.reservations v ON v.id = h.reservation_id
      WHERE v.buyer IS NOT NULL AND h.reservation_id = ANY(ARRAY(SELECT id FROM rv)))
  SELECT json_build_object(
    'q', (SELECT COALESCE(json_agg(${requestJson(s)}), '[]') FROM ${s}.requests r WHERE r.request_id = ${anyOf(2)}),
    'v', (SELECT COALESCE(json_agg(${reservationJson(s)}), '[]') FROM ${s}.reservations v WHERE v.id = ANY(ARRAY(SELECT id FROM rv))),
    't', (SELECT COALESCE(json_agg(json_build_object('o', of_request, 's', sku, 'q', qty)), '[]') FROM ${s}.reversals WHERE of_request = ${anyOf(5)}),
    'hs', (SELECT COALESCE(json_agg(sku), '[]') FROM hs),
    'h', (SELECT COALESCE(json_agg(${holdJson} ORDER BY sku, expires_at, reservation_id), '[]') FROM dh),
    'a', (SELECT COALESCE(json_agg(${holdJson} ORDER BY expires_at, reservation_id, sku), '[]') FROM an),
    'b', (SELECT COALESCE(json_agg(json_build_object('s', bq.s, 'b', bq.b, 'q', COALESCE(t.qty, 0))), '[]')
      FROM bq LEFT JOIN ${s}.buyer_totals t ON t.sku = bq.s AND t.buyer = bq.b)`;
}

// The payload is parsed once, as jsonb (json would be parsed again by every ->). It holds no
// U+0000, which jsonb refuses: keys are escaped, and lines and meta travel as JSON text.
// Each UPDATE and DELETE also names its keys as \`= ANY(ARRAY(...))\`: the planner guesses 100
// rows for a JSON set-returning function and would rather scan a large table whole; an array
// probe makes it walk the index for just those keys.
const flushSql = (s: string): string => `
  WITH p AS MATERIALIZED (SELECT $1::text::jsonb AS j),
  o AS MATERIALIZED (SELECT nextval('${s}.ops') AS op),
  ie AS (INSERT INTO ${s}.entries (op, pos, seq, request_id, kind, sku, on_hand_delta, reserved_delta, on_hand_after, reserved_after, version_after, at, meta,
      backorder_max_after, low_stock_at_after, buyer_max_after, buyer, reservation_id)
    SELECT o.op, x.pos, x.q, x.r, x.k, x.s, x.dh, x.dr, x.ah, x.ar, x.v, x.at, x.m, x.bm, x.ls, x.bx, x.b, x.vr FROM o, p,
    jsonb_to_recordset(p.j->'e') AS x(pos int, q bigint, r text, k text, s text, dh bigint, dr bigint, ah bigint, ar bigint, v bigint, at bigint, m text,
      bm bigint, ls bigint, bx bigint, b text, vr text)
    RETURNING 1),
  ul AS (UPDATE ${s}.levels l SET on_hand = x.h, reserved = x.r, version = x.v, backorder_max = x.bm, low_stock_at = x.ls, buyer_max = x.bx
    FROM p, jsonb_to_recordset(p.j->'l') AS x(s text, h bigint, r bigint, v bigint, bm bigint, ls bigint, bx bigint)
    WHERE l.sku = x.s AND l.sku = ANY(ARRAY(SELECT y.s FROM p, jsonb_to_recordset(p.j->'l') AS y(s text))) RETURNING 1),
  iq AS (INSERT INTO ${s}.requests (request_id, kind, fingerprint, at, allocations, amended)
    SELECT x.id, x.k, x.f, x.at, x.a, x.am FROM p, jsonb_to_recordset(p.j->'q') AS x(id text, k text, f text, at bigint, a text, am text) RETURNING 1),
  it AS (INSERT INTO ${s}.reversals AS t (of_request, sku, qty)
    SELECT x.o, x.s, x.q FROM p, jsonb_to_recordset(p.j->'t') AS x(o text, s text, q bigint)
    ON CONFLICT (of_request, sku) DO UPDATE SET qty = t.qty + excluded.qty RETURNING 1),
  iv AS (INSERT INTO ${s}.reservations (id, state, lines, expires_at, first_expires_at, created_at, committed, meta, buyer)
    SELECT x.id, x.st, x.l, x.xp, x.fx, x.c, x.cm, x.m, x.b FROM p,
    jsonb_to_recordset(p.j->'n') AS x(id text, st text, l text, xp bigint, fx bigint, c bigint, cm text, m text, b text) RETURNING 1),
  uv AS (UPDATE ${s}.reservations v SET state = COALESCE(x.st, v.state), committed = COALESCE(x.cm, v.committed),
    first_expires_at = CASE WHEN x.xp IS NULL THEN v.first_expires_at ELSE COALESCE(v.first_expires_at, v.expires_at) END,
    expires_at = COALESCE(x.xp, v.expires_at), lines = COALESCE(x.l, v.lines)
    FROM p, jsonb_to_recordset(p.j->'u') AS x(id text, st text, cm text, xp bigint, l text)
    WHERE v.id = x.id AND v.id = ANY(ARRAY(SELECT y.id FROM p, jsonb_to_recordset(p.j->'u') AS y(id text)))
    AND (x.st IS DISTINCT FROM 'expired' OR v.state = 'held') RETURNING 1),
  xh AS (UPDATE ${s}.holds h SET expires_at = x.xp FROM p, jsonb_to_recordset(p.j->'xh') AS x(r text, s text, xp bigint)
    WHERE h.reservation_id = x.r AND h.sku = x.s AND h.reservation_id = ANY(ARRAY(SELECT y.r FROM p, jsonb_to_recordset(p.j->'xh') AS y(r text)))
    RETURNING 1),
  ih AS (INSERT INTO ${s}.holds (reservation_id, sku, qty, expires_at)
    SELECT x.r, x.s, x.q, x.xp FROM p, jsonb_to_recordset(p.j->'hn') AS x(r text, s text, q bigint, xp bigint) RETURNING 1),
  ah AS (INSERT INTO ${s}.holds (reservation_id, sku, qty, expires_at)
    SELECT x.r, x.s, x.q, x.xp FROM p, jsonb_to_recordset(p.j->'ah') AS x(r text, s text, q bigint, xp bigint)
    ON CONFLICT (reservation_id, sku) DO UPDATE SET qty = excluded.qty, expires_at = excluded.expires_at RETURNING 1),
  dh AS (DELETE FROM ${s}.holds h USING p, jsonb_to_recordset(p.j->'hd') AS x(r text, s text)
    WHERE h.reservation_id = x.r AND h.sku = x.s AND h.reservation_id = ANY(ARRAY(SELECT y.r FROM p, jsonb_to_recordset(p.j->'hd') AS y(r text)))
    RETURNING 1),
  bu AS (INSERT INTO ${s}.buyer_totals AS t (sku, buyer, qty)
    SELECT x.s, x.b, x.q FROM p, jsonb_to_recordset(p.j->'bu') AS x(s text, b text, q bigint)
    ON CONFLICT (sku, buyer) DO UPDATE SET qty = excluded.qty RETURNING 1),
  bd AS (DELETE FROM ${s}.buyer_totals t USING p, jsonb_to_recordset(p.j->'bd') AS x(s text, b text)
    WHERE t.sku = x.s AND t.buyer = x.b AND t.sku = ANY(ARRAY(SELECT y.s FROM p, jsonb_to_recordset(p.j->'bd') AS y(s text)))
    RETURNING 1)
  SELECT (SELECT op FROM o)::text AS op, (SELECT count(*) FROM ie)::int AS e, (SELECT count(*) FROM ul)::int AS l,
    (SELECT count(*) FROM dh)::int AS d, (SELECT count(*) FROM iq)::int AS q, (SELECT count(*) FROM bu)::int AS bu,
    (SELECT count(*) FROM bd)::int AS bd, (SELECT count(*) FROM ah)::int AS ah`;

const ENTRY_COLUMNS_JSON = ENTRY_JSON;

/**
 * One chunk of SKUs, in one statement (one snapshot: a compaction step moves a part of a SKU
 * from its entries to its checkpoint atomically, and both are read together). Each fold is
 * the checkpoint's plus the kept entries'; `rep` looks at kept entries only.
 */
const verifySql = (s: string): string => {
  const inChunk = (a: string): string => `${a}.sku > $1::text AND (bound.upper IS NULL OR ${a}.sku <= bound.upper)`;
  return `
  WITH chunk AS (SELECT sku FROM ${s}.levels WHERE sku > $1::text ORDER BY sku LIMIT $2::int),
  bound AS (SELECT CASE WHEN (SELECT count(*) FROM chunk) < $2::int THEN NULL ELSE (SELECT max(sku) FROM chunk) END AS upper),
  es AS (SELECT e.* FROM ${s}.entries e, bound WHERE ${inChunk('e')}),
  hs AS (SELECT h.* FROM ${s}.holds h, bound WHERE ${inChunk('h')}),
  bs AS (SELECT t.sku, t.buyer, t.qty FROM ${s}.buyer_totals t, bound WHERE ${inChunk('t')}),
  cp AS (SELECT c.sku, c.on_hand, c.reserved, c.version FROM ${s}.checkpoints c, bound WHERE ${inChunk('c')}),
  ch AS (SELECT c.sku, c.reservation_id, c.qty FROM ${s}.checkpoint_holds c, bound WHERE ${inChunk('c')}),
  cb AS (SELECT c.sku, c.buyer, c.qty FROM ${s}.checkpoint_buyers c, bound WHERE ${inChunk('c')}),
  bf AS (SELECT sku, buyer, sum(q) AS q FROM (SELECT sku, buyer, reserved_delta - on_hand_delta AS q FROM es WHERE buyer IS NOT NULL
    UNION ALL SELECT sku, buyer, qty FROM cb) x GROUP BY sku, buyer)
  SELECT json_build_object(
    'upper', (SELECT upper FROM bound),
    'levels', (SELECT COALESCE(json_agg(json_build_object(${levelFields('l')})), '[]') FROM ${s}.levels l, bound WHERE ${inChunk('l')}),
    'folded', (SELECT COALESCE(json_agg(json_build_object('s', f.sku, 'h', f.h, 'r', f.r, 'v', f.v)), '[]') FROM
      (SELECT sku, sum(h) AS h, sum(r) AS r, sum(v) AS v FROM (SELECT sku, on_hand_delta AS h, reserved_delta AS r, 1::bigint AS v FROM es
        UNION ALL SELECT sku, on_hand, reserved, version FROM cp) x GROUP BY sku) f),
    'holds', (SELECT COALESCE(json_agg(json_build_object('s', h.sku, 'r', h.reservation_id, 'q', h.qty, 'xp', h.expires_at,
      'st', v.state, 'rx', v.expires_at, 'l', v.lines)), '[]') FROM hs h LEFT JOIN ${s}.reservations v ON v.id = h.reservation_id),
    'fh', (SELECT COALESCE(json_agg(json_build_object('s', g.sku, 'r', g.request_id, 'q', g.q)), '[]') FROM
      (SELECT sku, request_id, sum(q) AS q FROM (SELECT sku, COALESCE(reservation_id, request_id) AS request_id, reserved_delta AS q FROM es
        WHERE reserved_delta <> 0 UNION ALL SELECT sku, reservation_id, qty FROM ch) x GROUP BY sku, request_id HAVING sum(q) <> 0) g),
    'rep', (SELECT COALESCE(json_agg(json_build_object('s', g.sku, 'r', g.request_id, 'k', g.kind, 'n', g.n)), '[]') FROM
      (SELECT sku, request_id, kind, count(*) AS n FROM es GROUP BY sku, request_id, kind HAVING count(*) > 1) g),
    'bt', (SELECT COALESCE(json_agg(json_build_object('s', COALESCE(bs.sku, bf.sku), 'b', COALESCE(bs.buyer, bf.buyer),
      'st', COALESCE(bs.qty, 0), 'f', COALESCE(bf.q, 0))), '[]')
      FROM bs FULL JOIN bf ON bf.sku = bs.sku AND bf.buyer = bs.buyer WHERE COALESCE(bs.qty, 0) <> 0 OR COALESCE(bf.q, 0) <> 0)
  )::text AS j`;
};

/**
 * A page of SKUs with a level ever written (version 0: a row a rejected operation of a batch
 * created, never written), in byte order of the stored key (code points of the SKU), each
 * with its due holds as of $4. Rows whose stored `available` is above $3 are left out (due
 * holds only raise it); `next` counts every SKU looked at, filtered or not.
 */
const levelsSql = (s: string): string => `
  WITH page AS (SELECT * FROM ${s}.levels WHERE sku > $1::text AND version > 0 ORDER BY sku LIMIT $2::int)
  SELECT json_build_object(
    'next', CASE WHEN (SELECT count(*) FROM page) < $2::int THEN NULL ELSE (SELECT max(sku) FROM page) END,
    'levels', (SELECT COALESCE(json_agg(json_build_object(${levelFields('l')},
      'dq', (SELECT COALESCE(sum(qty), 0) FROM ${s}.holds h WHERE h.sku = l.sku AND h.expires_at <= $4::bigint),
      'dn', (SELECT count(*) FROM ${s}.holds h WHERE h.sku = l.sku AND h.expires_at <= $4::bigint)) ORDER BY l.sku), '[]')
      FROM page l WHERE $3::bigint IS NULL OR l.on_hand - l.reserved + l.backorder_max <= $3::bigint)
  )::text AS j`;

/**
 * The store's statements for schema `s` (already checked: lower-case letters, digits, `_`).
 *
 * @example
 * ```ts
 * const sql = statements('stock_ledger');
 * await connection.query(sql.stocks, [JSON.stringify(['A']), now]);
 * ```
 */
export function statements(s: string): Statements {
  return {
    plan: `
      SELECT json_build_object(
        'v', (SELECT COALESCE(json_agg(json_build_object('id', id, 'l', lines, 'b', buyer)), '[]') FROM ${s}.reservations WHERE id = ${anyOf(1)}),
        'o', (SELECT COALESCE(json_agg(json_build_object('id', r.request_id, 'k', r.kind,
          's', (SELECT COALESCE(json_agg(DISTINCT e.sku), '[]') FROM ${s}.entries e WHERE e.request_id = r.request_id AND e.kind IN (r.kind, 'commit')))), '[]')
          FROM ${s}.requests r WHERE r.request_id = ${anyOf(2)}),
        'a', (SELECT COALESCE(json_agg(DISTINCT sku), '[]') FROM (SELECT sku FROM ${s}.holds WHERE $4::int > 0 AND expires_at <= $3::bigint
          ORDER BY expires_at, reservation_id, sku LIMIT $4::int) d)
      )::text AS j`,
    lockAndLoad: `
      WITH locked AS (SELECT sku, on_hand, reserved, version, backorder_max, low_stock_at, buyer_max, xmin::text AS x FROM ${s}.levels WHERE sku = ${anyOf(1)}
        ORDER BY sku FOR UPDATE),
      snap AS (SELECT sku, version, xmin::text AS x FROM ${s}.levels WHERE sku = ${anyOf(1)}),
      newly AS (SELECT sku FROM locked WHERE reserved > 0),
      ${load(s, 'newly')},
      'l', (SELECT COALESCE(json_agg(json_build_object(${levelFields('k')}, 'x', k.x)), '[]') FROM locked k),
      'snap', (SELECT COALESCE(json_agg(json_build_object('s', sku, 'v', version, 'x', x)), '[]') FROM snap)
      )::text AS j`,
    ensureLevels: `
      INSERT INTO ${s}.levels AS l (sku, on_hand, reserved, version)
      SELECT value, 0, 0, 0 FROM json_array_elements_text($1::text::json) ORDER BY value COLLATE "C"
      ON CONFLICT (sku) DO UPDATE SET version = l.version
      RETURNING sku, on_hand::text AS on_hand, reserved::text AS reserved, version::text AS version,
        backorder_max::text AS backorder_max, low_stock_at::text AS low_stock_at, buyer_max::text AS buyer_max`,
    flush: flushSql(s),
    numberEntries: `SELECT ${s}.number_entries($1::int, $2::int, $3::text, $4::boolean) AS j`,
    sweepLeft: `SELECT EXISTS (SELECT 1 FROM ${s}.holds WHERE expires_at <= $1::bigint) AS any,
      EXISTS (SELECT 1 FROM ${s}.holds WHERE $2::bigint IS NOT NULL AND expires_at <= $1::bigint
        AND (expires_at, reservation_id, sku) < ($2::bigint, $3::text COLLATE "C", $4::text COLLATE "C")) AS before`,
    anyUnnumbered: `SELECT EXISTS (SELECT 1 FROM ${s}.entries WHERE seq IS NULL) AS any`,
    stocks: `
      SELECT COALESCE(json_agg(json_build_object(${levelFields('l')},
        'dq', (SELECT COALESCE(sum(qty), 0) FROM ${s}.holds h WHERE h.sku = l.sku AND h.expires_at <= $2::bigint),
        'dn', (SELECT count(*) FROM ${s}.holds h WHERE h.sku = l.sku AND h.expires_at <= $2::bigint))), '[]')::text AS j
      FROM ${s}.levels l WHERE l.sku = ${anyOf(1)}`,
    entries: `SELECT COALESCE(json_agg(${ENTRY_COLUMNS_JSON} ORDER BY e.seq), '[]')::text AS j FROM
      (SELECT * FROM ${s}.entries WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int) e`,
    entriesOfSku: `SELECT COALESCE(json_agg(${ENTRY_COLUMNS_JSON} ORDER BY e.seq), '[]')::text AS j FROM
      (SELECT * FROM ${s}.entries WHERE sku = $3::text AND seq > $1::bigint ORDER BY seq LIMIT $2::int) e`,
    request: `SELECT COALESCE(json_agg(${requestJson(s)}), '[]')::text AS j FROM ${s}.requests r WHERE r.request_id = $1::text`,
    reservation: `SELECT COALESCE(json_agg(${reservationJson(s)}), '[]')::text AS j FROM ${s}.reservations v WHERE v.id = $1::text`,
    // $1 SKU, $2 now, $3 and $4 the cursor (expiry, reservation id), $5 limit: the (sku, expires_at, reservation_id) index in order.
    holds: `SELECT COALESCE(json_agg(json_build_object('r', x.reservation_id, 'q', x.qty, 'xp', x.expires_at, 'm', x.meta, 'b', x.buyer)
      ORDER BY x.expires_at, x.reservation_id), '[]')::text AS j
      FROM (SELECT h.reservation_id, h.qty, h.expires_at, v.meta, v.buyer FROM ${s}.holds h LEFT JOIN ${s}.reservations v ON v.id = h.reservation_id
        WHERE h.sku = $1::text AND h.expires_at > $2::bigint AND (h.expires_at, h.reservation_id) > ($3::bigint, $4::text COLLATE "C")
        ORDER BY h.expires_at, h.reservation_id LIMIT $5::int) x`,
    // One statement: the stored total and the due holds it counts are read in one snapshot.
    buyerTotals: `SELECT COALESCE(json_agg(
      COALESCE((SELECT t.qty FROM ${s}.buyer_totals t WHERE t.sku = k.sku AND t.buyer = $1::text), 0)
      - COALESCE((SELECT sum(h.qty) FROM ${s}.holds h JOIN ${s}.reservations v ON v.id = h.reservation_id
        WHERE h.sku = k.sku AND h.expires_at <= $3::bigint AND v.buyer = $1::text), 0) ORDER BY k.n), '[]')::text AS j
      FROM json_array_elements_text($2::text::json) WITH ORDINALITY AS k(sku, n)`,
    verifyChunk: verifySql(s),
    compact: `SELECT ${s}.compact_step($1::bigint, $2::int) AS j`,
    compactedThrough: `SELECT through::text AS t FROM ${s}.compaction WHERE id = 1`,
    levels: levelsSql(s),
  };
}
