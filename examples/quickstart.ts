/**
 * The whole API in one page, on the in-memory store: `npx tsx examples/quickstart.ts`
 * (or `npm run quickstart`). Every step prints what it got back.
 */
import { StockLedger, isStockLedgerError, type OperationResult } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';

const ledger = new StockLedger({ store: new MemoryStore() });

// 1. Stock arrives. Every operation carries a request id you choose: it is the idempotency key.
await ledger.restock({ requestId: 'po-1', sku: 'TSHIRT-M', qty: 10, meta: { supplier: 'acme' } });
await ledger.restock({ requestId: 'po-2', sku: 'MUG', qty: 3 });

// 2. An order takes stock from two SKUs, all or none.
const order = await ledger.deduct({
  requestId: 'order-1001',
  lines: [{ sku: 'TSHIRT-M', qty: 2 }, { sku: 'MUG', qty: 1 }],
  meta: { orderId: 1001 },
});
show('deduct order-1001', order);

// 3. The client timed out and sends the very same request again: nothing changes, and it gets
//    the original outcome back, marked `replayed: true`.
const retry = await ledger.deduct({
  requestId: 'order-1001',
  lines: [{ sku: 'MUG', qty: 1 }, { sku: 'TSHIRT-M', qty: 2 }], // line order does not matter
  meta: { orderId: 1001 },
});
show('retry of order-1001', retry);

// 4. Not enough stock is an expected outcome, returned (not thrown), and it records nothing.
const tooMany = await ledger.deduct({ requestId: 'order-1002', sku: 'MUG', qty: 5 });
show('deduct 5 mugs', tooMany);

// 5. Reusing a request id for a different payload is a bug in the caller: it throws.
try {
  await ledger.deduct({ requestId: 'order-1001', sku: 'MUG', qty: 2 });
} catch (error) {
  if (!isStockLedgerError(error)) throw error;
  console.log(`same id, other payload -> throws ${error.code}`);
}

// 6. A refund gives units back, here one of the two shirts.
const refund = await ledger.reverse({ requestId: 'refund-1001', of: 'order-1001', lines: [{ sku: 'TSHIRT-M', qty: 1 }] });
show('reverse 1 shirt of order-1001', refund);

// 7. A stocktake sets on-hand absolutely; `expectedVersion` guards against a count gone stale.
const { version } = await ledger.stock('MUG');
show('adjust MUG to 1', await ledger.adjust({ requestId: 'count-7', sku: 'MUG', onHand: 1, expectedVersion: version }));

// 8. A reservation holds stock for a while (at checkout), then a commit sells it (at payment)
//    or a release gives it back; unpaid, it expires by itself. See examples/checkout.ts.
show('reserve 1 shirt for 15 min', await ledger.reserve({ requestId: 'cart-42', lines: [{ sku: 'TSHIRT-M', qty: 1 }], ttlMs: 15 * 60_000 }));
show('extend cart-42 by 10 min (still at checkout)', await ledger.extend({ reservationId: 'cart-42', ttlMs: 10 * 60_000 }));
console.log('who holds TSHIRT-M:', (await ledger.holds({ sku: 'TSHIRT-M' })).holds.map((h) => `${h.reservationId} x${h.qty}`).join(', '));
show('commit cart-42 at payment', await ledger.commit({ reservationId: 'cart-42' }));

// 9. Reads: levels, the stored outcome of a request, the entry feed, and a self-check.
console.log('levels:', (await ledger.stocks(['TSHIRT-M', 'MUG'])).map((l) => `${l.sku}=${l.available}`).join(' '));
console.log('request(order-1001) kind:', (await ledger.request('order-1001'))?.kind);
console.log('request(order-1002):', await ledger.request('order-1002'), '(rejected requests record nothing)');
const page = await ledger.entries({ after: 0, limit: 100 });
for (const e of page.entries) {
  console.log(`  #${e.seq} ${e.kind.padEnd(7)} ${e.sku.padEnd(8)} ${signed(e.onHandDelta).padStart(4)} -> ${e.onHandAfter}  (${e.requestId})`);
}
const report = await ledger.verify();
console.log(`verify: ok=${report.ok}, ${report.skusChecked} SKUs checked`);
await ledger.close();

function show(label: string, result: OperationResult): void {
  if (result.ok) {
    const levels = result.levels.map((l) => `${l.sku}=${l.available}`).join(' ');
    console.log(`${label} -> ok, replayed=${result.replayed}, now ${levels}`);
  } else {
    console.log(`${label} -> rejected: ${JSON.stringify(result)}`);
  }
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}
