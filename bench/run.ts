/**
 * `npm run bench`: what the ledger costs over the least code that is still safe.
 *
 * - memory: `StockLedger` + `MemoryStore` against a hand-written idempotent deduct on plain
 *   Maps (bench/raw-map.ts);
 * - SQLite: `StockLedger` + `SqliteStore` against a hand-written one-transaction-per-deduct
 *   better-sqlite3 loop (bench/raw-sqlite.ts), at synchronous=FULL and at NORMAL.
 *
 * One operation is a single-line deduct of one unit under a fresh request id, awaited before the
 * next (the latency a request handler sees). Each side gets a warmup, then rounds that
 * alternate raw and store, each on fresh state: in memory a fixed count of deducts (both sides
 * then work on maps of the same size), on SQLite a fixed time. The median round counts.
 * Results are printed and, for a full run (no BENCH_ONLY), written to bench/results.md.
 *
 * Knobs: BENCH_ROUND_MS (SQLite, default 1000), BENCH_MEMORY_OPS (default 150000),
 * BENCH_ROUNDS (default 5), BENCH_ONLY=memory|sqlite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, platform, arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { StockLedger, type StockStore } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { SqliteStore } from 'stock-ledger/sqlite';
import { RawMapStock } from './raw-map.js';
import { RawSqliteStock } from './raw-sqlite.js';

const ROUND_MS = envInt('BENCH_ROUND_MS', 1000, 50, 10_000);
const ROUNDS = envInt('BENCH_ROUNDS', 5, 1, 15);
const WARMUP_MS = Math.min(1000, Math.max(200, ROUND_MS / 2));
/** Deducts per memory round (both sides); a round also stops at ROUND_TIME_MS_MAX. */
const MEMORY_OPS_PER_ROUND = envInt('BENCH_MEMORY_OPS', 150_000, 1000, 5_000_000);
/** No round runs longer than this, whatever its op count. */
const ROUND_TIME_MS_MAX = 4000;
/** Hard cap on operations per measurement, whatever the clock says. */
const OPS_PER_MEASUREMENT_MAX = 5_000_000;
/** How often the loop looks at the clock. */
const OPS_PER_CLOCK_CHECK = 64;
const SKUS = Array.from({ length: 16 }, (_, i) => `SKU-${String(i).padStart(2, '0')}`);
const UNITS_PER_SKU = 1_000_000_000_000;
const ONLY = process.env['BENCH_ONLY'] ?? 'all';

/** One side of a comparison, opened on fresh state for every measurement. */
interface Contender {
  open(): Promise<Runner>;
}

interface Runner {
  /** One deduct; must throw if it was not applied. */
  deduct(i: number): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  name: string;
  /** The ratio store/raw the project aims for. */
  target: number;
  /**
   * Operations per round, or null to run for BENCH_ROUND_MS. In memory both sides do the same
   * count, so both pay for maps of the same size; on disk a count would not bound the time.
   */
  opsPerRound: number | null;
  raw: Contender;
  store: Contender;
}

interface PairResult {
  name: string;
  target: number;
  raw: number[];
  store: number[];
}

/**
 * A full garbage collection before each measurement, so no round pays for the garbage the
 * previous one (often the other side) left behind. Same as node --expose-gc, set at run time.
 */
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-bench-'));
let fileCounter = 0;
const nextPath = (label: string): string => join(dir, `${label}-${(fileCounter += 1)}.db`);
const removeDb = (path: string): void => {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
};

// ---------------------------------------------------------------------------------------------
// Contenders.

const rawMap: Contender = {
  async open() {
    const stock = new RawMapStock();
    for (const sku of SKUS) await stock.restock({ sku, qty: UNITS_PER_SKU });
    return {
      async deduct(i) {
        const result = await stock.deduct({ requestId: `op-${i}`, sku: SKUS[i % SKUS.length] as string, qty: 1 });
        if (!result.ok || result.replayed) throw new Error(`raw map deduct ${i} was not applied`);
      },
      async close() {},
    };
  },
};

function ledgerOn(makeStore: () => { store: StockStore; cleanUp(): void }): Contender {
  return {
    async open() {
      const { store, cleanUp } = makeStore();
      const ledger = new StockLedger({ store });
      for (const sku of SKUS) await ledger.restock({ requestId: `restock-${sku}`, sku, qty: UNITS_PER_SKU });
      return {
        async deduct(i) {
          const result = await ledger.deduct({ requestId: `op-${i}`, sku: SKUS[i % SKUS.length] as string, qty: 1 });
          if (!result.ok || result.replayed) throw new Error(`ledger deduct ${i} was not applied`);
        },
        async close() {
          await ledger.close();
          cleanUp();
        },
      };
    },
  };
}

