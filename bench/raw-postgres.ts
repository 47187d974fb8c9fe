/**
 * The PostgreSQL baselines: what a team writes by hand for an idempotent conditional deduct.
 * One SQL function does the whole step (a replay if the request id is recorded; else
 * `UPDATE ... SET qty = qty - $1 WHERE qty >= $1`, record the request, append an entry; a
 * rejection records nothing), called once per transaction, or for up to 100 deducts in one
 * transaction (one statement over arrays, one commit flush for the batch).
 *
 * A deduct of several lines, a reserve, and a commit or release are one function each: lock the
 * lines' levels in SKU order (so transactions that touch several SKUs never deadlock), check,
 * then write. Reservations: `levels.qty` is the units free to take (on hand minus held), so a
 * deduct reads nothing else; `levels.reserved` counts what is held, and a reservation row (its
 * id the reserve's request id, a replay if it was there) keeps its state, expiry and lines. A
 * commit takes the units off `reserved` (sold), a release gives them back to `qty`, once, by
 * the reservation's state, refusing a held reservation past its expiry. Nothing gives an expired
 * hold back (a sweep would; the bench's holds never expire): safe, it only sells less. Batched,
 * these operations go through one function per batch that first locks every level the batch
 * touches, in SKU order, then runs them in arrival order (single-line deducts keep their own
 * batch statement, sorted by SKU).
 *
 * Also the PostgreSQL helpers the bench shares: a pool, a fresh schema per measurement, and
 * dropping it afterwards (never anything else: the server may be shared).
 */
import pg from 'pg';
import type { Contender, RawLine, Totals } from './contenders.js';
import { NAMES, rawRunner } from './contenders.js';
import type { Workload } from './workloads.js';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Connections per contender: enough for 64 in flight to keep the server busy on 2 cores. */
const POOL_CONNECTIONS_MAX = 32;
const CONNECT_TIMEOUT_MS = 2000;
/** Deducts per transaction of the batching baseline. */
const BATCH_OPERATIONS_MAX = 100;
/** SKUs per INSERT while stocking. */
const SKUS_PER_INSERT = 1000;

export function pgPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: POOL_CONNECTIONS_MAX, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  pool.on('error', () => {}); // an idle client's error; each query rejects with its own
  return pool;
}

/** The server's version if PostgreSQL answers at `url`, else why not. */
export async function probePostgres(url: string): Promise<{ version: string } | { error: string }> {
  const pool = pgPool(url);
  try {
    const { rows } = await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return { version: rows[0]?.v ?? 'unknown version' };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  } finally {
    await pool.end();
  }
}

let schemaCounter = 0;
/** A schema no earlier run used, so runs on a shared server never meet. */
export function freshSchema(): string {
  return `slbench_${process.pid}_${Date.now().toString(36)}_${(schemaCounter += 1)}`;
}

export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/**
 * Tables and functions, in `schema`. Each function returns 1 applied, 0 replayed, -1 short of
 * stock (a settle: -1 not held). Lines name distinct SKUs.
 */
