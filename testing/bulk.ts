import { LIMITS, StockLedger, isStockLedgerError } from '../src/index.js';
import type { Applied, CountLine, Line, StockStore } from '../src/index.js';
import { assertEqual } from './assert.js';
import { checkInvariants } from './invariants.js';

const MAX = LIMITS.quantityMax;
const codeOf = (e: unknown): string => (isStockLedgerError(e) ? e.code : String(e));
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** What an outcome's entries changed: SKU, kind and on-hand delta, in order. */
const moves = (outcome: Applied): Array<[string, string, number]> => outcome.entries.map((e) => [e.sku, e.kind, e.onHandDelta]);

/**
 * Bulk `restock` and `adjust`: a purchase order of the most lines one operation takes
 * (`LIMITS.linesPerOperationMax`, given out of order) is one operation with one entry per SKU in
 * SKU order; duplicates merge; its replays (lines reordered or split) and the shorthand against
 * one line are the same payload, other lines a conflict; the first line past the quantity limit
 * is named and nothing is written. A stocktake writes one entry per count (a zero delta too);
 * one stale version, or one count below what is reserved, refuses all of it and names that line.
 *
 * @example
 * ```ts
 * await bulkCase(() => new MemoryStore());
 * ```
 */
export async function bulkCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const ledger = new StockLedger({ store: await createStore() });
  try {
    await purchaseOrder(ledger);
    await quantityLimit(ledger);
    await stocktake(ledger);
    await oneLineForms(ledger);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

async function purchaseOrder(ledger: StockLedger): Promise<void> {
  const skus = Array.from({ length: LIMITS.linesPerOperationMax }, (_, i) => `P-${String(i).padStart(3, '0')}`);
  const lines: Line[] = skus.map((sku, i) => ({ sku, qty: i + 1 })).reverse();
  const po = await ledger.restockOrThrow({ requestId: 'po-big', lines, meta: { supplier: 'acme' } });
  assertEqual(moves(po), skus.map((sku, i) => [sku, 'restock', i + 1]), 'one restock entry per SKU, in SKU order');
  assertEqual(po.entries.every((e) => e.requestId === 'po-big' && e.meta?.['supplier'] === 'acme'), true, 'all under the request id, with its meta');
  assertEqual(po.levels.map((l) => [l.sku, l.onHand, l.version]), skus.map((sku, i) => [sku, i + 1, 1]), 'levels of every SKU');
  assertEqual(await ledger.stocks(skus), po.levels, 'stocks() reads them');
  const reordered = [...lines].sort((a, b) => byText(a.sku, b.sku));
  assertEqual(await ledger.restock({ requestId: 'po-big', lines: reordered, meta: { supplier: 'acme' } }), { ...po, replayed: true }, 'a replay with the lines reordered');
  const other = reordered.map((l, i) => (i === LIMITS.linesPerOperationMax - 1 ? { ...l, qty: l.qty + 1 } : l));
  assertEqual(await ledger.restock({ requestId: 'po-big', lines: other, meta: { supplier: 'acme' } }).then(() => 'no error', codeOf), 'IDEMPOTENCY_CONFLICT',
    'the same id with one line changed');
  const merged = await ledger.restockOrThrow({ requestId: 'po-dup', lines: [{ sku: 'P-001', qty: 2 }, { sku: 'P-000', qty: 1 }, { sku: 'P-001', qty: 3 }] });
  assertEqual(moves(merged), [['P-000', 'restock', 1], ['P-001', 'restock', 5]], 'a SKU twice is merged into one entry');
  assertEqual(await ledger.restock({ requestId: 'po-dup', lines: [{ sku: 'P-000', qty: 1 }, { sku: 'P-001', qty: 5 }] }), { ...merged, replayed: true },
    'a replay with the merged lines');
  const tooMany = [...lines, { sku: 'P-000', qty: 1 }];
  assertEqual(await ledger.restock({ requestId: 'po-over', lines: tooMany }).then(() => 'no error', codeOf), 'INVALID_INPUT',
    `${LIMITS.linesPerOperationMax + 1} lines, even of SKUs it names already`);
}

async function quantityLimit(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'fill', lines: [{ sku: 'Q-b', qty: MAX - 1 }, { sku: 'Q-c', qty: MAX }] });
  const before = await ledger.entries({ after: 0, limit: 1000 });
  assertEqual(await ledger.restock({ requestId: 'po-limit', lines: [{ sku: 'Q-c', qty: 1 }, { sku: 'Q-a', qty: 5 }, { sku: 'Q-b', qty: 2 }] }),
    { ok: false, code: 'QUANTITY_LIMIT', sku: 'Q-b', requested: 2, onHand: MAX - 1, limit: MAX }, 'the first line in SKU order past the limit is named');
  assertEqual(await ledger.entries({ after: 0, limit: 1000 }), before, 'all or none: nothing written');
  assertEqual(await ledger.request('po-limit'), null, 'and nothing recorded');
  const fits = await ledger.restockOrThrow({ requestId: 'po-limit', lines: [{ sku: 'Q-a', qty: 5 }, { sku: 'Q-b', qty: 1 }] });
  assertEqual(moves(fits), [['Q-a', 'restock', 5], ['Q-b', 'restock', 1]], 'right up to the limit applies (the id was free)');
}

