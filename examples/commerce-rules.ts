/**
 * The commerce rules the ledger checks inside its atomic step, on the in-memory store:
 * `npx tsx examples/commerce-rules.ts` (or `npm run rules`).
 *
 * Backorders and preorders: a SKU's policy lets it sell a bounded number of units beyond what
 * is on hand. On-hand goes negative, a restock fills the backorder first, and the allowance is
 * checked in the same step as the stock, so a rush of orders never sells one unit more.
 *
 * Purchase limits: "at most 2 per customer" (`buyerMax`), checked in the same step, so a
 * customer who fires many requests at once still gets at most 2.
 *
 * Several warehouses: one SKU per location, and `anyOf` lines that the ledger allocates inside
 * the step, so a rush over three locations never oversells any of them.
 *
 * Carts that change: `amend` replaces a held cart's lines in one step, checked against what is
 * available plus what the cart already holds.
 */
import { StockLedger, type Level, type OperationResult } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';

const ledger = new StockLedger({ store: new MemoryStore() });

// A console that ships next month: 20 arrive today, and the shop takes up to 30 preorders
// beyond that. lowStockAt is the threshold low-stock alerts use.
await ledger.restock({ requestId: 'po-100', sku: 'CONSOLE', qty: 20 });
show('the shop opens preorders: setPolicy backorderMax 30', await ledger.setPolicy({
  requestId: 'policy-console-1', sku: 'CONSOLE', backorderMax: 30, lowStockAt: 5, meta: { by: 'merchandising' },
}));

// A rush of 60 buyers, one console each, all at once: 50 sell (20 on hand + 30 backordered).
const rush = await Promise.all(Array.from({ length: 60 }, (_, i) => ledger.deduct({ requestId: `order-${i}`, sku: 'CONSOLE', qty: 1 })));
const sold = rush.filter((r) => r.ok).length;
say(`60 buyers at once: ${sold} sold, ${rush.length - sold} refused (INSUFFICIENT_STOCK)`);
level(await ledger.stock('CONSOLE'));

// Closing preorders early would strand promises already made: lowering the allowance below
// what is sold beyond on-hand is refused, and nothing is recorded.
show('merchandising tries to close preorders (backorderMax 0)', await ledger.setPolicy({ requestId: 'policy-console-2', sku: 'CONSOLE', backorderMax: 0 }));

// The shipment arrives: the restock fills the backorder first.
show('40 more arrive', await ledger.restock({ requestId: 'po-101', sku: 'CONSOLE', qty: 40 }));
show('now preorders can close (backorderMax: null resets it)', await ledger.setPolicy({ requestId: 'policy-console-2', sku: 'CONSOLE', backorderMax: null }));
level(await ledger.stock('CONSOLE'));

// A sneaker drop: 50 pairs, at most 2 per customer. 20 customers each fire 3 requests of 1 pair at once.
await ledger.restock({ requestId: 'po-200', sku: 'SNEAKER-42', qty: 50 });
await ledger.setPolicy({ requestId: 'policy-sneaker-1', sku: 'SNEAKER-42', buyerMax: 2 });
const drop = await Promise.all(Array.from({ length: 60 }, (_, i) =>
  ledger.deduct({ requestId: `drop-${i}`, sku: 'SNEAKER-42', qty: 1, buyer: `customer-${i % 20}` })));
const limited = drop.filter((r) => !r.ok && r.code === 'BUYER_LIMIT').length;
say(`60 requests from 20 customers: ${drop.filter((r) => r.ok).length} sold, ${limited} refused (BUYER_LIMIT)`);
const [first] = await ledger.buyerTotals({ buyer: 'customer-0', skus: ['SNEAKER-42'] });
say(`customer-0 has ${first?.taken ?? 0} of 2`);
level(await ledger.stock('SNEAKER-42'));
// A refund gives the pair back to the customer's allowance.
const refunded = drop.findIndex((r, i) => r.ok && i % 20 === 0);
await ledger.reverse({ requestId: 'refund-1', of: `drop-${refunded}` });
const [after] = await ledger.buyerTotals({ buyer: 'customer-0', skus: ['SNEAKER-42'] });
say(`after a refund, customer-0 has ${after?.taken ?? 0} of 2`);

// One T-shirt size at three locations, one SKU each.
const LOCATIONS = ['TEE-M@berlin', 'TEE-M@paris', 'TEE-M@lyon'];
for (const [i, qty] of [2, 4, 10].entries()) await ledger.restock({ requestId: `po-300-${i}`, sku: LOCATIONS[i] as string, qty });
const split = await ledger.deduct({ requestId: 'web-1', lines: [{ anyOf: LOCATIONS, qty: 5, split: true }] });
say(`an order of 5, split in priority order: ${served(split)}`);
const whole = await ledger.deduct({ requestId: 'web-2', lines: [{ anyOf: LOCATIONS, qty: 3 }] });
say(`an order of 3 from one location: ${served(whole)}`);
// A rush of 20 orders of 1 over what is left (paris 1, lyon 7): exactly 8 sell.
const over = await Promise.all(Array.from({ length: 20 }, (_, i) =>
  ledger.deduct({ requestId: `web-rush-${i}`, lines: [{ anyOf: LOCATIONS, qty: 1, prefer: 'mostAvailable' }] })));
say(`20 orders over three locations: ${over.filter((r) => r.ok).length} sold`);
for (const l of await ledger.stocks(LOCATIONS)) level(l);

// A cart at checkout changes: 2 mugs and a tote become 3 mugs, without letting go of the mugs held.
await ledger.restock({ requestId: 'po-400', sku: 'MUG', qty: 3 });
await ledger.restock({ requestId: 'po-401', sku: 'TOTE', qty: 5 });
await ledger.reserve({ requestId: 'cart-9', lines: [{ sku: 'MUG', qty: 2 }, { sku: 'TOTE', qty: 1 }], ttlMs: 15 * 60_000 });
const amended = await ledger.amend({ requestId: 'cart-9-v2', reservationId: 'cart-9', lines: [{ sku: 'MUG', qty: 3 }] });
if (amended.ok) say(`the cart is amended: ${amended.entries.map((e) => `${e.kind} ${e.sku} ${e.reservedDelta > 0 ? '+' : ''}${e.reservedDelta}`).join(', ')}`);
show('another buyer wants a mug', await ledger.deduct({ requestId: 'mug-1', sku: 'MUG', qty: 1 }));
show('the cart is paid', await ledger.commit({ reservationId: 'cart-9' }));

const report = await ledger.verify();
say(`verify(): ${report.ok ? 'ok' : 'DRIFT'} (${report.skusChecked} SKU checked)`);
await ledger.close();

function say(text: string): void {
  console.log(text);
}

function level(l: Level): void {
  const p = l.policy;
  const policy = p === undefined ? 'default policy' : `backorderMax ${p.backorderMax}, lowStockAt ${String(p.lowStockAt)}, buyerMax ${String(p.buyerMax)}`;
  say(`  ${l.sku}: onHand ${l.onHand}, reserved ${l.reserved}, available ${l.available} (${policy})`);
}

function served(result: OperationResult): string {
  if (!result.ok) return result.code;
  return (result.allocations ?? []).flatMap((a) => a.taken.map((t) => `${t.sku} ${t.qty}`)).join(' + ');
}

function show(what: string, result: OperationResult): void {
  say(`${what}: ${result.ok ? 'ok' : result.code}`);
  if (result.ok) for (const l of result.levels) level(l);
  else if ('level' in result) level(result.level);
}
