/**
 * The PostgreSQL baselines: what a team writes by hand for an idempotent conditional deduct.
 * One SQL function does the whole step (a replay if the request id is recorded; else
 * `UPDATE ... SET qty = qty - $1 WHERE qty >= $1`, record the request, append an entry; a
 * rejection records nothing), called once per transaction, or for up to 100 deducts in one
 * transaction (one statement over arrays, one commit flush for the batch).
 *
 * Also the PostgreSQL helpers the bench shares: a pool, a fresh schema per measurement, and
 * dropping it afterwards (never anything else: the server may be shared).
 */
import pg from 'pg';
import type { Contender } from './contenders.js';
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

/** Tables and the deduct function, in `schema`. Returns 1 applied, 0 replayed, -1 short. */
function ddl(schema: string): string {
  return `
    CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.levels (sku text COLLATE "C" PRIMARY KEY, qty bigint NOT NULL CHECK (qty >= 0));
    CREATE TABLE ${schema}.requests (request_id text COLLATE "C" PRIMARY KEY, on_hand_after bigint NOT NULL);
    CREATE TABLE ${schema}.entries (
      seq bigserial PRIMARY KEY, request_id text NOT NULL, sku text NOT NULL, delta bigint NOT NULL, after bigint NOT NULL, at bigint NOT NULL
    );
    CREATE FUNCTION ${schema}.deduct(p_request text, p_sku text, p_qty bigint, p_at bigint) RETURNS int
    LANGUAGE plpgsql AS $$
    DECLARE v_after bigint;
    BEGIN
      PERFORM 1 FROM ${schema}.requests WHERE request_id = p_request;
      IF FOUND THEN RETURN 0; END IF;
      UPDATE ${schema}.levels SET qty = qty - p_qty WHERE sku = p_sku AND qty >= p_qty RETURNING qty INTO v_after;
      IF NOT FOUND THEN RETURN -1; END IF;
      INSERT INTO ${schema}.requests (request_id, on_hand_after) VALUES (p_request, v_after);
      INSERT INTO ${schema}.entries (request_id, sku, delta, after, at) VALUES (p_request, p_sku, -p_qty, v_after, p_at);
      RETURN 1;
    END $$;`;
}

interface Pending {
  requestId: string;
  sku: string;
  qty: number;
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

  async onHand(sku: string): Promise<number> {
    const { rows } = await this.#pool.query<{ qty: string }>(`SELECT qty FROM ${this.#schema}.levels WHERE sku = $1`, [sku]);
    return Number(rows[0]?.qty ?? 0);
  }

  async #alone(op: { requestId: string; sku: string; qty: number; at: number }): Promise<{ ok: boolean; replayed: boolean }> {
    const { rows } = await this.#pool.query<{ code: number }>(`SELECT ${this.#schema}.deduct($1, $2, $3, $4) AS code`, [op.requestId, op.sku, op.qty, op.at]);
    return outcomeOf(rows[0]?.code ?? -2);
  }

  /** setImmediate, not a microtask: every deduct issued in this turn joins the batch. */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    // Bounded: every pass takes at least one deduct off a finite queue.
    while (this.#queue.length > 0) void this.#send(this.#queue.splice(0, BATCH_OPERATIONS_MAX));
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
}

function contender(url: string, name: string, batched: boolean): Contender {
  return {
    name,
    group: 'postgres',
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
