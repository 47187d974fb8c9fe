import { StockLedger } from '../src/index.js';
import type { Applied, Level, StockPolicy, StockStore } from '../src/index.js';
import { assertEqual, check, show } from './assert.js';
import { checkInvariants } from './invariants.js';

/**
 * A SKU's policy (`setPolicy`): an operation with one zero-delta `policy` entry that carries the
 * whole new policy; levels show it; `backorderMax` lets deducts and reserves take units beyond
 * on-hand (on-hand goes negative, a restock fills the backorder first) and never one more;
 * lowering it, or an adjust, below what is promised is `BELOW_RESERVED` and records nothing;
 * replays, conflicts and revoked ids behave as for every request; and a storm of concurrent
 * deducts (each sent twice) sells exactly on-hand plus the allowance.
 *
 * @example
 * ```ts
 * await policyCase(() => new MemoryStore());
 * ```
 */
export async function policyCase(createStore: () => StockStore | Promise<StockStore>): Promise<void> {
  const clock = { now: 1_000_000 };
  const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
  try {
    await setAndReplay(ledger);
    await backorders(ledger);
    await belowReserved(ledger, clock);
    await backToDefaults(ledger);
    await storm(ledger);
    await checkInvariants(ledger);
  } finally {
    await ledger.close();
  }
}

const policy = (backorderMax: number, lowStockAt: number | null, buyerMax: number | null = null): StockPolicy => ({ backorderMax, lowStockAt, buyerMax });

function level(sku: string, onHand: number, reserved: number, version: number, p: StockPolicy | null): Level {
  const out: Level = { sku, onHand, reserved, available: onHand - reserved + (p?.backorderMax ?? 0), version };
  if (p !== null) out.policy = p;
  return out;
}

async function setAndReplay(ledger: StockLedger): Promise<void> {
  const first = await ledger.setPolicy({ requestId: 'p1', sku: 'P', backorderMax: 3, lowStockAt: 2, meta: { by: 'ops' } });
  check(first.ok, () => `setPolicy on a new SKU: ${show(first)}`);
  const applied = first as Applied;
  const entry = applied.entries[0];
  assertEqual(applied.levels, [level('P', 0, 0, 1, policy(3, 2))], 'setPolicy on a new SKU: its level, available = the allowance');
  assertEqual(applied.entries.length, 1, 'one entry');
  assertEqual({ ...entry, seq: 0 }, {
    seq: 0, requestId: 'p1', kind: 'policy', sku: 'P', onHandDelta: 0, reservedDelta: 0, onHandAfter: 0, reservedAfter: 0, at: 1_000_000,
    meta: { by: 'ops' }, policy: policy(3, 2),
  }, 'the policy entry: zero deltas, the whole policy on it');
  assertEqual(await ledger.setPolicy({ requestId: 'p1', sku: 'P', lowStockAt: 2, backorderMax: 3, meta: { by: 'ops' } }),
    { ...applied, replayed: true }, 'the same setPolicy again (keys in another order) is a replay');
  await expectConflict(ledger.setPolicy({ requestId: 'p1', sku: 'P', backorderMax: 4, lowStockAt: 2, meta: { by: 'ops' } }), 'another backorderMax');
  await expectConflict(ledger.setPolicy({ requestId: 'p1', sku: 'P', backorderMax: 3, meta: { by: 'ops' } }), 'lowStockAt left out instead of given');
  await expectConflict(ledger.restock({ requestId: 'p1', sku: 'P', qty: 1 }), 'a restock under the policy\'s id');
  assertEqual(await ledger.stock('P'), level('P', 0, 0, 1, policy(3, 2)), 'stock() shows the policy');
  const record = await ledger.request('p1');
  assertEqual(record?.kind, 'policy', 'the request record of a setPolicy has kind policy');
  assertEqual(await ledger.reverse({ requestId: 'p1-undo', of: 'p1' }),
    { ok: false, code: 'NOT_REVERSIBLE', requestId: 'p1', kind: 'policy' }, 'a setPolicy cannot be reversed');
  // Only the field given changes.
  const partial = await ledger.setPolicyOrThrow({ requestId: 'p2', sku: 'P', lowStockAt: 1 });
  assertEqual(partial.levels, [level('P', 0, 0, 2, policy(3, 1))], 'a field left out keeps its value');
  assertEqual(partial.entries[0]?.policy, policy(3, 1), 'the entry carries the whole policy, the kept field too');
  await ledger.revokeOrThrow({ requestId: 'p-closed' });
  assertEqual(await ledger.setPolicy({ requestId: 'p-closed', sku: 'P', backorderMax: 9 }),
    { ok: false, code: 'REQUEST_REVOKED', requestId: 'p-closed' }, 'setPolicy under a revoked id');
}

async function expectConflict(call: Promise<unknown>, what: string): Promise<void> {
  const code = await call.then(() => 'no error', (error: unknown) => (error as { code?: unknown }).code);
  assertEqual(code, 'IDEMPOTENCY_CONFLICT', `setPolicy id reused with ${what}`);
}