const memoryLedger = ledgerOn(() => ({ store: new MemoryStore(), cleanUp: () => {} }));

function sqliteLedger(durability: 'full' | 'normal'): Contender {
  return ledgerOn(() => {
    const path = nextPath(`store-${durability}`);
    return { store: new SqliteStore({ path, durability }), cleanUp: () => removeDb(path) };
  });
}

function rawSqlite(synchronous: 'FULL' | 'NORMAL'): Contender {
  return {
    async open() {
      const path = nextPath(`raw-${synchronous.toLowerCase()}`);
      const stock = new RawSqliteStock({ path, synchronous });
      for (const sku of SKUS) await stock.restock({ sku, qty: UNITS_PER_SKU });
      return {
        async deduct(i) {
          const result = await stock.deduct({ requestId: `op-${i}`, sku: SKUS[i % SKUS.length] as string, qty: 1 });
          if (!result.ok || result.replayed) throw new Error(`raw SQLite deduct ${i} was not applied`);
        },
        async close() {
          await stock.close();
          removeDb(path);
        },
      };
    },
  };
}

const PAIRS: Pair[] = [
  { name: 'memory', target: 0.5, opsPerRound: MEMORY_OPS_PER_ROUND, raw: rawMap, store: memoryLedger },
  { name: 'SQLite, synchronous=FULL', target: 0.7, opsPerRound: null, raw: rawSqlite('FULL'), store: sqliteLedger('full') },
  { name: 'SQLite, synchronous=NORMAL', target: 0.7, opsPerRound: null, raw: rawSqlite('NORMAL'), store: sqliteLedger('normal') },
].filter((pair) => ONLY === 'all' || pair.name.toLowerCase().startsWith(ONLY.toLowerCase()));

// ---------------------------------------------------------------------------------------------
// Measuring.

/**
 * Runs deducts one at a time until `opsMax` are done or `durationMs` has passed, whichever
 * comes first; returns operations per second.
 */
async function measure(contender: Contender, limits: { durationMs: number; opsMax: number }): Promise<number> {
  const runner = await contender.open();
  try {
    collectGarbage();
    let ops = 0;
    const started = performance.now();
    let elapsed = 0;
    while (elapsed < limits.durationMs && ops < limits.opsMax) {
      for (let k = 0; k < OPS_PER_CLOCK_CHECK; k += 1) await runner.deduct((ops += 1));
      elapsed = performance.now() - started;
    }
    return (ops / elapsed) * 1000;
  } finally {
    await runner.close();
  }
}

