import { StockLedger, isStockLedgerError } from '../src/index.js';
import type { Allocation, Applied, OrderLine, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';
import { seededRandom } from './random.js';

/** Three locations of one product, as one SKU each. */
const B = 'TEE@berlin';
const P = 'TEE@paris';
const L = 'TEE@lyon';

/**
 * `anyOf` lines: without `split` the first alternative that has the whole line serves it, with
 * `split` each in turn until filled, `prefer: 'mostAvailable'` ranks by what is left; one-SKU
 * lines are taken first and `anyOf` lines in order, each seeing what earlier lines took; a line
 * that cannot be filled is INSUFFICIENT_STOCK naming it and the total left, and nothing is
 * written; the outcome, replays and `request()` say which SKU served what; a reverse gives back
 * to those SKUs, a commit sells from them; buyer limits apply to what was allocated.
 *
 * @example
 * ```ts
 * await anyOfCase(() => new MemoryStore());
 * ```
 */
export async function anyOfCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const ledger = new StockLedger({ store: await createStore() });
  try {
    for (const [sku, qty] of [[B, 2], [P, 5], [L, 10]] as const) await ledger.restockOrThrow({ requestId: `stock-${sku}`, sku, qty });
    await priorities(ledger);
    await refusals(ledger);
    await replays(ledger);
    await givenBack(ledger);
    await limited(ledger);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

const taken = (outcome: Applied): Allocation[] | undefined => outcome.allocations;
const levels = async (ledger: StockLedger): Promise<number[]> => (await ledger.stocks([B, P, L])).map((l) => l.available);
const codeOf = (e: unknown): string => (isStockLedgerError(e) ? e.code : String(e));

async function priorities(ledger: StockLedger): Promise<void> {
  const whole = await ledger.deductOrThrow({ requestId: 'whole', lines: [{ anyOf: [B, P, L], qty: 3 }] });
  assertEqual(taken(whole), [{ line: 0, taken: [{ sku: P, qty: 3 }] }], 'without split: the first location that has all 3 (berlin has 2)');
  assertEqual(whole.entries.map((e) => [e.sku, e.onHandDelta]), [[P, -3]], 'the entries record the location taken from');
  assertEqual(whole.levels.map((l) => l.sku), [P], 'levels of the SKUs taken from');
  const most = await ledger.deductOrThrow({ requestId: 'most', lines: [{ anyOf: [B, P, L], qty: 1, prefer: 'mostAvailable' }] });
  assertEqual(taken(most), [{ line: 0, taken: [{ sku: L, qty: 1 }] }], 'mostAvailable: lyon has the most (9 after this)');
  // Now berlin 2, paris 2, lyon 9.
  const split = await ledger.reserveOrThrow({ requestId: 'split', lines: [{ anyOf: [B, P, L], qty: 5, split: true }], ttlMs: 3_600_000 });
  assertEqual(taken(split), [{ line: 0, taken: [{ sku: B, qty: 2 }, { sku: P, qty: 2 }, { sku: L, qty: 1 }] }], 'split: in order until filled');
  assertEqual(split.reservation.lines, [{ sku: P, qty: 2 }, { sku: B, qty: 2 }, { sku: L, qty: 1 }].sort((a, b) => (a.sku < b.sku ? -1 : 1)), 'the reservation holds per SKU');
  assertEqual(await levels(ledger), [0, 0, 8], 'berlin and paris held out');
  // Now lyon 8 only. A one-SKU line is taken first, whatever its place; anyOf lines in order.
  const mixed = await ledger.deductOrThrow({ requestId: 'mixed', lines: [{ anyOf: [P, L], qty: 2 }, { sku: L, qty: 5 }, { anyOf: [L, B], qty: 1 }] });
  assertEqual(taken(mixed), [
    { line: 0, taken: [{ sku: L, qty: 2 }] }, { line: 1, taken: [{ sku: L, qty: 5 }] }, { line: 2, taken: [{ sku: L, qty: 1 }] },
  ], 'each line sees what the lines before took');
  assertEqual(mixed.entries.map((e) => [e.sku, e.onHandDelta]), [[L, -8]], 'one entry per SKU: lines of one SKU merge');
  assertEqual(await levels(ledger), [0, 0, 0], 'sold out everywhere');
}

async function refusals(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'more-B', sku: B, qty: 3 });
  await ledger.restockOrThrow({ requestId: 'more-P', sku: P, qty: 2 });
  const before = await ledger.entries({ after: 0, limit: 1000 });
  assertEqual(await ledger.deduct({ requestId: 'short', lines: [{ sku: B, qty: 1 }, { anyOf: [B, P, L], qty: 5, split: true }] }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: B, requested: 5, available: 4, line: 1, anyOf: [B, P, L] },
    'a line that cannot be filled: named, with what its locations had left after the lines before');
  assertEqual(await ledger.reserve({ requestId: 'short', lines: [{ anyOf: [B, P], qty: 4 }], ttlMs: 1000 }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: B, requested: 4, available: 5, line: 0, anyOf: [B, P] },
    'without split no single location has 4');
  assertEqual(await ledger.deduct({ requestId: 'short', lines: [{ anyOf: [B], qty: 1 }, { sku: L, qty: 1 }] }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: L, requested: 1, available: 0 }, 'a short one-SKU line is refused as always');
  assertEqual(await ledger.entries({ after: 0, limit: 1000 }), before, 'all or none: nothing written');
  assertEqual(await ledger.request('short'), null, 'and nothing recorded');
}