function ddl(schema: string): string {
  const s = schema;
  return `
    CREATE SCHEMA ${s};
    CREATE TABLE ${s}.levels (
      sku text COLLATE "C" PRIMARY KEY, qty bigint NOT NULL CHECK (qty >= 0), reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0)
    );
    CREATE TABLE ${s}.requests (request_id text COLLATE "C" PRIMARY KEY, on_hand_after bigint);
    CREATE TABLE ${s}.entries (
      seq bigserial PRIMARY KEY, request_id text NOT NULL, sku text NOT NULL, delta bigint NOT NULL,
      reserved_delta bigint NOT NULL DEFAULT 0, after bigint NOT NULL, at bigint NOT NULL
    );
    CREATE TABLE ${s}.reservations (
      id text COLLATE "C" PRIMARY KEY, state text NOT NULL, expires_at bigint NOT NULL, skus text[] NOT NULL, qtys bigint[] NOT NULL
    );
    CREATE FUNCTION ${s}.deduct(p_request text, p_sku text, p_qty bigint, p_at bigint) RETURNS int
    LANGUAGE plpgsql AS $$
    DECLARE v_after bigint;
    BEGIN
      PERFORM 1 FROM ${s}.requests WHERE request_id = p_request;
      IF FOUND THEN RETURN 0; END IF;
      UPDATE ${s}.levels SET qty = qty - p_qty WHERE sku = p_sku AND qty >= p_qty RETURNING qty INTO v_after;
      IF NOT FOUND THEN RETURN -1; END IF;
      INSERT INTO ${s}.requests (request_id, on_hand_after) VALUES (p_request, v_after);
      INSERT INTO ${s}.entries (request_id, sku, delta, after, at) VALUES (p_request, p_sku, -p_qty, v_after, p_at);
      RETURN 1;
    END $$;
    -- Locks the lines' levels in SKU order; true if each has p_qtys[i] free.
    CREATE FUNCTION ${s}.lock_free(p_skus text[], p_qtys bigint[]) RETURNS boolean
    LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM 1 FROM ${s}.levels WHERE sku = ANY(p_skus) ORDER BY sku FOR UPDATE;
      RETURN NOT EXISTS (
        SELECT 1 FROM unnest(p_skus, p_qtys) AS t(s, q) LEFT JOIN ${s}.levels l ON l.sku = t.s WHERE l.qty IS NULL OR l.qty < t.q
      );
    END $$;
    CREATE FUNCTION ${s}.deduct_lines(p_request text, p_skus text[], p_qtys bigint[], p_at bigint) RETURNS int
    LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM 1 FROM ${s}.requests WHERE request_id = p_request;
      IF FOUND THEN RETURN 0; END IF;
      IF NOT ${s}.lock_free(p_skus, p_qtys) THEN RETURN -1; END IF;
      INSERT INTO ${s}.requests (request_id) VALUES (p_request);
      WITH taken AS (
        UPDATE ${s}.levels l SET qty = l.qty - t.q FROM unnest(p_skus, p_qtys) AS t(s, q) WHERE l.sku = t.s RETURNING l.sku, t.q, l.qty
      )
      INSERT INTO ${s}.entries (request_id, sku, delta, after, at) SELECT p_request, sku, -q, qty, p_at FROM taken;
      RETURN 1;
    END $$;
    CREATE FUNCTION ${s}.reserve(p_request text, p_skus text[], p_qtys bigint[], p_expires bigint, p_at bigint) RETURNS int
    LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM 1 FROM ${s}.reservations WHERE id = p_request;
      IF FOUND THEN RETURN 0; END IF;
      IF NOT ${s}.lock_free(p_skus, p_qtys) THEN RETURN -1; END IF;
      INSERT INTO ${s}.reservations (id, state, expires_at, skus, qtys) VALUES (p_request, 'held', p_expires, p_skus, p_qtys);
      WITH held AS (
        UPDATE ${s}.levels l SET qty = l.qty - t.q, reserved = l.reserved + t.q FROM unnest(p_skus, p_qtys) AS t(s, q) WHERE l.sku = t.s
        RETURNING l.sku, t.q, l.qty
      )
      INSERT INTO ${s}.entries (request_id, sku, delta, reserved_delta, after, at) SELECT p_request, sku, 0, q, qty, p_at FROM held;
      RETURN 1;
    END $$;
    -- Commits (p_to 'committed') or releases (p_to 'released') a held reservation.
    CREATE FUNCTION ${s}.settle(p_id text, p_to text, p_at bigint) RETURNS int
    LANGUAGE plpgsql AS $$
    DECLARE v ${s}.reservations;
    BEGIN
      SELECT * INTO v FROM ${s}.reservations WHERE id = p_id FOR UPDATE;
      IF NOT FOUND THEN RETURN -1; END IF;
      IF v.state = p_to THEN RETURN 0; END IF;
      IF v.state <> 'held' OR p_at >= v.expires_at THEN RETURN -1; END IF;
      PERFORM 1 FROM ${s}.levels WHERE sku = ANY(v.skus) ORDER BY sku FOR UPDATE;
      UPDATE ${s}.reservations SET state = p_to WHERE id = p_id;
      WITH settled AS (
        UPDATE ${s}.levels l SET reserved = l.reserved - t.q, qty = l.qty + CASE WHEN p_to = 'released' THEN t.q ELSE 0 END
        FROM unnest(v.skus, v.qtys) AS t(s, q) WHERE l.sku = t.s RETURNING l.sku, t.q, l.qty
      )
      INSERT INTO ${s}.entries (request_id, sku, delta, reserved_delta, after, at)
      SELECT p_id, sku, CASE WHEN p_to = 'committed' THEN -q ELSE 0 END, -q, qty, p_at FROM settled;
      RETURN 1;
    END $$;
    -- A batch of deduct_lines, reserve and settle calls (p_kinds: 'deduct', 'reserve', 'committed',
    -- 'released'); op i's lines are p_skus/p_qtys[p_firsts[i] : p_firsts[i] + p_counts[i] - 1].
    -- Every level the batch touches is locked first, in SKU order: batches in flight never deadlock.
    CREATE FUNCTION ${s}.run_batch(
      p_kinds text[], p_ids text[], p_firsts int[], p_counts int[], p_skus text[], p_qtys bigint[], p_expires bigint[], p_ats bigint[]
    ) RETURNS int[]
    LANGUAGE plpgsql AS $$
    DECLARE v_codes int[] := '{}'; v_last int;
    BEGIN
      PERFORM 1 FROM ${s}.levels
      WHERE sku IN (SELECT unnest(p_skus) UNION SELECT unnest(r.skus) FROM ${s}.reservations r WHERE r.id = ANY(p_ids))
      ORDER BY sku FOR UPDATE;
      FOR i IN 1 .. cardinality(p_kinds) LOOP
        v_last := p_firsts[i] + p_counts[i] - 1;
        v_codes := v_codes || CASE p_kinds[i]
          WHEN 'deduct' THEN ${s}.deduct_lines(p_ids[i], p_skus[p_firsts[i]:v_last], p_qtys[p_firsts[i]:v_last], p_ats[i])
          WHEN 'reserve' THEN ${s}.reserve(p_ids[i], p_skus[p_firsts[i]:v_last], p_qtys[p_firsts[i]:v_last], p_expires[i], p_ats[i])
          ELSE ${s}.settle(p_ids[i], p_kinds[i], p_ats[i])
        END;
      END LOOP;
      RETURN v_codes;
    END $$;`;
}

