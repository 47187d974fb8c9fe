/**
 * PostgreSQL: the entries feed never skips. A follower reads `entries({ after })` while three
 * processes (group commit, shared request ids) and a loop of the app's own transactions (held
 * open for a while, one in four rolled back) write; it must see every entry exactly once,
 * with no gap, and each SKU's entries in version order.
 */
import type pg from 'pg';
import { StockLedger, type Entry } from 'stock-ledger';
import { PostgresStore } from 'stock-ledger/postgres';
import { readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { seededRandom } from '../testing/random.js';
import { checkWholeLedger, closedWithin, spawnWorker, startTogether } from './support/postgres-processes.js';
import { createDatabase, describePostgres, startPostgres, type PostgresServer } from './support/postgres-server.js';
import { quietPool } from './support/postgres-server.js';

const SKUS = ['apple', 'pear', 'plum', 'fig'];

/**
 * The test's pool, for a store: before the first statement that calls the sequencer after
 * `hook.run` is set, it runs the hook (once), so a test can commit something at exactly that point.
 */
function hookedPool(hook: { run: (() => Promise<void>) | null }): pg.Pool {
  const wrap = (client: pg.PoolClient): pg.PoolClient => new Proxy(client, {
    get(target, key) {
      if (key === 'query') {
        return async (...args: unknown[]) => {
          const first = args[0];
          const text = typeof first === 'string' ? first : String((first as { text?: unknown } | null)?.text ?? '');
          const run = hook.run;
          if (run !== null && text.includes('number_entries')) {
            hook.run = null;
            await run();
          }
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    totalCount: 0,
    connect: async () => wrap(await pool.connect()),
    query: (...args: unknown[]) => (pool.query as (...a: unknown[]) => unknown).apply(pool, args),
  } as unknown as pg.Pool;
}
let server: PostgresServer | undefined;
let database: { url: string; drop(): Promise<void> } | undefined;
let pool: pg.Pool;

describePostgres('PostgreSQL: the entries feed never skips', () => {
  beforeAll(async () => {
    server = await startPostgres();
    database = await createDatabase(server, 'feed');
    pool = quietPool({ connectionString: database.url, max: 12 });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
    await server?.stop();
  });

  it('a follower sees every entry once, per SKU in version order, while processes and joined transactions write', async () => {
    const seed = Number(process.env['STOCK_LEDGER_SEED'] ?? Date.now() % 1_000_000);
    console.log(`feed follower: seed ${seed} (replay with STOCK_LEDGER_SEED=${seed})`);
    const random = seededRandom(seed);
    const schema = 'feed';
    const ledger = new StockLedger({ store: new PostgresStore({ client: pool, schema }) });
    for (const sku of SKUS) await ledger.restock({ requestId: `seed-${sku}`, sku, qty: 400 });

    const workers = [0, 1, 2].map((w) => spawnWorker({
      url: (database as { url: string }).url, schema, driver: w === 1 ? 'postgres.js' : 'pg', worker: `w${w}`, ops: 150,
      seed: seed + w, skus: SKUS, sharedIds: 15, restockShare: 0.2, lanes: 3, groupCommit: true, pauseMs: 4,
    }));
    await startTogether(workers, 30_000);

    let writing = true;
    // The follower: a durable cursor, pages of 25, polling until the writers are done and it caught up.
    const seen: Entry[] = [];
    const follower = (async () => {
      let after = 0;
      for (let polls = 0; polls < 20_000; polls += 1) {
        const page = await ledger.entries({ after, limit: 25 });
        seen.push(...page.entries);
        if (page.next !== null) after = page.next;
        if (page.entries.length === 0) {
          if (!writing) return;
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
      }
      throw new Error('follower did not catch up within its poll bound');
    })();

    // The app's own transactions: each holds its row locks for a while; one in four rolls back.
    let committed = 0;
    const joined = (async () => {
      for (let i = 0; i < 40; i += 1) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const sku = SKUS[Math.floor(random() * SKUS.length)] as string;
          const r = random() < 0.5
            ? await ledger.deduct({ requestId: `app-${i}`, sku, qty: 1 }, { transaction: client })
            : await ledger.restock({ requestId: `app-${i}`, sku, qty: 2 }, { transaction: client });
          await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 40)));
          if (random() < 0.25 || !r.ok) await client.query('ROLLBACK');
          else {
            await client.query('COMMIT');
            committed += 1;
          }
        } finally {
          client.release();
        }
      }
    })();

    const exits = await Promise.all(workers.map((w) => closedWithin(w, 120_000)));
    await joined;
    writing = false;
    await follower;
    for (const [i, exit] of exits.entries()) expect(exit, `worker ${i}: ${workers[i]?.stderr.join('')}`).toEqual({ code: 0, signal: null });

    const all = await readAllEntries(ledger);
    // Exactly once, no gap, the very same entries as a reader that started after the end.
    expect(seen.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(seen).toEqual(all);
    expect(all.filter((e) => e.requestId.startsWith('app-'))).toHaveLength(committed);
    // Per SKU in version order: each entry's onHandAfter continues the previous one of its SKU.
    await checkWholeLedger(ledger, SKUS);
    console.log(`feed follower: ${seen.length} entries, ${committed} from joined transactions`);
  }, 180_000);

  it('a sweep raced by a reserve of another SKU that commits while the sweep numbers: the feed agrees with what it expired', async () => {
    for (const groupCommit of [false, true]) {
      const schema = `sweep_race_${groupCommit ? 'batched' : 'single'}`;
      const hook: { run: (() => Promise<void>) | null } = { run: null };
      const clock = { now: 1000 };
      const ledger = new StockLedger({ store: new PostgresStore({ client: hookedPool(hook), schema, groupCommit }), clock: () => clock.now });
      await ledger.restock({ requestId: 'sx', sku: 'X', qty: 5 });
      await ledger.restock({ requestId: 'sy', sku: 'Y', qty: 5 });
      await ledger.reserve({ requestId: 'h0', lines: [{ sku: 'Y', qty: 1 }], ttlMs: 1 });
      // The app reserves X in its own transaction, due at 2001; it commits right when the
      // sweep (at 2002, which read the due holds before that commit) numbers its entries.
      const app = await pool.connect();
      try {
        await app.query('BEGIN');
        clock.now = 2000;
        expect((await ledger.reserve({ requestId: 'c1', lines: [{ sku: 'X', qty: 1 }], ttlMs: 1 }, { transaction: app })).ok).toBe(true);
        hook.run = async () => {
          await app.query('COMMIT');
        };
        clock.now = 2002;
        const swept = await ledger.sweepExpired();
        expect(hook.run).toBeNull();
        const all = await readAllEntries(ledger);
        const reserveSeq = all.find((e) => e.requestId === 'c1' && e.kind === 'reserve')?.seq ?? 0;
        const sweptSeqs = swept.entries.map((e) => e.seq ?? 0);
        // The feed puts the reserve before the sweep, so the sweep must have expired c1 too.
        expect(reserveSeq).toBeGreaterThan(0);
        expect(Math.min(...sweptSeqs)).toBeGreaterThan(reserveSeq);
        expect(swept.entries.map((e) => `${e.requestId}/${e.sku}`).sort()).toEqual(['c1/X', 'h0/Y']);
        expect(swept.expired).toBe(2);
      } finally {
        app.release();
      }
      expect(await ledger.verify()).toMatchObject({ ok: true });
    }
  }, 60_000);
});
