/**
 * A flash sale on SQLite, twice: once with the usual read-then-write code, once with
 * stock-ledger. Same buyers, same flaky network, same engine, same durability.
 *
 *   npm run demo                 (or: npx tsx examples/flash-sale.ts)
 *   SEED=7 BUYERS=5000 DURABILITY=normal npm run demo
 *
 * The network is simulated in this process: a request may be lost on the way to the shop (the
 * client times out and sends it again), or its reply may be lost after the shop has written
 * (the client times out and sends it again: the classic double charge). The naive shop uses
 * several SQLite connections and yields to the event loop between its SELECT and its UPDATE,
 * exactly where a real handler awaits a price service, a fraud check or its ORM.
 *
 * Everything random comes from one seed, and each buyer's network fate is drawn up front, so
 * both shops face the same buyers and the same failures. Timers still interleave by wall
 * clock, so runs are similar, not identical.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StockLedger } from 'stock-ledger';
import { SqliteStore } from 'stock-ledger/sqlite';

const SEED = envInt('SEED', 20_260_101);
const BUYERS = envInt('BUYERS', 3000);

/** The sale: 500 units over three SKUs, one of them hot. Weights say what buyers go for. */
const CATALOG = [
  { sku: 'SNEAKER-42', units: 300, weight: 0.6 },
  { sku: 'HOODIE-L', units: 120, weight: 0.25 },
  { sku: 'CAP', units: 80, weight: 0.15 },
] as const;

const NETWORK = {
  /** Buyers arrive within this window, most of them at the start (the rush at opening). */
  arrivalWindowMs: 3000,
  /** One-way latency, uniform in [0, latencyMsMax). */
  latencyMsMax: 6,
  /** Share of requests lost before they reach the shop. */
  lostRequestRate: 0.05,
  /** Share of replies lost after the shop has written. */
  lostReplyRate: 0.1,
  /** How long a client waits for a reply before it sends the same order again. */
  clientTimeoutMs: 30,
  /** Attempts per order, the first included. */
  attemptsMax: 5,
} as const;

/** Connections (think: app servers) each shop spreads its requests over. */
const CONNECTIONS = 4;
/** Same `synchronous` for both shops: FULL (the store's default), or NORMAL with DURABILITY=normal. */
const DURABILITY = process.env['DURABILITY'] === 'normal' ? 'normal' : 'full';

type Reply = 'bought' | 'sold-out';
type Outcome = Reply | 'gave-up';

interface Order {
  id: number;
  buyer: string;
  sku: string;
  qty: number;
  /** When the buyer clicks "buy", from the opening of the sale. */
  arriveAtMs: number;
  /** Per attempt: what the network does to it. */
  fates: Fate[];
}

interface Fate {
  toShopMs: number;
  toClientMs: number;
  requestLost: boolean;
  replyLost: boolean;
  /** Which connection (app server) the request lands on. */
  connection: number;
  /** Think time of the naive handler between its read and its write. */
  handlerMs: number;
}

/** What a shop looks like from the network: take an order, reply. */
interface Shop {
  name: string;
  buy(order: Order, fate: Fate): Promise<Reply>;
  /** Ground truth, read from the database after the sale. */
  audit(): Promise<Audit>;
  close(): Promise<void>;
}

interface Audit {
  unitsSold: number;
  oversold: number;
  doubleCharged: number;
  counterLeft: number;
  note: string;
}

// ---------------------------------------------------------------------------------------------
// The naive shop: read the level, think, write the computed level back. No transaction around
// the two, no idempotency: a retried order is simply a new order.