async function runPair(pair: Pair): Promise<PairResult> {
  const warmup = { durationMs: WARMUP_MS, opsMax: OPS_PER_MEASUREMENT_MAX };
  await measure(pair.raw, warmup);
  await measure(pair.store, warmup);
  const limits = pair.opsPerRound === null
    ? { durationMs: ROUND_MS, opsMax: OPS_PER_MEASUREMENT_MAX }
    : { durationMs: ROUND_TIME_MS_MAX, opsMax: pair.opsPerRound };
  const result: PairResult = { name: pair.name, target: pair.target, raw: [], store: [] };
  for (let round = 0; round < ROUNDS; round += 1) {
    // Alternate who goes first, so a slow drift of the machine does not favour one side.
    const order = round % 2 === 0 ? (['raw', 'store'] as const) : (['store', 'raw'] as const);
    for (const side of order) result[side].push(await measure(pair[side], limits));
    const raw = result.raw[result.raw.length - 1] ?? 0;
    const store = result.store[result.store.length - 1] ?? 0;
    console.log(`  ${pair.name.padEnd(27)} round ${round + 1}/${ROUNDS}: raw ${fmt(raw).padStart(10)} ops/s   stock-ledger ${fmt(store).padStart(10)} ops/s   ratio ${(store / raw).toFixed(2)}`);
  }
  return result;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function envInt(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

interface Row {
  name: string;
  raw: string;
  store: string;
  ratio: string;
  /** Median of the per-round ratios: each raw round paired with the store round next to it. */
  paired: string;
  target: string;
  verdict: string;
  spread: string;
}

function rowsOf(results: readonly PairResult[]): Row[] {
  return results.map((r) => {
    const raw = median(r.raw);
    const store = median(r.store);
    const ratio = store / raw;
    const paired = median(r.store.map((value, i) => value / (r.raw[i] ?? Number.NaN)));
    const range = (values: readonly number[]): string => `${fmt(Math.min(...values))}-${fmt(Math.max(...values))}`;
    return {
      name: r.name,
      raw: fmt(raw),
      store: fmt(store),
      ratio: `${ratio.toFixed(2)}x`,
      paired: `${paired.toFixed(2)}x`,
      target: `>= ${r.target}x`,
      verdict: ratio >= r.target ? 'met' : 'MISSED',
      spread: `raw ${range(r.raw)}, stock-ledger ${range(r.store)}`,
    };
  });
}

function printTable(rows: readonly Row[]): void {
  const header: Row = {
    name: 'store', raw: 'raw ops/s', store: 'stock-ledger ops/s', ratio: 'ratio', paired: 'paired', target: 'target', verdict: '', spread: '',
  };
  const all = [header, ...rows];
  const keys = ['name', 'raw', 'store', 'ratio', 'paired', 'target', 'verdict'] as const;
  const widths = keys.map((key) => Math.max(...all.map((row) => row[key].length)));
  console.log('');
  for (const [i, row] of all.entries()) {
    const cells = keys.map((key, col) => (col === 0 || key === 'verdict' ? row[key].padEnd(widths[col] ?? 0) : row[key].padStart(widths[col] ?? 0)));
    console.log(`  ${cells.join('   ')}`.trimEnd());
    if (i === 0) console.log(`  ${widths.map((w) => '-'.repeat(w)).join('   ')}`);
  }
}

function environment(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `Node ${process.version}, ${platform()} ${arch()}, ${cpus().length} cores (${cpu}); temp files in ${tmpdir()}`;
}

function markdown(rows: readonly Row[], startedAt: Date): string {
  const lines = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` on ${startedAt.toISOString().slice(0, 10)}: ${environment()}.`,
    '',
    `One operation is a single-line deduct of 1 unit under a fresh request id, awaited before the next. ` +
      `Each figure is the median of ${ROUNDS} rounds on fresh state, after a warmup; raw and stock-ledger rounds alternate. ` +
      `A memory round is ${MEMORY_OPS_PER_ROUND.toLocaleString('en-US')} deducts on each side; a SQLite round lasts about ${ROUND_MS} ms.`,
    '',
    '| store | raw ops/s | stock-ledger ops/s | ratio | paired ratio | target | |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.raw} | ${r.store} | ${r.ratio} | ${r.paired} | ${r.target} | ${r.verdict} |`),
    '',
    '`ratio` is the median stock-ledger figure over the median raw one (what the target is checked ' +
      'against); `paired ratio` is the median of per-round ratios, each store round against the raw ' +
      'round next to it, which shrugs off slow drifts of the machine.',
    '',
    'Rounds ranged:',
    '',
    ...rows.map((r) => `- ${r.name}: ${r.spread}`),
    '',
    'Baselines: `bench/raw-map.ts` (request-id map, level map, entry array, no await inside) and ' +
      '`bench/raw-sqlite.ts` (one `BEGIN IMMEDIATE` transaction per deduct: request-id insert, ' +
      '`UPDATE ... WHERE qty >= ?`, entry insert, `COMMIT`; WAL, same `synchronous`). The ledger on top ' +
      'also validates input, fingerprints the payload, stores the full outcome for replays and copies ' +
      'what it returns. Figures depend on the machine, above all on what an fsync costs for FULL.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const onSignal = (): void => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`stock-ledger bench: ${environment()}`);
    console.log(`${ROUNDS} rounds per side after a ${WARMUP_MS} ms warmup (memory: ${MEMORY_OPS_PER_ROUND.toLocaleString('en-US')} deducts, SQLite: ~${ROUND_MS} ms); median counts.\n`);
    const results: PairResult[] = [];
    for (const pair of PAIRS) results.push(await runPair(pair));
    const rows = rowsOf(results);
    printTable(rows);
    const seconds = ((Date.now() - startedAt.getTime()) / 1000).toFixed(0);
    if (ONLY === 'all') {
      writeFileSync(new URL('./results.md', import.meta.url), markdown(rows, startedAt));
      console.log(`\n  written to bench/results.md (${seconds} s in all)`);
    } else {
      console.log(`\n  partial run (BENCH_ONLY=${ONLY}): bench/results.md left as it was (${seconds} s in all)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
