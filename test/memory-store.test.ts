/**
 * What is specific to the memory store's interleaved mode (the `interleave` hook the
 * conformance suite uses to put an await between an operation's read and its write).
 */
import { StockLedger } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { readAllEntries } from 'stock-ledger/testing';
import { expect, it } from 'vitest';

it('a sweep waiting between read and write still expires a hold a reserve made due meanwhile (replays seed -1213551272)', async () => {
  // Once armed, the next operation to reach the hook waits for the gate; every other one passes.
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let armed = false;
  const hook = (): Promise<void> => {
    if (!armed) return Promise.resolve();
    armed = false;
    return gate;
  };
  const store = new MemoryStore({ interleave: hook });
  let now = 1000;
  const ledger = new StockLedger({ store, clock: () => now });
  await ledger.restock({ requestId: 'r-a', sku: 'A', qty: 3 });
  await ledger.restock({ requestId: 'r-b', sku: 'B', qty: 5 });
  await ledger.reserve({ requestId: 'h0', lines: [{ sku: 'A', qty: 1 }], ttlMs: 500 });

  now = 2003;
  armed = true;
  const sweeping = ledger.sweepExpired();
  await new Promise((resolve) => setImmediate(resolve)); // the sweep now waits at the gate, A locked
  now = 2002;
  const reserved = await ledger.reserve({ requestId: 'c1', lines: [{ sku: 'B', qty: 2 }], ttlMs: 1 });
  expect(reserved.ok).toBe(true);
  open();
  const swept = await sweeping;

  // The sweep writes after the reserve, at 2003 >= c1's expiresAt: it must expire c1 as well.
  expect(swept.expired).toBe(2);
  expect(swept.entries.map((e) => [e.requestId, e.sku])).toEqual([['h0', 'A'], ['c1', 'B']]);
  expect((await ledger.reservation('c1'))?.state).toBe('expired');
  const entries = await readAllEntries(ledger);
  expect(entries.map((e) => e.kind)).toEqual(['restock', 'restock', 'reserve', 'reserve', 'expire', 'expire']);
  expect((await ledger.verify()).ok).toBe(true);
});

it('meta keeps no -0: JSON has none, so every store gives back 0', async () => {
  const ledger = new StockLedger({ store: new MemoryStore() });
  const r = await ledger.restock({ requestId: 'r', sku: 'A', qty: 1, meta: { x: -0, list: [-0] } });
  const meta = r.ok ? r.entries[0]?.meta : undefined;
  expect(Object.is(meta?.['x'], 0)).toBe(true);
  expect(Object.is((meta?.['list'] as number[] | undefined)?.[0], 0)).toBe(true);
  // The same request with 0 for -0 is a replay: the fingerprint never told them apart.
  expect(await ledger.restock({ requestId: 'r', sku: 'A', qty: 1, meta: { x: 0, list: [0] } })).toMatchObject({ ok: true, replayed: true });
});