async function replays(ledger: StockLedger): Promise<void> {
  // Berlin 3, paris 2.
  const first = await ledger.deductOrThrow({ requestId: 'again', lines: [{ anyOf: [P, B], qty: 2 }] });
  assertEqual(taken(first), [{ line: 0, taken: [{ sku: P, qty: 2 }] }], 'paris first');
  await ledger.restockOrThrow({ requestId: 'refill-P', sku: P, qty: 1 });
  const same = await ledger.deduct({ requestId: 'again', lines: [{ anyOf: [P, B], qty: 2, split: false, prefer: 'order' }] });
  assertEqual(same, { ...first, replayed: true }, 'the defaults said out loud: a replay, with the first allocation');
  assertEqual(taken((await ledger.request('again')) as Applied), taken(first), 'request() keeps the allocation');
  for (const other of [[{ anyOf: [B, P], qty: 2 }], [{ anyOf: [P, B], qty: 2, split: true }], [{ anyOf: [P, B], qty: 2, prefer: 'mostAvailable' }], [{ sku: P, qty: 2 }]] as OrderLine[][]) {
    const code = await ledger.deduct({ requestId: 'again', lines: other }).then(() => 'no error', codeOf);
    assertEqual(code, 'IDEMPOTENCY_CONFLICT', `the same id with other lines ${show(other)}`);
  }
  const plain = await ledger.deductOrThrow({ requestId: 'plain', lines: [{ sku: P, qty: 1 }] });
  assertEqual('allocations' in plain, false, 'one-SKU lines only: no allocations');
}

async function givenBack(ledger: StockLedger): Promise<void> {
  // Berlin 3, lyon 0: the split reservation held berlin 2, paris 2, lyon 1.
  const commit = await ledger.commitOrThrow({ reservationId: 'split', lines: [{ sku: B, qty: 2 }, { sku: L, qty: 1 }] });
  assertEqual(commit.entries.map((e) => [e.sku, e.onHandDelta, e.reservedDelta]), [[P, 0, -2], [B, -2, -2], [L, -1, -1]].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    'a commit sells from the SKUs held');
  const refund = await ledger.reverseOrThrow({ requestId: 'whole-refund', of: 'whole' });
  assertEqual(refund.entries.map((e) => [e.sku, e.onHandDelta]), [[P, 3]], 'a reverse gives back to the location taken from');
  const back = await ledger.reverseOrThrow({ requestId: 'split-refund', of: 'split' });
  assertEqual(back.entries.map((e) => [e.sku, e.onHandDelta]).sort(), [[B, 2], [L, 1]].sort(), 'and a committed split reservation to its SKUs');
}

