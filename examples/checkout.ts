/**
 * A checkout with reservations, on the in-memory store with a clock the example moves itself:
 * `npx tsx examples/checkout.ts` (or `npm run checkout`).
 *
 * A cart reserves stock (two-phase hold with a TTL), payment commits it, a cancel releases it,
 * and an abandoned cart simply runs out of time: its stock is available again at `expiresAt`,
 * before any sweeper has run.
 */
import { StockLedger, type Entry, type Level, type OperationResult } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';

const MINUTE_MS = 60_000;
const HOLD_MS = 15 * MINUTE_MS;

// The ledger reads time only from its clock, so the example can move time by hand.
let nowMs = Date.UTC(2026, 0, 1, 12, 0, 0);
const ledger = new StockLedger({ store: new MemoryStore(), clock: () => nowMs });

await ledger.restock({ requestId: 'po-1', sku: 'TSHIRT-M', qty: 5 });
await ledger.restock({ requestId: 'po-2', sku: 'MUG', qty: 3 });
await levels('stock arrives');

// 1. Three carts reserve at checkout. `available` drops, `onHand` does not: nothing is sold yet.
//    The reservation id is the request id: use the cart (or checkout session) id.
const alice = await ledger.reserveOrThrow({
  requestId: 'cart-alice',
  lines: [{ sku: 'TSHIRT-M', qty: 2 }, { sku: 'MUG', qty: 1 }],
  ttlMs: HOLD_MS,
  meta: { buyer: 'alice' },
});
say(`alice reserves 2 TSHIRT-M + 1 MUG, held until ${clock(alice.reservation.expiresAt)}`);
nowMs += MINUTE_MS;
await ledger.reserveOrThrow({ requestId: 'cart-bob', lines: [{ sku: 'TSHIRT-M', qty: 1 }], ttlMs: HOLD_MS, meta: { buyer: 'bob' } });
say('bob reserves 1 TSHIRT-M');
nowMs += MINUTE_MS;
const carol = await ledger.reserveOrThrow({ requestId: 'cart-carol', lines: [{ sku: 'MUG', qty: 2 }], ttlMs: HOLD_MS, meta: { buyer: 'carol' } });
say(`carol reserves 2 MUG, held until ${clock(carol.reservation.expiresAt)}`);
await levels('three carts hold stock');

// 2. Alice pays, but only for the shirts (she took the mug out at the last step): a partial
//    commit sells what it names and releases the rest of the hold, in the same commit entries
//    (the MUG entry: onHand 0, reserved -1).
nowMs += 2 * MINUTE_MS;
show('alice pays for the 2 shirts only (commit with lines)', await ledger.commit({ reservationId: 'cart-alice', lines: [{ sku: 'TSHIRT-M', qty: 2 }] }));
// The payment provider delivers its webhook twice: the same commit again is a replay.
show('the payment webhook arrives again (same commit)', await ledger.commit({ reservationId: 'cart-alice', lines: [{ sku: 'TSHIRT-M', qty: 2 }] }));

// 3. Dave wants two mugs, but carol holds two of the three: a hold blocks others like a sale.
show('dave tries to reserve 2 MUG', await ledger.reserve({ requestId: 'cart-dave', lines: [{ sku: 'MUG', qty: 2 }], ttlMs: HOLD_MS }));

// 4. Bob cancels: release gives the hold back. Releasing again is a replay.
nowMs += MINUTE_MS;
show('bob cancels (release)', await ledger.release({ reservationId: 'cart-bob' }));
show('bob clicks cancel twice', await ledger.release({ reservationId: 'cart-bob' }));
await levels('after alice paid and bob cancelled');

// 5. Carol abandons her cart. Nobody calls anything: time passes her expiresAt, and from that
//    instant her hold no longer counts, before any sweep has written a thing.
nowMs = carol.reservation.expiresAt + MINUTE_MS;
say(`the clock moves past carol's expiresAt (${clock(carol.reservation.expiresAt)})`);
say(`reservation('cart-carol').state = ${(await ledger.reservation('cart-carol'))?.state}`);
await levels('before any sweep');
say(`expire entries written so far: ${(await allEntries()).filter((e) => e.kind === 'expire').length}`);

// 6. A periodic sweep writes the expiries down (bounded per call; call again while `more`).
//    It is housekeeping: the next operation touching MUG would have written them too.
const swept = await ledger.sweepExpired();
say(`sweepExpired() -> expired ${swept.expired} hold(s), more: ${swept.more}`);
for (const e of swept.entries) say(`  ${entryLine(e)}`);

// 7. Carol's payment finally arrives: too late, her hold is gone.
show('carol pays (commit after expiry)', await ledger.commit({ reservationId: 'cart-carol' }));

// 8. Dave retries with the same request id: a rejection recorded nothing, so it is evaluated
//    again, and now succeeds. He pays at once.
show('dave tries again (same request id)', await ledger.reserve({ requestId: 'cart-dave', lines: [{ sku: 'MUG', qty: 2 }], ttlMs: HOLD_MS }));
show('dave pays (commit, all lines)', await ledger.commit({ reservationId: 'cart-dave' }));
await levels('at the end');

// The whole story as the entry feed, and the ledger's self-check.
console.log('\nentries (they fold to the levels, expiries included):');
for (const e of await allEntries()) console.log(`  ${entryLine(e)}`);
const report = await ledger.verify();
console.log(`verify: ok=${report.ok}, ${report.skusChecked} SKUs checked, drift: ${report.drift.length}`);
await ledger.close();
if (!report.ok) process.exitCode = 1;

// ---------------------------------------------------------------------------------------------

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

function say(text: string): void {
  console.log(`${clock(nowMs)}  ${text}`);
}

function levelLine(l: Level): string {
  return `${l.sku} onHand ${l.onHand}, reserved ${l.reserved}, available ${l.available}`;
}

async function levels(label: string): Promise<void> {
  const read = await ledger.stocks(['TSHIRT-M', 'MUG']);
  say(`${label}: ${read.map(levelLine).join(' | ')}`);
}

function show(label: string, result: OperationResult): void {
  if (!result.ok) {
    const { ok: _ok, ...rejection } = result;
    say(`${label} -> rejected ${JSON.stringify(rejection)}`);
    return;
  }
  say(`${label} -> ok${result.replayed ? ', replayed (nothing changed)' : ''}`);
  for (const e of result.entries) say(`  ${entryLine(e)}`);
}

function entryLine(e: Entry): string {
  const delta = (n: number): string => (n > 0 ? `+${n}` : `${n}`); // `${-0}` prints 0
  return `#${String(e.seq).padEnd(3)} ${e.kind.padEnd(7)} ${e.requestId.padEnd(10)} ${e.sku.padEnd(8)} ` +
    `onHand ${delta(e.onHandDelta).padStart(2)} -> ${e.onHandAfter}, reserved ${delta(e.reservedDelta).padStart(2)} -> ${e.reservedAfter}`;
}

async function allEntries(): Promise<Entry[]> {
  const out: Entry[] = [];
  let after = 0;
  for (let page = 0; page < 1000; page += 1) {
    const { entries, next } = await ledger.entries({ after, limit: 1000 });
    out.push(...entries);
    if (next === null) break;
    after = next;
  }
  return out;
}