function naiveShop(dir: string): Shop {
  const path = join(dir, 'naive.db');
  const connections = Array.from({ length: CONNECTIONS }, () => {
    const db = new Database(path, { timeout: 5000 });
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${DURABILITY.toUpperCase()}`);
    return db;
  });
  const setup = connections[0] as Database.Database;
  setup.exec(`
    CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
    CREATE TABLE charges (order_id INTEGER NOT NULL, buyer TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL);
  `);
  const seed = setup.prepare('INSERT INTO stock (sku, qty) VALUES (?, ?)');
  for (const { sku, units } of CATALOG) seed.run(sku, units);
  const statements = connections.map((db) => ({
    read: db.prepare('SELECT qty FROM stock WHERE sku = ?'),
    write: db.prepare('UPDATE stock SET qty = ? WHERE sku = ?'),
    charge: db.prepare('INSERT INTO charges (order_id, buyer, sku, qty) VALUES (?, ?, ?, ?)'),
  }));

  return {
    name: 'naive read-then-write',
    async buy(order, fate) {
      const sql = statements[fate.connection] as (typeof statements)[number];
      const { qty: left } = sql.read.get(order.sku) as { qty: number };
      await sleep(fate.handlerMs); // price lookup, fraud check, ORM round trip...
      if (left < order.qty) return 'sold-out';
      sql.write.run(left - order.qty, order.sku); // the lost update: another handler read `left` too
      sql.charge.run(order.id, order.buyer, order.sku, order.qty);
      return 'bought';
    },
    async audit() {
      const sold = setup.prepare('SELECT sku, SUM(qty) AS units FROM charges GROUP BY sku').all() as Array<{ sku: string; units: number }>;
      const twice = setup.prepare('SELECT COUNT(*) AS n FROM (SELECT order_id FROM charges GROUP BY order_id HAVING COUNT(*) > 1)').get() as { n: number };
      const left = setup.prepare('SELECT SUM(qty) AS n FROM stock').get() as { n: number };
      return { ...tally(new Map(sold.map((r) => [r.sku, r.units]))), doubleCharged: twice.n, counterLeft: left.n, note: '' };
    },
    async close() {
      for (const db of connections) db.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The ledger shop: one call. The order id is the request id, so a retry is a replay.

async function ledgerShop(dir: string): Promise<Shop> {
  const path = join(dir, 'ledger.db');
  const ledgers = Array.from({ length: CONNECTIONS }, () => new StockLedger({ store: new SqliteStore({ path, durability: DURABILITY }) }));
  const admin = ledgers[0] as StockLedger;
  for (const { sku, units } of CATALOG) await admin.restock({ requestId: `restock-${sku}`, sku, qty: units });

  return {
    name: 'stock-ledger',
    async buy(order, fate) {
      const ledger = ledgers[fate.connection] as StockLedger;
      const result = await ledger.deduct({ requestId: `order-${order.id}`, sku: order.sku, qty: order.qty, meta: { buyer: order.buyer } });
      return result.ok ? 'bought' : 'sold-out';
    },
    async audit() {
      const sold = new Map<string, number>();
      const applied = new Map<string, number>();
      let after = 0;
      for (let page = 0; page < 1000; page += 1) {
        const { entries, next } = await admin.entries({ after, limit: 1000 });
        for (const e of entries) {
          if (e.kind !== 'deduct') continue;
          sold.set(e.sku, (sold.get(e.sku) ?? 0) - e.onHandDelta);
          applied.set(e.requestId, (applied.get(e.requestId) ?? 0) + 1);
        }
        if (next === null) break;
        after = next;
      }
      const levels = await admin.stocks(CATALOG.map((c) => c.sku));
      const report = await admin.verify();
      const doubleCharged = [...applied.values()].filter((n) => n > 1).length;
      const note = `ledger.verify(): ${report.ok ? 'ok' : 'DRIFT'}, ${report.skusChecked} SKUs, entries fold to the stored levels`;
      return { ...tally(sold), doubleCharged, counterLeft: levels.reduce((n, l) => n + l.onHand, 0), note };
    },
    async close() {
      for (const ledger of ledgers) await ledger.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The buyers and their network.

/** One buyer: send, maybe lose the request or the reply, time out, send the same order again. */
async function shopper(shop: Shop, order: Order): Promise<Outcome> {
  for (const fate of order.fates) {
    await sleep(fate.toShopMs);
    if (fate.requestLost) {
      await sleep(NETWORK.clientTimeoutMs - fate.toShopMs);
      continue;
    }
    const reply = await shop.buy(order, fate);
    await sleep(fate.toClientMs);
    if (fate.replyLost) {
      await sleep(Math.max(0, NETWORK.clientTimeoutMs - fate.toShopMs - fate.toClientMs));
      continue; // the shop did its work; the client cannot know, and asks again
    }
    return reply;
  }
  return 'gave-up';
}

async function runSale(shop: Shop, orders: readonly Order[]): Promise<{ outcomes: Map<Outcome, number>; ms: number }> {
  const outcomes = new Map<Outcome, number>();
  const progress = new Progress(shop.name, orders.length);
  const started = performance.now();
  const timer = setInterval(() => progress.print(), progress.intervalMs);
  try {
    await Promise.all(orders.map(async (order) => {
      await sleep(order.arriveAtMs);
      const outcome = await shopper(shop, order);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      progress.tick(outcome);
    }));
  } finally {
    clearInterval(timer);
  }
  progress.print();
  progress.done();
  return { outcomes, ms: performance.now() - started };
}

function makeOrders(count: number, random: () => number): Order[] {
  const totalWeight = CATALOG.reduce((n, c) => n + c.weight, 0);
  return Array.from({ length: count }, (_, id) => {
    let pick = random() * totalWeight;
    const item = CATALOG.find((c) => (pick -= c.weight) < 0) ?? CATALOG[0];
    const fates = Array.from({ length: NETWORK.attemptsMax }, (): Fate => ({
      toShopMs: Math.floor(random() * NETWORK.latencyMsMax),
      toClientMs: Math.floor(random() * NETWORK.latencyMsMax),
      requestLost: random() < NETWORK.lostRequestRate,
      replyLost: random() < NETWORK.lostReplyRate,
      connection: Math.floor(random() * CONNECTIONS),
      handlerMs: Math.floor(random() * 3),
    }));
    const arriveAtMs = Math.floor(NETWORK.arrivalWindowMs * random() ** 2);
    return { id: id + 1, buyer: `buyer-${id + 1}`, sku: item.sku, qty: random() < 0.2 ? 2 : 1, arriveAtMs, fates };
  });
}

/** Units sold and oversold, from units sold per SKU. */
function tally(soldBySku: Map<string, number>): { unitsSold: number; oversold: number } {
  let unitsSold = 0;
  let oversold = 0;
  for (const { sku, units } of CATALOG) {
    const sold = soldBySku.get(sku) ?? 0;
    unitsSold += sold;
    oversold += Math.max(0, sold - units);
  }
  return { unitsSold, oversold };
}

// ---------------------------------------------------------------------------------------------
// Output.

class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #tty = process.stdout.isTTY === true;
  /** A line rewritten in place on a terminal; one line a second in a log. */
  readonly intervalMs = this.#tty ? 100 : 1000;
  #done = 0;
  #bought = 0;

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = total;
  }

  tick(outcome: Outcome): void {
    this.#done += 1;
    if (outcome === 'bought') this.#bought += 1;
  }

  print(): void {
    const width = 30;
    const filled = Math.round((this.#done / this.#total) * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `  ${this.#label.padEnd(22)} [${bar}] ${String(this.#done).padStart(5)}/${this.#total} buyers served, ${this.#bought} told "bought"`;
    process.stdout.write(this.#tty ? `\r${line}` : `${line}\n`);
  }

  done(): void {
    if (this.#tty) process.stdout.write('\n');
  }
}

function printTable(rows: Array<{ name: string; audit: Audit; ms: number; outcomes: Map<Outcome, number> }>): void {
  const units = CATALOG.reduce((n, c) => n + c.units, 0);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  const lines: Array<[string, ...string[]]> = [
    ['', ...rows.map((r) => r.name)],
    [`units sold (stock: ${units})`, ...rows.map((r) => fmt(r.audit.unitsSold))],
    ['oversold units', ...rows.map((r) => fmt(r.audit.oversold))],
    ['double-charged orders', ...rows.map((r) => fmt(r.audit.doubleCharged))],
    ['stock counter at the end', ...rows.map((r) => fmt(r.audit.counterLeft))],
    ['buyers who gave up', ...rows.map((r) => fmt(r.outcomes.get('gave-up') ?? 0))],
    ['time', ...rows.map((r) => `${(r.ms / 1000).toFixed(1)} s`)],
  ];
  const columns = rows.length + 1;
  const widths = Array.from({ length: columns }, (_, col) => Math.max(...lines.map((line) => (line[col] ?? '').length)));
  console.log('');
  for (const [i, line] of lines.entries()) {
    const cells = line.map((cell, col) => (col === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[col] ?? 0)));
    console.log(`  ${cells.join('   ')}`);
    if (i === 0) console.log(`  ${widths.map((w) => '-'.repeat(w)).join('   ')}`);
  }
  console.log('');
  for (const row of rows) if (row.audit.note !== '') console.log(`  ${row.audit.note}`);
}

// ---------------------------------------------------------------------------------------------

/** Small, fast, seedable PRNG (mulberry32): enough for a simulation, not for secrets. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1 || value > 1_000_000) throw new RangeError(`${name} must be an integer from 1 to 1000000`);
  return value;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-demo-'));
  const cleanUp = (): void => rmSync(dir, { recursive: true, force: true });
  const onSignal = (): void => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const shops: Shop[] = [];
  try {
    const units = CATALOG.reduce((n, c) => n + c.units, 0);
    console.log(`Flash sale: ${BUYERS.toLocaleString('en-US')} buyers, ${units} units over ${CATALOG.length} SKUs (${CATALOG.map((c) => `${c.sku} ${c.units}`).join(', ')}).`);
    console.log(
      `Network: ${NETWORK.lostRequestRate * 100}% of requests and ${NETWORK.lostReplyRate * 100}% of replies lost, ` +
        `resent after ${NETWORK.clientTimeoutMs} ms with the same order; buyers arrive within ${NETWORK.arrivalWindowMs / 1000} s.`,
    );
    console.log(`SQLite in ${dir} (WAL, synchronous=${DURABILITY.toUpperCase()}, ${CONNECTIONS} connections per shop). Seed ${SEED}.\n`);
    const orders = makeOrders(BUYERS, mulberry32(SEED));
    const rows = [];
    for (const open of [async () => naiveShop(dir), () => ledgerShop(dir)]) {
      const shop = await open();
      shops.push(shop);
      const { outcomes, ms } = await runSale(shop, orders);
      rows.push({ name: shop.name, audit: await shop.audit(), ms, outcomes });
    }
    printTable(rows);
    console.log('\n  Naive: handlers read the same level and overwrite each other (oversold), and a retried');
    console.log('  order is charged again (double-charged). Ledger: one atomic conditional step per order,');
    console.log('  and the order id as request id turns every retry into a replay.');
  } finally {
    for (const shop of shops) await shop.close();
    cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