async function limited(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'more-L', sku: L, qty: 10 });
  await ledger.setPolicyOrThrow({ requestId: 'limit-L', sku: L, buyerMax: 1 });
  const code = await ledger.deduct({ requestId: 'anon', lines: [{ anyOf: [B, L], qty: 1 }] }).then(() => 'no error', codeOf);
  assertEqual(code, 'INVALID_INPUT', 'an alternative with a buyerMax needs a buyer, even if another location would serve');
  const ok = await ledger.deductOrThrow({ requestId: 'ann-1', lines: [{ anyOf: [L, B], qty: 1 }], buyer: 'ann' });
  assertEqual(taken(ok), [{ line: 0, taken: [{ sku: L, qty: 1 }] }], 'within the limit');
  assertEqual(await ledger.deduct({ requestId: 'ann-2', lines: [{ anyOf: [L, B], qty: 1 }], buyer: 'ann' }),
    { ok: false, code: 'BUYER_LIMIT', sku: L, buyer: 'ann', limit: 1, taken: 1 }, 'the limit applies to what was allocated');
  const elsewhere = await ledger.deductOrThrow({ requestId: 'ann-3', lines: [{ anyOf: [B, L], qty: 1 }], buyer: 'ann' });
  assertEqual(taken(elsewhere), [{ line: 0, taken: [{ sku: B, qty: 1 }] }], 'a location without a limit serves her');
}

/**
 * 2,000 concurrent requests (1,000 ids, each sent once or twice at once) for one product at
 * three locations (120 + 50 + 30 units), each an `anyOf` line over the three in a drawn order,
 * with or without `split`, by listed order or most available, deducts and long holds. Demand is
 * far past the stock: no location is ever oversold, every location ends empty (units sold are
 * the sum exactly), each applied request's allocation adds up to its quantity, and the units
 * taken per location, summed over the allocations, are that location's stock.
 *
 * @example
 * ```ts
 * await anyOfStormCase(() => new MemoryStore());
 * ```
 */
export async function anyOfStormCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const ledger = new StockLedger({ store: await createStore() });
  const stock = new Map([[B, 120], [P, 50], [L, 30]]);
  try {
    for (const [sku, qty] of stock) await ledger.restockOrThrow({ requestId: `stock-${sku}`, sku, qty });
    const sends = stormSends();
    const results = await Promise.all(sends.map((s) => (s.hold
      ? ledger.reserve({ requestId: s.id, lines: [s.line], ttlMs: 3_600_000 })
      : ledger.deduct({ requestId: s.id, lines: [s.line] }))));
    const perSku = new Map<string, number>();
    const counted = new Set<string>();
    results.forEach((r, i) => {
      const s = sends[i] as StormSend;
      if (!r.ok || counted.has(s.id)) return;
      counted.add(s.id);
      const lines = r.allocations?.[0]?.taken ?? [];
      assertEqual(lines.reduce((sum, t) => sum + t.qty, 0), s.line.qty, `the allocation of ${s.id} adds up to its line`);
      check(s.line.split === true || lines.length === 1, () => `${s.id} has no split but was served by ${show(lines)}`);
      for (const t of lines) perSku.set(t.sku, (perSku.get(t.sku) ?? 0) + t.qty);
    });
    for (const [sku, qty] of stock) {
      assertEqual(perSku.get(sku) ?? 0, qty, `units allocated from ${sku}: its stock exactly`);
      const level = await ledger.stock(sku);
      check(level.onHand >= 0 && level.available === 0, () => `${sku} ends at ${show(level)}, not sold out exactly`);
    }
    const refused = results.filter((r) => !r.ok);
    check(refused.length > 0 && refused.every((r) => !r.ok && r.code === 'INSUFFICIENT_STOCK' && r.line === 0), () => `refusals: ${show(refused.slice(0, 3))}`);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

interface StormSend {
  id: string;
  line: { anyOf: string[]; qty: number; split?: boolean; prefer?: 'order' | 'mostAvailable' };
  hold: boolean;
}

/** The storm's sends, from a fixed seed: ids sent once or twice, then shuffled. */
function stormSends(): StormSend[] {
  const random = seededRandom(0x1f123bb5);
  const orders = [[B, P, L], [P, L, B], [L, B, P], [B, L, P]];
  const sends: StormSend[] = [];
  for (let i = 0; sends.length < 2000; i += 1) {
    const line: StormSend['line'] = { anyOf: orders[Math.floor(random() * orders.length)] as string[], qty: random() < 0.7 ? 1 : 2 };
    if (random() < 0.6) line.split = true;
    if (random() < 0.3) line.prefer = 'mostAvailable';
    const send = { id: `s-${i}`, line, hold: random() < 0.4 };
    sends.push(send);
    if (random() < 0.5 && sends.length < 2000) sends.push(send);
  }
  for (let i = sends.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [sends[i], sends[j]] = [sends[j] as StormSend, sends[i] as StormSend];
  }
  return sends;
}
