/**
 * Running a ledger in production, on an embedded SQLite file: `npx tsx examples/operations.ts`
 * (or `npm run operations`).
 *
 * Stock events: a follower turns the entries feed into `depleted`, `belowThreshold` and
 * `replenished`, and resumes from the cursor it stored without a duplicate or a gap.
 *
 * Low stock: `levels({ availableAtMost })` pages through every SKU and keeps the low ones.
 *
 * Retention: `compact()` removes what is older than the idempotency window in bounded steps; a
 * retry inside the window still replays, `verify()` stays exact, and a follower that fell
 * behind the compacted part is told (`FEED_COMPACTED`) instead of skipping entries.
 *
 * The ledger's clock is moved by hand so the example can show "eight days later".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeedCompactedError, StockLedger, type StockEvent } from 'stock-ledger';
import { SqliteStore } from 'stock-ledger/sqlite';

const DAY_MS = 24 * 3600_000;
const dir = mkdtempSync(join(tmpdir(), 'stock-ledger-operations-'));
const clock = { now: Date.UTC(2026, 11, 1, 9) };
const ledger = new StockLedger({ store: new SqliteStore({ path: join(dir, 'shop.db') }), clock: () => clock.now, retention: { windowMs: 7 * DAY_MS } });

try {
  // A small shop: mugs alert at 3 left, the others at the follower's default of 1.
  await ledger.restock({ requestId: 'po-1', lines: [{ sku: 'MUG', qty: 6 }, { sku: 'TOTE', qty: 2 }, { sku: 'CAP', qty: 9 }] });
  await ledger.setPolicy({ requestId: 'policy-mug', sku: 'MUG', lowStockAt: 3 });
  const order1 = await ledger.deduct({ requestId: 'order-1', lines: [{ sku: 'MUG', qty: 3 }, { sku: 'TOTE', qty: 2 }] });

  // The follower reads what happened so far and stores its cursor.
  let cursor = await follow('the first run of the events follower');
  // A second follower (a weekly report) stores the same cursor, and then does not run for a while.
  const weekly = cursor;
  await ledger.deduct({ requestId: 'order-2', sku: 'MUG', qty: 3 });
  await ledger.restock({ requestId: 'po-2', sku: 'TOTE', qty: 5 });
  cursor = await follow('after a restart, from its stored cursor', cursor);

  const low = await ledger.levels({ availableAtMost: 3 });
  say(`low stock (available <= 3): ${low.levels.map((l) => `${l.sku} ${l.available}`).join(', ')}`);

  // Eight days later: what is older than the seven-day window can go.
  clock.now += 8 * DAY_MS;
  await ledger.restock({ requestId: 'po-3', sku: 'MUG', qty: 10 });
  const replay = await ledger.restock({ requestId: 'po-3', sku: 'MUG', qty: 10 });
  const report = await ledger.compact();
  say(`compact(): removed ${report.requests} request records and ${report.entries} entries in ${report.steps} step(s); the feed starts after seq ${report.compactedThrough}`);
  say(`a retry inside the window still replays: ${String(replay.ok && replay.replayed)}; now po-3 is ${(await ledger.request('po-3')) === null ? 'gone' : 'kept'}`);
  say(`order-1 (8 days old) is ${(await ledger.request('order-1')) === null ? 'gone' : 'kept'}; it took ${order1.ok ? order1.entries.length : 0} lines`);
  const report2 = await ledger.verify();
  say(`verify() after compaction: ${report2.ok ? 'ok' : 'DRIFT'} (${report2.skusChecked} SKUs, checkpoints plus kept entries)`);
  say(`levels are unchanged: ${(await ledger.stocks(['MUG', 'TOTE', 'CAP'])).map((l) => `${l.sku} ${l.onHand} (v${l.version})`).join(', ')}`);

  await follow('the first follower, eight days later', cursor);
  // The weekly follower's cursor now points into the compacted part: it is told, not skipped.
  try {
    await follow('the weekly follower, eight days later', weekly);
  } catch (error) {
    if (!(error instanceof FeedCompactedError)) throw error;
    say(`the follower fell behind: FEED_COMPACTED (the feed starts after seq ${error.compactedThrough}); it rebuilds from levels() and goes on`);
    await follow('the weekly follower, from the compacted part', String(error.compactedThrough));
  }
} finally {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
}

/** Prints every event after `after` (none: from the start) and returns the last cursor. */
async function follow(title: string, after?: string): Promise<string | undefined> {
  say(`${title}:`);
  let last = after;
  for await (const event of ledger.stockEvents({ follow: false, ...(after === undefined ? {} : { after }), lowStockAt: 1 })) {
    say(`  ${describe(event)}`);
    last = event.cursor;
  }
  return last;
}

function describe(e: StockEvent): string {
  const why = e.type === 'depleted' ? '' : ` (threshold ${e.threshold})`;
  return `${e.type} ${e.sku}: available ${e.availableBefore} -> ${e.available}${why}, by ${e.entry.kind} ${e.entry.requestId}`;
}

function say(line: string): void {
  console.log(line);
}
