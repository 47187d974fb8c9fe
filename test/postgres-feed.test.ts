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
});
