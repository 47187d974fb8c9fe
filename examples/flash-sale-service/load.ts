/**
 * A flash sale against a running service: thousands of buyers, some sending their order twice at
 * once, some again after the answer (a retry after a lost reply), a few reusing their key with
 * another body. Prints a summary and checks the ledger's promises from the outside: units sold
 * never pass the stock, no key is charged twice, the stock moved by exactly what was sold.
 *
 *   npm run load -- --url http://127.0.0.1:3000 --buyers 3000 --concurrency 64
 *
 * Exit code 1 when a check fails. Run it against a service no one else is using: it compares the
 * stock before and after.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { seededRandom } from 'stock-ledger/testing';

export interface LoadOptions {
  url: string;
  buyers: number;
  concurrency: number;
  /** Share of buyers who send their order twice at once. */
  twiceRate?: number;
  /** Share of buyers who send it again after the answer. */
  retryRate?: number;
  /** Share of buyers who reuse their key with another body. */
  otherBodyRate?: number;
  /** Seed of the buyers' choices (default 1). */
  seed?: number;
}

export interface LoadSummary {
  requests: number;
  /** Keys whose order was applied (201, not a replay). */
  applied: number;
  replayed: number;
  soldOut: number;
  conflicts: number;
  /** Any other status (5xx, unexpected 4xx): should be none. */
  errors: number;
  unitsSold: number;
  /** Keys that got two first answers (a double charge): must be none. */
  chargedTwice: number;
  /** Replays whose bytes differ from the first answer: must be none. */
  replayMismatches: number;
  stockBefore: Record<string, number>;
  stockAfter: Record<string, number>;
  failures: string[];
}

interface Answer {
  status: number;
  replayed: boolean;
  body: string;
}

async function post(url: string, key: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${url}/orders`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body),
  });
  return { status: response.status, replayed: response.headers.get('idempotent-replayed') === 'true', body: await response.text() };
}

async function stockOf(url: string): Promise<Record<string, number>> {
  const response = await fetch(`${url}/stock`);
  const { levels } = (await response.json()) as { levels: Array<{ sku: string; onHand: number; available: number }> };
  return Object.fromEntries(levels.map((l) => [l.sku, l.onHand]));
}

/** Runs `count` tasks, at most `concurrency` at a time. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next;
      next += 1;
      await task(i);
    }
  }));
}

/**
 * Runs the sale and checks it.
 *
 * @example
 * const summary = await runLoad({ url: 'http://127.0.0.1:3000', buyers: 1000, concurrency: 32 });
 */
export async function runLoad(options: LoadOptions): Promise<LoadSummary> {
  const rand = seededRandom(options.seed ?? 1);
  const { url } = options;
  const stockBefore = await stockOf(url);
  const skus = Object.keys(stockBefore);
  if (skus.length === 0) throw new Error(`${url} has no stock: start the service with --stock SKU=qty`);
  const run = randomUUID().slice(0, 8);
  const summary: LoadSummary = {
    requests: 0, applied: 0, replayed: 0, soldOut: 0, conflicts: 0, errors: 0, unitsSold: 0, chargedTwice: 0, replayMismatches: 0,
    stockBefore, stockAfter: {}, failures: [],
  };
  const first = new Map<string, string>();
  const unitsOf = new Map<string, number>();

  const count = (key: string, qty: number, answer: Answer): void => {
    summary.requests += 1;
    if (answer.status === 201) {
      if (answer.replayed) {
        summary.replayed += 1;
        return;
      }
      if (unitsOf.has(key)) summary.chargedTwice += 1;
      unitsOf.set(key, qty);
      first.set(key, answer.body);
      summary.applied += 1;
      summary.unitsSold += qty;
    } else if (answer.status === 409) summary.soldOut += 1;
    else if (answer.status === 422) summary.conflicts += 1;
    else summary.errors += 1;
  };

  await pool(options.buyers, options.concurrency, async (i) => {
    const key = `load-${run}-${i}`;
    const sku = skus[Math.floor(rand() * rand() * skus.length)] as string;
    const qty = 1 + Math.floor(rand() * 2);
    const body = { lines: [{ sku, qty }], buyer: `buyer-${i}` };
    const roll = rand();
    const twice = roll < (options.twiceRate ?? 0.1);
    const answers = await Promise.all((twice ? [0, 1] : [0]).map(() => post(url, key, body)));
    if (roll > 1 - (options.retryRate ?? 0.1)) answers.push(await post(url, key, body));
    for (const answer of answers) count(key, qty, answer);
    // Every replay must be the first answer's bytes (the first may have come second).
    for (const answer of answers) if (answer.replayed && first.get(key) !== answer.body) summary.replayMismatches += 1;
    if (roll <= 1 - (options.retryRate ?? 0.1) && roll > 1 - (options.retryRate ?? 0.1) - (options.otherBodyRate ?? 0.01)) {
      // A conflict (422) when the first was applied; a sold-out first kept nothing, so this one is decided anew.
      count(key, qty + 1, await post(url, key, { ...body, lines: [{ sku, qty: qty + 1 }] }));
    }
  });

  summary.stockAfter = await stockOf(url);
  check(summary);
  return summary;
}

function check(summary: LoadSummary): void {
  const { stockBefore, stockAfter, failures } = summary;
  let moved = 0;
  for (const [sku, before] of Object.entries(stockBefore)) {
    const after = stockAfter[sku] ?? 0;
    if (after < 0) failures.push(`${sku} sold past its stock: on hand ${after}`);
    moved += before - after;
  }
  if (moved !== summary.unitsSold) failures.push(`the stock moved by ${moved} units, the applied orders sold ${summary.unitsSold}`);
  if (summary.chargedTwice > 0) failures.push(`${summary.chargedTwice} keys were charged twice`);
  if (summary.replayMismatches > 0) failures.push(`${summary.replayMismatches} replays differ from the first answer`);
  if (summary.errors > 0) failures.push(`${summary.errors} requests failed (neither 201, 409 nor 422)`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:3000' },
      buyers: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '64' },
      seed: { type: 'string', default: '1' },
    },
  });
  const started = performance.now();
  const summary = await runLoad({ url: values.url, buyers: Number(values.buyers), concurrency: Number(values.concurrency), seed: Number(values.seed) });
  const seconds = (performance.now() - started) / 1000;
  console.log(`${summary.requests} requests in ${seconds.toFixed(1)} s (${Math.round(summary.requests / seconds)}/s), seed ${values.seed}`);
  console.log(`applied ${summary.applied} orders, ${summary.unitsSold} units; replayed ${summary.replayed}; sold out ${summary.soldOut}; ` +
    `key conflicts ${summary.conflicts}; errors ${summary.errors}`);
  console.log(`stock before ${JSON.stringify(summary.stockBefore)}, after ${JSON.stringify(summary.stockAfter)}`);
  if (summary.failures.length > 0) {
    console.log(`FAILED:\n  ${summary.failures.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('checks passed: never oversold, no key charged twice, every replay the same bytes, stock moved by exactly what was sold');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