/** A single-line deduct of the batch statement that keeps the first baseline's shape. */
interface Pending {
  requestId: string;
  sku: string;
  qty: number;
  at: number;
  resolve: (outcome: { ok: boolean; replayed: boolean }) => void;
  reject: (error: Error) => void;
}

/** Any other operation, for `run_batch`: kind 'deduct' (lines), 'reserve', 'committed' or 'released'. */
interface PendingOp {
  kind: 'deduct' | 'reserve' | 'committed' | 'released';
  id: string;
  lines: readonly RawLine[];
  expiresAt: number;
  at: number;
  resolve: (outcome: { ok: boolean; replayed: boolean }) => void;
  reject: (error: Error) => void;
}

const outcomeOf = (code: number): { ok: boolean; replayed: boolean } => ({ ok: code !== -1, replayed: code === 0 });

export class RawPostgresStock {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #batched: boolean;
  #queue: Pending[] = [];
  #ops: PendingOp[] = [];
  #scheduled = false;

  constructor(options: { pool: pg.Pool; schema: string; batched: boolean }) {
    this.#pool = options.pool;
    this.#schema = options.schema;
    this.#batched = options.batched;
  }

  async create(skus: readonly string[], qty: number): Promise<void> {
    await this.#pool.query(ddl(this.#schema));
    for (let from = 0; from < skus.length; from += SKUS_PER_INSERT) {
      const part = skus.slice(from, from + SKUS_PER_INSERT);
      await this.#pool.query(`INSERT INTO ${this.#schema}.levels (sku, qty) SELECT unnest($1::text[]), $2`, [part, qty]);
    }
  }

  /** One transaction for this deduct alone, or a place in the next batch. */
  deduct(options: { requestId: string; sku: string; qty: number }): Promise<{ ok: boolean; replayed: boolean }> {
    if (!this.#batched) return this.#alone({ ...options, at: Date.now() });
    return new Promise((resolve, reject) => {
      this.#queue.push({ ...options, at: Date.now(), resolve, reject });
      this.#schedule();
    });
  }

  deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#op('deduct', options.requestId, options.lines, 0);
  }

  reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#op('reserve', options.requestId, options.lines, Date.now() + options.ttlMs);
  }

  commit(reservationId: string): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#op('committed', reservationId, [], 0);
  }

  release(reservationId: string): Promise<{ ok: boolean; replayed: boolean }> {
    return this.#op('released', reservationId, [], 0);
  }

  async totals(skus: readonly string[]): Promise<Totals> {
    const { rows } = await this.#pool.query<{ free: string | null; held: string | null }>(
      `SELECT sum(qty) AS free, sum(reserved) AS held FROM ${this.#schema}.levels WHERE sku = ANY($1::text[])`,
      [skus],
    );
    const held = Number(rows[0]?.held ?? 0);
    return { onHand: Number(rows[0]?.free ?? 0) + held, reserved: held };
  }

  async #alone(op: { requestId: string; sku: string; qty: number; at: number }): Promise<{ ok: boolean; replayed: boolean }> {
    const { rows } = await this.#pool.query<{ code: number }>(`SELECT ${this.#schema}.deduct($1, $2, $3, $4) AS code`, [op.requestId, op.sku, op.qty, op.at]);
    return outcomeOf(rows[0]?.code ?? -2);
  }

  /** One function call in its own transaction, or a place in the next `run_batch`. */
  #op(kind: PendingOp['kind'], id: string, lines: readonly RawLine[], expiresAt: number): Promise<{ ok: boolean; replayed: boolean }> {
    const at = Date.now();
    if (this.#batched) {
      return new Promise((resolve, reject) => {
        this.#ops.push({ kind, id, lines, expiresAt, at, resolve, reject });
        this.#schedule();
      });
    }
    const skus = lines.map((l) => l.sku);
    const qtys = lines.map((l) => l.qty);
    const s = this.#schema;
    const call =
      kind === 'deduct'
        ? this.#pool.query<{ code: number }>(`SELECT ${s}.deduct_lines($1, $2, $3, $4) AS code`, [id, skus, qtys, at])
        : kind === 'reserve'
          ? this.#pool.query<{ code: number }>(`SELECT ${s}.reserve($1, $2, $3, $4, $5) AS code`, [id, skus, qtys, expiresAt, at])
          : this.#pool.query<{ code: number }>(`SELECT ${s}.settle($1, $2, $3) AS code`, [id, kind, at]);
    return call.then(({ rows }) => outcomeOf(rows[0]?.code ?? -2));
  }

  /** setImmediate, not a microtask: every operation issued in this turn joins the batch. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    // Bounded: every pass takes at least one operation off a finite queue.
    while (this.#queue.length > 0) void this.#send(this.#queue.splice(0, BATCH_OPERATIONS_MAX));
    while (this.#ops.length > 0) void this.#sendOps(this.#ops.splice(0, BATCH_OPERATIONS_MAX));
  }

  /**
   * One statement, one implicit transaction: the function runs per row, in array order, which
   * is SKU order, so two batches in flight lock shared SKUs in the same order (no deadlock).
   */
  async #send(arrived: Pending[]): Promise<void> {
    const batch = [...arrived].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
    try {
      const { rows } = await this.#pool.query<{ code: number }>(
        `SELECT ${this.#schema}.deduct(r, s, q, a) AS code FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS t(r, s, q, a, i) ORDER BY i`,
        [batch.map((p) => p.requestId), batch.map((p) => p.sku), batch.map((p) => p.qty), batch.map((p) => p.at)],
      );
      batch.forEach((p, i) => p.resolve(outcomeOf(rows[i]?.code ?? -2)));
    } catch (error) {
      for (const p of batch) p.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** One `run_batch` call, one implicit transaction; its lines flattened into arrays. */
  async #sendOps(batch: PendingOp[]): Promise<void> {
    const firsts: number[] = [];
    const lines: RawLine[] = [];
    for (const op of batch) {
      firsts.push(lines.length + 1);
      lines.push(...op.lines);
    }
    try {
      const { rows } = await this.#pool.query<{ codes: number[] }>(`SELECT ${this.#schema}.run_batch($1, $2, $3, $4, $5, $6, $7, $8) AS codes`, [
        batch.map((op) => op.kind),
        batch.map((op) => op.id),
        firsts,
        batch.map((op) => op.lines.length),
        lines.map((l) => l.sku),
        lines.map((l) => l.qty),
        batch.map((op) => op.expiresAt),
        batch.map((op) => op.at),
      ]);
      const codes = rows[0]?.codes ?? [];
      batch.forEach((op, i) => op.resolve(outcomeOf(codes[i] ?? -2)));
    } catch (error) {
      for (const op of batch) op.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

function contender(url: string, name: string, batched: boolean): Contender {
  return {
    name,
    group: 'postgres',
    ...(batched ? { baseline: NAMES.rawPostgres } : {}),
    async open(workload: Workload) {
      const pool = pgPool(url);
      const schema = freshSchema();
      const stock = new RawPostgresStock({ pool, schema, batched });
      await stock.create(workload.skus, workload.unitsPerSku);
      return rawRunner(stock, async () => {
        await dropSchema(pool, schema);
        await pool.end();
      });
    },
  };
}

/** Both PostgreSQL baselines: one deduct per transaction, and 100 per transaction. */
export function rawPostgresContenders(url: string): Contender[] {
  return [contender(url, NAMES.rawPostgres, false), contender(url, NAMES.rawPostgresBatch, true)];
}