async function stocktake(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 'shelf', lines: [{ sku: 'S-a', qty: 10 }, { sku: 'S-b', qty: 10 }, { sku: 'S-c', qty: 10 }] });
  await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'S-c', qty: 4 }], ttlMs: 3_600_000 });
  const [a, b, c] = await ledger.stocks(['S-a', 'S-b', 'S-c']);
  if (a === undefined || b === undefined || c === undefined) throw new Error('stocks() returned too few levels');
  const counts: CountLine[] = [
    { sku: 'S-c', onHand: 4, expectedVersion: c.version }, { sku: 'S-a', onHand: 7, expectedVersion: a.version }, { sku: 'S-b', onHand: 10, expectedVersion: b.version },
  ];
  const before = await ledger.entries({ after: 0, limit: 1000 });
  const stale = counts.map((l) => (l.sku === 'S-b' ? { ...l, expectedVersion: b.version - 1 } : l));
  assertEqual(await ledger.adjust({ requestId: 'count', lines: stale }),
    { ok: false, code: 'VERSION_CONFLICT', sku: 'S-b', expectedVersion: b.version - 1, level: b }, 'one stale version refuses the whole stocktake, naming it');
  const below = counts.map((l) => (l.sku === 'S-c' ? { ...l, onHand: 3 } : l));
  assertEqual(await ledger.adjust({ requestId: 'count', lines: below }),
    { ok: false, code: 'BELOW_RESERVED', sku: 'S-c', requested: 3, level: c }, 'one count below what is reserved refuses all');
  assertEqual(await ledger.adjust({ requestId: 'count', lines: [...stale.filter((l) => l.sku !== 'S-c'), { sku: 'S-c', onHand: 3 }] }),
    { ok: false, code: 'VERSION_CONFLICT', sku: 'S-b', expectedVersion: b.version - 1, level: b }, 'the first failing line in SKU order');
  assertEqual(await ledger.entries({ after: 0, limit: 1000 }), before, 'nothing written');
  const counted = await ledger.adjustOrThrow({ requestId: 'count', lines: counts });
  assertEqual(moves(counted), [['S-a', 'adjust', -3], ['S-b', 'adjust', 0], ['S-c', 'adjust', -6]], 'one entry per count, in SKU order, a zero delta too');
  assertEqual(counted.levels.map((l) => [l.sku, l.onHand, l.reserved, l.version]), [['S-a', 7, 0, a.version + 1], ['S-b', 10, 0, b.version + 1], ['S-c', 4, 4, c.version + 1]],
    'levels of every SKU counted');
  assertEqual(await ledger.adjust({ requestId: 'count', lines: [...counts].reverse() }), { ...counted, replayed: true }, 'a replay with the counts reordered');
  const recount = counts.map((l) => (l.sku === 'S-a' ? { ...l, onHand: 8 } : l));
  assertEqual(await ledger.adjust({ requestId: 'count', lines: recount }).then(() => 'no error', codeOf), 'IDEMPOTENCY_CONFLICT', 'the same id with one count changed');
  const twice = await ledger.adjust({ requestId: 'count-2', lines: [{ sku: 'S-a', onHand: 1 }, { sku: 'S-a', onHand: 1 }] }).then(() => 'no error', codeOf);
  assertEqual(twice, 'INVALID_INPUT', 'a SKU counted twice');
}

async function oneLineForms(ledger: StockLedger): Promise<void> {
  const short = await ledger.restockOrThrow({ requestId: 'one', sku: 'O-a', qty: 3, meta: { why: 'return' } });
  assertEqual(await ledger.restock({ requestId: 'one', lines: [{ sku: 'O-a', qty: 3 }], meta: { why: 'return' } }), { ...short, replayed: true },
    'the shorthand and one line are the same payload');
  assertEqual(await ledger.restock({ requestId: 'one', lines: [{ sku: 'O-a', qty: 1 }, { sku: 'O-a', qty: 2 }], meta: { why: 'return' } }), { ...short, replayed: true },
    'and so are lines that merge into it');
  const lines = await ledger.adjustOrThrow({ requestId: 'one-count', lines: [{ sku: 'O-a', onHand: 5, expectedVersion: 1 }] });
  assertEqual(await ledger.adjust({ requestId: 'one-count', sku: 'O-a', onHand: 5, expectedVersion: 1 }), { ...lines, replayed: true },
    'one count in lines and the shorthand are the same payload');
  assertEqual(await ledger.adjust({ requestId: 'one-count', sku: 'O-a', onHand: 5 }).then(() => 'no error', codeOf), 'IDEMPOTENCY_CONFLICT',
    'without its expected version: another payload');
  const both = await ledger.restock({ requestId: 'both', sku: 'O-a', qty: 1, lines: [{ sku: 'O-a', qty: 1 }] } as never).then(() => 'no error', codeOf);
  assertEqual(both, 'INVALID_INPUT', 'both forms at once');
}
