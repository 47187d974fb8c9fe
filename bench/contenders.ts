/**
 * The contenders of `npm run bench`: each is a small factory that opens a runner on fresh state
 * stocked for a workload. A store is compared with the raw baseline named in `baseline`.
 * Redis contenders live in bench/raw-redis.ts and bench/redis-store.ts, PostgreSQL ones in
 * bench/raw-postgres.ts and bench/postgres-store.ts.
 */
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tracingChannel } from 'node:diagnostics_channel';
import { OPERATION_CHANNEL, StockLedger, type OperationTrace } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { SqliteStore } from 'stock-ledger/sqlite';
import { RawMapStock } from './raw-map.js';
import { RawSqliteBatch } from './raw-sqlite-batch.js';
import { RawSqliteStock } from './raw-sqlite.js';
import type { Workload } from './workloads.js';

export type Group = 'memory' | 'sqlite' | 'redis' | 'postgres';

export interface Runner {
  /** Deducts one unit of `sku`: true if sold, false if short of stock; throws on anything else. */
  deduct(requestId: string, sku: string): Promise<boolean>;
  /** Units of `sku` left, to check a run never sold more than it had. */
  onHand(sku: string): Promise<number>;
  close(): Promise<void>;
  /** Called before each of its measured slices; returns what to call after it (a subscription held only while it runs). */
  onSlice?(): () => void;
}

export interface Contender {
  name: string;
  group: Group;
  /** The contender this one's ratio is taken against; absent for the baseline itself. */
  baseline?: string;
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

export function ledgerRunner(ledger: StockLedger, cleanUp: () => Promise<void>, policed = false): Runner {
  let calls = 0;
  return {
    async deduct(requestId, sku) {
      const buyer = policed ? { buyer: `buyer-${(calls += 1) % POLICED.buyers}` } : {};
      const result = await ledger.deduct({ requestId, sku, qty: 1, ...buyer });
      if (result.ok && !result.replayed) return true;
      if (!result.ok && result.code === 'INSUFFICIENT_STOCK') return false;
      throw new Error(`deduct ${requestId} neither sold nor was short of stock: ${JSON.stringify(result)}`);
    },
    onHand: async (sku) => (await ledger.stock(sku)).onHand,
    async close() {
      await ledger.close();
      await cleanUp();
    },
  };
}

/** What the raw baselines share: deduct returns an outcome, `{ ok, replayed? }`. */
interface RawStock {
  deduct(options: { requestId: string; sku: string; qty: number }): Promise<{ ok: boolean; replayed?: boolean }>;
  onHand(sku: string): Promise<number>;
  close?(): Promise<void>;
}

export function rawRunner(stock: RawStock, cleanUp: () => Promise<void>): Runner {
  return {
    async deduct(requestId, sku) {
      const result = await stock.deduct({ requestId, sku, qty: 1 });
      if (result.replayed === true) throw new Error(`fresh request ${requestId} came back as a replay`);
      return result.ok;
    },
    onHand: (sku) => stock.onHand(sku),
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
    open: async (workload) => ledgerRunner(await seedLedger(new StockLedger({ store: new MemoryStore() }), workload, policed), noCleanUp, policed),
  });
  const traced: Contender = {
    name: withTracingName(NAMES.memoryStore),
    group: 'memory',
    baseline: NAMES.memoryStore,
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
    sqliteStoreContender(files, { policed: false, traced: false }),
    sqliteStoreContender(files, { policed: true, traced: false }),
    sqliteStoreContender(files, { policed: false, traced: true }),
  ];
}

/**
 * The SQLite store with default options (synchronous=FULL). Stocking 10,000 SKUs through the
 * ledger at FULL takes seconds, so each workload is stocked once into a template file (at
 * NORMAL: only the setup is faster) and every measurement opens a fresh copy of it.
 */
function sqliteStoreContender(files: DbFiles, variant: { policed: boolean; traced: boolean }): Contender {
  const { policed, traced } = variant;
  const templates = new Map<string, string>();
  const template = async (workload: Workload): Promise<string> => {
    const known = templates.get(workload.name);
    if (known !== undefined) return known;
    const path = files.next('store-template');
    const ledger = await seedLedger(new StockLedger({ store: new SqliteStore({ path, durability: 'normal' }) }), workload, policed);
    await ledger.close();
    templates.set(workload.name, path);
    return path;
  };
  return {
    name: policed ? withPolicyName(NAMES.sqliteStore) : traced ? withTracingName(NAMES.sqliteStore) : NAMES.sqliteStore,
    group: 'sqlite',
    baseline: policed || traced ? NAMES.sqliteStore : NAMES.rawSqlite,
    async open(workload) {
      const path = files.next('store');
      files.copy(await template(workload), path);
      const runner = ledgerRunner(new StockLedger({ store: new SqliteStore({ path }) }), async () => files.remove(path), policed);
      return traced ? tracedRunner(runner) : runner;
    },
    async dispose() {
      for (const path of templates.values()) files.remove(path);
      templates.clear();
    },
  };
}
