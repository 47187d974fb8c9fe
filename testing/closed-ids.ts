import { StockLedger } from '../src/index.js';
import type { FeedEntry, StockStore } from '../src/index.js';
import { assertEqual } from './assert.js';
import { checkInvariants } from './invariants.js';
import { runOp, type Op } from './ops.js';
import { readAllEntries } from './reservation-races.js';

/** The id of the cancelled order: rejected, then closed. */
const CLOSED = 'order-7';

/**
 * Closing a request id (`revoke`): an order is rejected while sold out, the shop cancels it and
 * revokes its id, stock comes in, and then a late duplicate of the order arrives (a queue
 * redelivery). The duplicate must be refused with `REQUEST_REVOKED` and take nothing, not even
 * write the due expiry of a hold on its SKU (it is decided from the request record alone).
 * Every other kind under the closed id is refused the same way; a reverse of it is
 * `NOT_REVERSIBLE` (kind `revoke`), a commit or release `RESERVATION_NOT_FOUND`. Revoking again
 * replays, with other meta conflicts. An id that was applied cannot be revoked:
 * `REQUEST_APPLIED`, with its kind.
 *
 * @example
 * ```ts
 * await closedIdCase(() => new MemoryStore());
 * ```
 */
export async function closedIdCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await closeRejectedOrder(ledger);
    await ledger.restockOrThrow({ requestId: 'po-2', sku: 'A', qty: 5 });
    clock.now = 1010; // the hold `cart` on A is due now, not yet expired in storage
    await lateDuplicatesAreRefused(ledger);
    await appliedIdsStayOpen(ledger);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

/** Sold out: the order is rejected, then its id is closed; a revoke replays and conflicts like any request. */
async function closeRejectedOrder(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 1 });
  await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 });
  assertEqual(await ledger.deduct({ requestId: CLOSED, sku: 'A', qty: 2 }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 2, available: 0 }, 'the order while sold out');
  const revoke: Op = { kind: 'revoke', input: { requestId: CLOSED, meta: { why: 'cancelled' } } };
  const tombstone = { ok: true, replayed: false, entries: [], levels: [] };
  assertEqual(await runOp(ledger, revoke), tombstone, 'revoke of the rejected id: no entry, no level');
  assertEqual(await runOp(ledger, revoke), { ...tombstone, replayed: true }, 'the same revoke again: a replay');
  assertEqual(await runOp(ledger, { kind: 'revoke', input: { requestId: CLOSED } }), { thrown: 'IDEMPOTENCY_CONFLICT' }, 'a revoke with other meta');
  assertEqual(await ledger.request(CLOSED), { ...tombstone, replayed: true, requestId: CLOSED, kind: 'revoke', at: 1000 }, `request(${CLOSED})`);
}

/** After the restock: nothing under the closed id applies, and nothing at all is written. */
async function lateDuplicatesAreRefused(ledger: StockLedger): Promise<void> {
  const before: FeedEntry[] = await readAllEntries(ledger);
  const refused = { ok: false, code: 'REQUEST_REVOKED', requestId: CLOSED };
  const uses: Op[] = [
    { kind: 'deduct', input: { requestId: CLOSED, sku: 'A', qty: 2 } },
    { kind: 'deduct', input: { requestId: CLOSED, lines: [{ sku: 'A', qty: 1 }], meta: { late: true } } },
    { kind: 'restock', input: { requestId: CLOSED, sku: 'A', qty: 1 } },
    { kind: 'adjust', input: { requestId: CLOSED, sku: 'A', onHand: 0 } },
    { kind: 'reverse', input: { requestId: CLOSED, of: 'po-1' } },
    { kind: 'reserve', input: { requestId: CLOSED, lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 } },
  ];
  for (const op of uses) assertEqual(await runOp(ledger, op), refused, `${op.kind} under the revoked id`);
  assertEqual(await runOp(ledger, { kind: 'reverse', input: { requestId: 'refund-7', of: CLOSED } }),
    { ok: false, code: 'NOT_REVERSIBLE', requestId: CLOSED, kind: 'revoke' }, 'reverse of the revoked id');
  for (const kind of ['commit', 'release'] as const) {
    assertEqual(await runOp(ledger, { kind, input: { reservationId: CLOSED } }),
      { ok: false, code: 'RESERVATION_NOT_FOUND', reservationId: CLOSED }, `${kind} of the revoked id`);
  }
  assertEqual(await ledger.reservation(CLOSED), null, `reservation(${CLOSED})`);
  assertEqual(await readAllEntries(ledger), before, 'the entries after the refused calls (not even the due expiry of cart)');
  assertEqual(await ledger.stock('A'), { sku: 'A', onHand: 6, reserved: 0, available: 6, version: 4 }, 'stock of A: nothing taken');
  assertEqual(await ledger.request('refund-7'), null, 'request() of the rejected reverse');
}

/** Ids already applied, by any kind, refuse a revoke and keep replaying. */
async function appliedIdsStayOpen(ledger: StockLedger): Promise<void> {
  const sold = await ledger.deductOrThrow({ requestId: 'order-8', sku: 'A', qty: 1 });
  assertEqual(await runOp(ledger, { kind: 'revoke', input: { requestId: 'order-8' } }),
    { ok: false, code: 'REQUEST_APPLIED', requestId: 'order-8', kind: 'deduct' }, 'revoke of an applied deduct');
  assertEqual(await runOp(ledger, { kind: 'revoke', input: { requestId: 'cart' } }),
    { ok: false, code: 'REQUEST_APPLIED', requestId: 'cart', kind: 'reserve' }, 'revoke of a reservation');
  assertEqual(await runOp(ledger, { kind: 'revoke', input: { requestId: 'po-2', meta: { why: 'x' } } }),
    { ok: false, code: 'REQUEST_APPLIED', requestId: 'po-2', kind: 'restock' }, 'revoke of a restock, with meta');
  assertEqual(await ledger.deduct({ requestId: 'order-8', sku: 'A', qty: 1 }), { ...sold, replayed: true }, 'the applied deduct still replays');
}