async function backorders(ledger: StockLedger): Promise<void> {
  const sold = await ledger.deductOrThrow({ requestId: 'b1', sku: 'P', qty: 2 });
  assertEqual(sold.levels, [level('P', -2, 0, 3, policy(3, 1))], 'a deduct beyond on-hand, within the allowance: on-hand goes negative');
  const held = await ledger.reserveOrThrow({ requestId: 'b2', lines: [{ sku: 'P', qty: 1 }], ttlMs: 60_000 });
  assertEqual(held.levels, [level('P', -2, 1, 4, policy(3, 1))], 'a reserve takes the last promised unit');
  assertEqual(await ledger.deduct({ requestId: 'b3', sku: 'P', qty: 1 }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'P', requested: 1, available: 0 }, 'never one unit more than on-hand plus the allowance');
  const filled = await ledger.restockOrThrow({ requestId: 'b4', sku: 'P', qty: 5 });
  assertEqual(filled.levels, [level('P', 3, 1, 5, policy(3, 1))], 'a restock fills the backorder first');
  assertEqual((await ledger.deductOrThrow({ requestId: 'b3', sku: 'P', qty: 1 })).levels, [level('P', 2, 1, 6, policy(3, 1))],
    'the refused request id evaluates again once stock arrived');
}

async function belowReserved(ledger: StockLedger, clock: { now: number }): Promise<void> {
  // On hand 2, reserved 1, allowance 3: available 4.
  await ledger.deductOrThrow({ requestId: 'c1', sku: 'P', qty: 4 });
  const before = level('P', -2, 1, 7, policy(3, 1));
  assertEqual(await ledger.stock('P'), before, 'sold to the last promised unit');
  assertEqual(await ledger.setPolicy({ requestId: 'c2', sku: 'P', backorderMax: 2 }),
    { ok: false, code: 'BELOW_RESERVED', sku: 'P', requested: 2, level: before }, 'lowering the allowance under what is promised');
  const counted = await ledger.adjustOrThrow({ requestId: 'c3', sku: 'P', onHand: 0 });
  assertEqual(counted.levels, [level('P', 0, 1, 8, policy(3, 1))], 'a stocktake may count 0 while the allowance covers the hold');
  assertEqual(await ledger.request('c2'), null, 'the refused setPolicy recorded nothing');
  assertEqual(await ledger.setPolicy({ requestId: 'c2', sku: 'P', backorderMax: null }),
    { ok: false, code: 'BELOW_RESERVED', sku: 'P', requested: 0, level: level('P', 0, 1, 8, policy(3, 1)) }, 'null resets to 0, still under the hold');
  clock.now += 60_000; // the hold of b2 falls due
  const reset = await ledger.setPolicyOrThrow({ requestId: 'c2', sku: 'P', backorderMax: null });
  assertEqual(reset.levels, [level('P', 0, 0, 10, policy(0, 1))], 'once the hold expired (its expire entry first), the reset applies');
  assertEqual(reset.entries.map((e) => e.kind), ['policy'], 'its own entry only (the expiry is not its own)');
}

async function backToDefaults(ledger: StockLedger): Promise<void> {
  const cleared = await ledger.setPolicyOrThrow({ requestId: 'd1', sku: 'P', lowStockAt: null });
  assertEqual(cleared.levels, [level('P', 0, 0, 11, null)], 'the default policy again: the level shows none');
  assertEqual(cleared.entries[0]?.policy, policy(0, null), 'the entry still carries the whole policy');
  assertEqual(await ledger.deduct({ requestId: 'd2', sku: 'P', qty: 1 }),
    { ok: false, code: 'INSUFFICIENT_STOCK', sku: 'P', requested: 1, available: 0 }, 'no allowance: nothing beyond on-hand');
  const feed = await ledger.entries({ sku: 'P', limit: 1000 });
  const policies = feed.entries.filter((e) => e.policy !== undefined);
  assertEqual(policies.map((e) => e.requestId), ['p1', 'p2', 'c2', 'd1'], 'the feed: the policy on policy entries, and on no other');
  check(policies.every((e) => e.kind === 'policy'), () => 'only policy entries carry a policy');
}

/** 120 distinct deducts of 1, each sent twice at once, against 50 on hand and an allowance of 30: exactly 80 sell. */
async function storm(ledger: StockLedger): Promise<void> {
  await ledger.restockOrThrow({ requestId: 's-stock', sku: 'S', qty: 50 });
  await ledger.setPolicyOrThrow({ requestId: 's-policy', sku: 'S', backorderMax: 30 });
  const sends = Array.from({ length: 240 }, (_, i) => ledger.deduct({ requestId: `s-${i % 120}`, sku: 'S', qty: 1 }));
  const results = await Promise.all(sends);
  const applied = new Set(results.flatMap((r, i) => (r.ok ? [`s-${i % 120}`] : [])));
  assertEqual(applied.size, 80, 'distinct requests sold: on-hand plus the allowance, exactly');
  assertEqual(await ledger.stock('S'), { ...level('S', -30, 0, 82, policy(30, null)), available: 0 }, 'on-hand at minus the allowance, nothing left');
  for (const r of results) if (!r.ok) assertEqual(r.code, 'INSUFFICIENT_STOCK', 'every refused send is sold out');
}
