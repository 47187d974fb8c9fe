/**
 * The contenders of `npm run bench`: each is a small factory that opens a runner on fresh state
 * stocked for a workload. A store is compared with the raw baseline named in `baseline`.
 * Redis contenders live in bench/raw-redis.ts and bench/redis-store.ts, PostgreSQL ones in
 * bench/raw-postgres.ts and bench/postgres-store.ts.
 */
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tracingChannel } from 'node:diagnostics_channel';
import { LIMITS, OPERATION_CHANNEL, StockLedger, type OperationTrace } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { SqliteStore } from 'stock-ledger/sqlite';
import { RawMapStock } from './raw-map.js';
import { RawSqliteBatch } from './raw-sqlite-batch.js';
import { RawSqliteStock } from './raw-sqlite.js';
import type { Workload } from './workloads.js';

export type Group = 'memory' | 'sqlite' | 'redis' | 'postgres';

/**
 * What the load runs on a contender. Every call takes 1 unit of each SKU it names (distinct
 * SKUs); a workload's operation is one call or a pair of them (see `perform` in
 * bench/workloads.ts).
 */
export interface Runner {
  /** Deducts 1 unit of each SKU, all or none: true if sold, false if short of stock; throws on anything else. */
  deduct(requestId: string, skus: readonly string[]): Promise<boolean>;
  /** Holds 1 unit of each SKU for `ttlMs` under reservation id `requestId`, all or none: true if held, false if short. */
  reserve(requestId: string, skus: readonly string[], ttlMs: number): Promise<boolean>;
  /** Commits (sells all it holds) or releases a held reservation; throws unless that applied afresh. */
  settle(reservationId: string, commit: boolean): Promise<void>;
  /** Units on hand and reserved, summed over `skus`: the bench checks them against what the load says it sold. */
  totals(skus: readonly string[]): Promise<Totals>;
  close(): Promise<void>;
  /** Called before each of its measured slices; returns what to call after it (a subscription held only while it runs). */
  onSlice?(): () => void;
}

export interface Totals {
  onHand: number;
  reserved: number;
}

export interface Contender {
  name: string;
  group: Group;
  /** The contender this one's ratio is taken against; absent for the baseline itself. */
  baseline?: string;
  /** A store measured again with something added (a policy, a tracing subscriber), against the plain store: runs only on workloads with `twins`. */
  twin?: boolean;
  /** Opens a runner on fresh state, every SKU of `workload` stocked. */
  open(workload: Workload): Promise<Runner>;
  /** Frees what the contender keeps between measurements. */
  dispose?(): Promise<void>;
}

export const NAMES = {
  rawMap: 'raw Map',
  memoryStore: 'memory store',
  rawSqlite: 'raw SQLite, 1 op/tx',
  rawSqliteBatch: 'raw SQLite, 100 ops/tx',
  sqliteStore: 'SQLite store',
  rawRedis: 'raw Redis EVALSHA',
  redisStore: 'Redis store (batched)',
  redisStoreUnbatched: 'Redis store (1 script/op)',
  rawPostgres: 'raw PostgreSQL, 1 op/tx',
  rawPostgresBatch: 'raw PostgreSQL, 100 ops/tx',
  postgresStore: 'PostgreSQL store',
} as const;

/** The name of a store contender's twin measured with a subscriber on the tracing channel (see {@link tracedRunner}). */
export const withTracingName = (name: string): string => `${name}, traced`;

/**
 * A runner whose slices run with a subscriber on the ledger's operation channel (start and
 * asyncEnd, each touching the trace), as an APM agent would hold one: the cost of tracing,
 * against the same store without a subscriber in the same run. Subscribed only during its own
 * slices, so the other contenders run with nobody listening.
 */
export function tracedRunner(runner: Runner): Runner {
  let seen = 0;
  const handlers = {
    start: (t: OperationTrace) => {
      seen += t.skus.length;
    },
    asyncEnd: (t: OperationTrace) => {
      seen += t.attempts;
    },
  };
  const channel = tracingChannel<unknown, OperationTrace>(OPERATION_CHANNEL);
  return {
    ...runner,
    onSlice() {
      channel.subscribe(handlers as never);
      return () => channel.unsubscribe(handlers as never);
    },
    async close() {
      if (seen === 0) throw new Error('the traced contender saw no operation: its subscriber was never called');
      await runner.close();
    },
  };
}

/** The name of a store contender's twin that runs every deduct under a policy (see {@link POLICED}). */
export const withPolicyName = (name: string): string => `${name}, policy`;

/**
 * What the "policy" contenders add to every deduct: each SKU has a policy (a backorder
 * allowance of 0 so nothing more is sold, a low-stock threshold, and a buyerMax no buyer
 * reaches), and each deduct names one of `buyers` buyers, so the step reads and writes a buyer
 * total. The cost of the commerce rules, against the same store without them in the same run.
 */
export const POLICED = { buyers: 1000, policy: { backorderMax: 0, lowStockAt: 10, buyerMax: 1_000_000_000 } } as const;

/** How many setup calls (restocks) run at once. */
const SETUP_IN_FLIGHT = 64;

/** Runs `task` for every item, at most `limit` at a time. */
export async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Stocks the workload's SKUs through the ledger itself (setup, not measured). */
export async function seedLedger(ledger: StockLedger, workload: Workload, policed = false): Promise<StockLedger> {
  await forEachLimited(workload.skus, SETUP_IN_FLIGHT, async (sku) => {
    await ledger.restock({ requestId: `restock-${sku}`, sku, qty: workload.unitsPerSku });
    if (policed) await ledger.setPolicy({ requestId: `policy-${sku}`, sku, ...POLICED.policy });
  });
  return ledger;
}

const linesOf = (skus: readonly string[]): Array<{ sku: string; qty: number }> => skus.map((sku) => ({ sku, qty: 1 }));

/** True if applied afresh, false if short of stock; throws on anything else (a replay of a fresh request included). */
function appliedOrShort(what: string, result: { ok: true; replayed: boolean } | { ok: false; code: string }): boolean {
  if (result.ok && !result.replayed) return true;
  if (!result.ok && result.code === 'INSUFFICIENT_STOCK') return false;
  throw new Error(`${what} neither applied nor was short of stock: ${JSON.stringify(result)}`);
}

export function ledgerRunner(ledger: StockLedger, cleanUp: () => Promise<void>, policed = false): Runner {
  let calls = 0;
  const buyer = (): { buyer?: string } => (policed ? { buyer: `buyer-${(calls += 1) % POLICED.buyers}` } : {});
  return {
    async deduct(requestId, skus) {
      // One SKU in its shorthand form, as the single-line workloads always measured it.
      const input = skus.length === 1 ? { requestId, sku: skus[0] as string, qty: 1, ...buyer() } : { requestId, lines: linesOf(skus), ...buyer() };
      return appliedOrShort(`deduct ${requestId}`, await ledger.deduct(input));
    },
    async reserve(requestId, skus, ttlMs) {
      return appliedOrShort(`reserve ${requestId}`, await ledger.reserve({ requestId, lines: linesOf(skus), ttlMs, ...buyer() }));
    },
    async settle(reservationId, commit) {
      const result = commit ? await ledger.commit({ reservationId }) : await ledger.release({ reservationId });
      if (!result.ok || result.replayed) throw new Error(`${commit ? 'commit' : 'release'} of ${reservationId} did not apply: ${JSON.stringify(result)}`);
    },
    async totals(skus) {
      const totals: Totals = { onHand: 0, reserved: 0 };
      for (let from = 0; from < skus.length; from += LIMITS.skusPerReadMax) {
        for (const level of await ledger.stocks(skus.slice(from, from + LIMITS.skusPerReadMax))) {
          totals.onHand += level.onHand;
          totals.reserved += level.reserved;
        }
      }
      return totals;
    },
    async close() {
      await ledger.close();
      await cleanUp();
    },
  };
}

/** A line of a raw baseline's deduct or reserve. */
export interface RawLine {
  sku: string;
  qty: number;
}

/**
 * What the raw baselines share. deduct, deductLines and reserve return `{ ok, replayed }` (ok
 * false: short of stock); commit and release `{ ok, replayed }` too, ok false meaning refused
 * (no such reservation, expired, or settled the other way). Lines name distinct SKUs.
 */
export interface RawStock {
  deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawResult>;
  deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<RawResult>;
  reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<RawResult>;
  commit(reservationId: string): Promise<RawResult>;
  release(reservationId: string): Promise<RawResult>;
  totals(skus: readonly string[]): Promise<Totals>;
  close?(): Promise<void>;
}

export interface RawResult {
  ok: boolean;
  replayed?: boolean;
}

export function rawRunner(stock: RawStock, cleanUp: () => Promise<void>): Runner {
  const fresh = (requestId: string, result: RawResult): boolean => {
    if (result.replayed === true) throw new Error(`fresh request ${requestId} came back as a replay`);
    return result.ok;
  };
  return {
    async deduct(requestId, skus) {
      const result = skus.length === 1 ? await stock.deduct({ requestId, sku: skus[0] as string, qty: 1 }) : await stock.deductLines({ requestId, lines: linesOf(skus) });
      return fresh(requestId, result);
    },
    reserve: async (requestId, skus, ttlMs) => fresh(requestId, await stock.reserve({ requestId, lines: linesOf(skus), ttlMs })),
    async settle(reservationId, commit) {
      const result = commit ? await stock.commit(reservationId) : await stock.release(reservationId);
      if (!result.ok || result.replayed === true) throw new Error(`${commit ? 'commit' : 'release'} of ${reservationId} did not apply: ${JSON.stringify(result)}`);
    },
    totals: (skus) => stock.totals(skus),
    async close() {
      await stock.close?.();
      await cleanUp();
    },
  };
}

const noCleanUp = async (): Promise<void> => {};

export function memoryContenders(): Contender[] {
  const rawMap: Contender = {
    name: NAMES.rawMap,
    group: 'memory',
    async open(workload) {
      const stock = new RawMapStock();
      for (const sku of workload.skus) await stock.restock({ sku, qty: workload.unitsPerSku });
      return rawRunner(stock, noCleanUp);
    },
  };
  const memoryStore = (policed: boolean): Contender => ({
    name: policed ? withPolicyName(NAMES.memoryStore) : NAMES.memoryStore,
    group: 'memory',
    baseline: policed ? NAMES.memoryStore : NAMES.rawMap,
    twin: policed,
    open: async (workload) => ledgerRunner(await seedLedger(new StockLedger({ store: new MemoryStore() }), workload, policed), noCleanUp, policed),
  });
  const traced: Contender = {
    name: withTracingName(NAMES.memoryStore),
    group: 'memory',
    baseline: NAMES.memoryStore,
    twin: true,
    open: async (workload) => tracedRunner(ledgerRunner(await seedLedger(new StockLedger({ store: new MemoryStore() }), workload), noCleanUp)),
  };
  return [rawMap, memoryStore(false), memoryStore(true), traced];
}

/** SQLite files of one run: fresh names in `dir`, removed with their WAL and SHM. */
class DbFiles {
  #counter = 0;
  constructor(readonly dir: string) {}
  next(label: string): string {
    return join(this.dir, `${label}-${(this.#counter += 1)}.db`);
  }
  remove(path: string): void {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
  }
  copy(from: string, to: string): void {
    for (const suffix of ['', '-wal']) if (existsSync(`${from}${suffix}`)) copyFileSync(`${from}${suffix}`, `${to}${suffix}`);
  }
}

export function sqliteContenders(dir: string): Contender[] {
  const files = new DbFiles(dir);
  const rawOpen = (label: string, make: (path: string) => RawSqliteStock | RawSqliteBatch) => async (workload: Workload) => {
    const path = files.next(label);
    const stock = make(path);
    await stock.restockAll(workload.skus, workload.unitsPerSku);
    return rawRunner(stock, async () => files.remove(path));
  };
  return [
    { name: NAMES.rawSqlite, group: 'sqlite', open: rawOpen('raw', (path) => new RawSqliteStock({ path, synchronous: 'FULL' })) },
    {
      name: NAMES.rawSqliteBatch,
      group: 'sqlite',
      baseline: NAMES.rawSqlite,
      open: rawOpen('raw-batch', (path) => new RawSqliteBatch({ path, synchronous: 'FULL', batchOperationsMax: 100 })),
    },
    sqliteStoreContender(files, 'plain'),
    sqliteStoreContender(files, 'policy'),
    sqliteStoreContender(files, 'traced'),
    sqliteStoreContender(files, 'writer thread'),
  ];
}

/**
 * The SQLite store with default options (synchronous=FULL). Stocking 10,000 SKUs through the
 * ledger at FULL takes seconds, so each stock a workload starts with is stocked once into a
 * template file (at NORMAL: only the setup is faster; workloads that start alike share it) and
 * every measurement opens a fresh copy of it.
 */
function sqliteStoreContender(files: DbFiles, variant: 'plain' | 'policy' | 'traced' | 'writer thread'): Contender {
  const policed = variant === 'policy';
  const traced = variant === 'traced';
  const templates = new Map<string, string>();
  const template = async (workload: Workload): Promise<string> => {
    const key = `${workload.skus.length} SKUs from ${workload.skus[0] ?? ''}, ${workload.unitsPerSku} units each`;
    const known = templates.get(key);
    if (known !== undefined) return known;
    const path = files.next('store-template');
    const ledger = await seedLedger(new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) }), workload, policed);
    await ledger.close();
    templates.set(key, path);
    return path;
  };
  return {
    name: policed ? withPolicyName(NAMES.sqliteStore) : traced ? withTracingName(NAMES.sqliteStore) : variant === 'plain' ? NAMES.sqliteStore : `${NAMES.sqliteStore}, writer thread`,
    group: 'sqlite',
    baseline: variant === 'plain' ? NAMES.rawSqlite : NAMES.sqliteStore,
    twin: variant !== 'plain',
    async open(workload) {
      const path = files.next('store');
      files.copy(await template(workload), path);
      const store = new SqliteStore({ path, writerThread: variant === 'writer thread' });
      const runner = ledgerRunner(new StockLedger({ store }), async () => files.remove(path), policed);
      return traced ? tracedRunner(runner) : runner;
    },
    async dispose() {
      for (const path of templates.values()) files.remove(path);
      templates.clear();
    },
  };
}
