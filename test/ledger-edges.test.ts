/**
 * The ledger's own edges, outside any store's rules: what a bad store or clock does, a closed
 * ledger, verify's walk over chunks, and payload details that only show in exact results.
 */
import {
  IdempotencyConflictError, LIMITS, RejectedError, StockLedger, StoreUnavailableError, isStockLedgerError, type StockStore,
} from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { describe, expect, it } from 'vitest';
import { retimed, toAdjust, toDeduct, toRestock, toReverse } from '../src/validate.js';

const codeOf = (e: unknown): unknown => (isStockLedgerError(e) ? e.code : e);
const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);

/** A memory store whose calls are counted, with some methods replaced. */
function spied(overrides: Partial<StockStore> = {}, inner = new MemoryStore()): { store: StockStore; calls: string[] } {
  const calls: string[] = [];
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      const own = (overrides as Record<string | symbol, unknown>)[key];
      const value = own ?? (Reflect.get(target, key, receiver) as unknown);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(own === undefined ? target : overrides, args);
      };
    },
  });
  return { store, calls };
}

describe('StockLedger construction and clock', () => {
  it('refuses a missing store with INVALID_INPUT naming the store, not a TypeError', () => {
    for (const options of [{}, undefined, { store: null }]) {
      let error: unknown = null;
      try {
        new StockLedger(options as never);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'INVALID_INPUT', field: 'store', message: 'store: must be a StockStore' });
    }
  });

  it('refuses a clock that returns no number, accepts 0, and floors fractions', async () => {
    for (const bad of ['5', -1, Number.NaN, 2 ** 54, undefined]) {
      const ledger = new StockLedger({ store: new MemoryStore(), clock: () => bad as number });
      expect(await failure(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }))).toMatchObject({
        code: 'INVALID_INPUT', field: 'clock', message: 'clock: must return a number of ms from 0 to 2^53',
      });
    }
    const zero = new StockLedger({ store: new MemoryStore(), clock: () => 0 });
    expect(await zero.restock({ requestId: 'r', sku: 'A', qty: 1 })).toMatchObject({ ok: true, entries: [{ at: 0 }] });
    const fraction = new StockLedger({ store: new MemoryStore(), clock: () => 7.9 });
    expect(await fraction.restock({ requestId: 'r', sku: 'A', qty: 1 })).toMatchObject({ entries: [{ at: 7 }] });
  });

  it('an input whose getter throws is INVALID_INPUT on `input`, saying it could not be read', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const input = { requestId: 'r', sku: 'A', get qty(): number { throw new TypeError('boom'); } };
    expect(await failure(ledger.restock(input))).toMatchObject({ field: 'input', message: 'input: could not be read: TypeError: boom' });
  });

  it('an untyped store failure keeps the cause and says what it was', async () => {
    const cause = new Error('driver exploded');
    const { store } = spied({ execute: async () => Promise.reject(cause) });
    const error = await failure(new StockLedger({ store }).restock({ requestId: 'r', sku: 'A', qty: 1 }));
    expect(error).toMatchObject({ code: 'INVARIANT_VIOLATION', message: 'the store failed with an untyped error: Error: driver exploded' });
    expect((error as Error).cause).toBe(cause);
  });

  it('a store that answers a sweep with something else is an INVARIANT_VIOLATION', async () => {
    const { store } = spied({ execute: async () => ({ ok: true, replayed: false, entries: [], levels: [] }) });
    expect(codeOf(await failure(new StockLedger({ store }).sweepExpired()))).toBe('INVARIANT_VIOLATION');
    const rejecting = spied({ execute: async () => ({ ok: false, code: 'RESERVATION_NOT_FOUND', reservationId: 'x' }) });
    expect(codeOf(await failure(new StockLedger({ store: rejecting.store }).sweepExpired()))).toBe('INVARIANT_VIOLATION');
  });
});

describe('the transaction option', () => {
  /** A memory store that says it can join, and records what each call was handed. */
  function joining(fail?: () => Error): { store: StockStore; handed: unknown[] } {
    const inner = new MemoryStore();
    const handed: unknown[] = [];
    const store: StockStore = {
      capabilities: { joinTransaction: true },
      execute: async (command, options) => {
        handed.push(options?.transaction);
        if (fail !== undefined) throw fail();
        return inner.execute(command);
      },
      stocks: (skus, now) => inner.stocks(skus, now), entries: (q) => inner.entries(q), request: (id) => inner.request(id),
      reservation: (id) => inner.reservation(id), verifyChunk: (q) => inner.verifyChunk(q), close: () => inner.close(),
    };
    return { store, handed };
  }

  it('is refused before the store: options not an object, a store that cannot join, a transaction that is no object or function', async () => {
    const plain = spied();
    const ledger = new StockLedger({ store: plain.store });
    expect(await failure(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }, 5 as never))).toMatchObject({ code: 'INVALID_INPUT', field: 'options', message: 'options: must be an object' });
    expect(await failure(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }, null as never))).toMatchObject({ code: 'INVALID_INPUT', field: 'options' });
    expect(await failure(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: {} }))).toMatchObject({
      code: 'INVALID_INPUT', field: 'options.transaction', message: "options.transaction: this store cannot join an app's transaction",
    });
    expect(plain.calls).toEqual([]);
    const { store, handed } = joining();
    const joiner = new StockLedger({ store });
    for (const transaction of [5, 'tx', true, null]) {
      expect(await failure(joiner.restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction }))).toMatchObject({
        code: 'INVALID_INPUT', field: 'options.transaction', message: "options.transaction: must be the app's open transaction",
      });
    }
    expect(handed).toEqual([]);
    // Without a transaction (or with it undefined) the call is the ledger's own.
    expect((await joiner.restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: undefined })).ok).toBe(true);
    expect((await joiner.restock({ requestId: 'r2', sku: 'A', qty: 1 }, {})).ok).toBe(true);
    expect(handed).toEqual([undefined, undefined]);
  });

  it('an object or a function is handed to the store as it is, and a joined call is never retried', async () => {
    const { store, handed } = joining();
    const tx = { app: 'transaction' };
    const scope = (): void => {};
    const ledger = new StockLedger({ store });
    expect((await ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: tx })).ok).toBe(true);
    expect((await ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 }, { transaction: scope })).ok).toBe(true);
    expect(handed).toEqual([tx, scope]);
    const down = joining(() => new StoreUnavailableError('lost'));
    const error = await failure(new StockLedger({ store: down.store }).restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: tx }));
    expect(error).toMatchObject({ code: 'STORE_UNAVAILABLE', attempts: 1 });
    expect(down.handed).toHaveLength(1);
    const broken = joining(() => new TypeError('driver bug'));
    expect(codeOf(await failure(new StockLedger({ store: broken.store }).restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: tx })))).toBe('INVARIANT_VIOLATION');
    // A conflict inside the app's transaction is thrown like any other.
    const ok = joining();
    const twice = new StockLedger({ store: ok.store });
    await twice.restock({ requestId: 'r', sku: 'A', qty: 1 }, { transaction: tx });
    expect(await failure(twice.restock({ requestId: 'r', sku: 'A', qty: 2 }, { transaction: tx }))).toBeInstanceOf(IdempotencyConflictError);
  });
});

describe('a retried extend', () => {
  it('moves the expiry from the time of the attempt that ran, as a retried reserve does', async () => {
    let now = 1_000_000;
    let failOnce = true;
    const { store } = spied({});
    const inner = store;
    const flaky: StockStore = {
      execute: async (command, options) => {
        if (command.kind === 'extend' && failOnce) {
          failOnce = false;
          now += 40;
          throw new StoreUnavailableError('lost reply');
        }
        return inner.execute(command, options);
      },
      stocks: (skus, at) => inner.stocks(skus, at), entries: (q) => inner.entries(q), request: (id) => inner.request(id),
      reservation: (id) => inner.reservation(id), verifyChunk: (q) => inner.verifyChunk(q), close: () => inner.close(),
    };
    const ledger = new StockLedger({ store: flaky, clock: () => now, retry: { baseMs: 0, capMs: 0 } });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 });
    const extended = await ledger.extendOrThrow({ reservationId: 'cart', ttlMs: 500 });
    expect(extended.reservation.expiresAt).toBe(1_000_040 + 500);
  });
});

describe('verify over a store whose walk never ends', () => {
  it('stops at LIMITS.verifyChunksMax chunks with INVARIANT_VIOLATION, never a report that all is well', async () => {
    let chunks = 0;
    const { store } = spied({ verifyChunk: async () => { chunks += 1; return { items: [], cursor: 'again' }; } });
    const error = await failure(new StockLedger({ store }).verify());
    expect(error).toMatchObject({ code: 'INVARIANT_VIOLATION', message: `verify: the store still had SKUs after ${LIMITS.verifyChunksMax} chunks (its cursor never ends)` });
    expect(chunks).toBe(LIMITS.verifyChunksMax);
  }, 60_000);
});

describe('exact rejections and messages', () => {
  it('adjust below what is reserved is BELOW_RESERVED with the level; a store that answers a sweep wrongly says so', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 60_000 });
    expect(await ledger.adjust({ requestId: 'count', sku: 'A', onHand: 2 })).toEqual({
      ok: false, code: 'BELOW_RESERVED', sku: 'A', requested: 2, level: { sku: 'A', onHand: 5, reserved: 3, available: 2, version: 2 },
    });
    const { store } = spied({ execute: async () => ({ ok: true, replayed: false, entries: [], levels: [] }) });
    expect(await failure(new StockLedger({ store }).sweepExpired())).toMatchObject({ message: 'a sweep returned no sweep outcome' });
  });

  it('a reverse that would lift on-hand past the quantity limit is QUANTITY_LIMIT and gives nothing back', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5 });
    await ledger.deductOrThrow({ requestId: 'sale', sku: 'A', qty: 2 });
    await ledger.restockOrThrow({ requestId: 'fill', sku: 'A', qty: LIMITS.quantityMax - 4 });
    expect(await ledger.reverse({ requestId: 'refund', of: 'sale' })).toEqual({
      ok: false, code: 'QUANTITY_LIMIT', sku: 'A', requested: 2, onHand: LIMITS.quantityMax - 1, limit: LIMITS.quantityMax,
    });
    expect((await ledger.stock('A')).onHand).toBe(LIMITS.quantityMax - 1);
  });
});

describe('a commit replay names only what was held', () => {
  it('a partial commit again with an extra SKU the reservation never held is a conflict, not a replay', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po-a', sku: 'A', qty: 5 });
    await ledger.restockOrThrow({ requestId: 'po-b', sku: 'B', qty: 5 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 60_000 });
    await ledger.commitOrThrow({ reservationId: 'cart', lines: [{ sku: 'A', qty: 2 }] });
    expect((await ledger.commit({ reservationId: 'cart', lines: [{ sku: 'A', qty: 2 }] })).ok).toBe(true);
    expect(await failure(ledger.commit({ reservationId: 'cart', lines: [{ sku: 'A', qty: 2 }, { sku: 'C', qty: 1 }] }))).toBeInstanceOf(IdempotencyConflictError);
  });
});

/** A memory store with only the required methods: none of the optional reads (holds, buyerTotals). */
function bareStore(): StockStore {
  const inner = new MemoryStore();
  const { execute, stocks, entries, request, reservation, verifyChunk, close } = inner;
  return {
    execute: execute.bind(inner), stocks: stocks.bind(inner), entries: entries.bind(inner), request: request.bind(inner),
    reservation: reservation.bind(inner), verifyChunk: verifyChunk.bind(inner), close: close.bind(inner),
  };
}

describe('buyers at the edges', () => {
  it('a reservation, a hold and an entry that name no buyer have no buyer key at all', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5 });
    const made = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
    expect('buyer' in made.reservation).toBe(false);
    expect('buyer' in (made.entries[0] as object)).toBe(false);
    const page = await ledger.holds({ sku: 'A' });
    expect(page.holds).toHaveLength(1);
    expect('buyer' in (page.holds[0] as object)).toBe(false);
    expect('buyer' in ((await ledger.reservation('cart')) as object)).toBe(false);
  });

  it('a deduct without buyer of a SKU with a buyerMax: INVALID_INPUT from inside the step, naming the SKU; nothing written', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 5 });
    await ledger.setPolicyOrThrow({ requestId: 'limit', sku: 'A', buyerMax: 1 });
    const before = await ledger.entries();
    const error = await failure(ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 }));
    expect(error).toMatchObject({ code: 'INVALID_INPUT', field: 'buyer', message: 'buyer: is required: SKU "A" has a buyerMax (a limit per buyer)' });
    expect(await ledger.entries()).toEqual(before);
  });

  it('buyerTotals() of a store without the optional read is INVALID_INPUT naming the store', async () => {
    const { store, calls } = spied({}, bareStore() as MemoryStore);
    const error = await failure(new StockLedger({ store }).buyerTotals({ buyer: 'b', skus: ['A'] }));
    expect(error).toMatchObject({ code: 'INVALID_INPUT', field: 'store', message: 'store: this store cannot read buyer totals' });
    expect(calls).toEqual([]);
  });
});

describe('a store without the optional holds()', () => {
  it('holds() is INVALID_INPUT naming the store, and nothing of the store is called', async () => {
    const { store, calls } = spied({}, bareStore() as MemoryStore);
    const error = await failure(new StockLedger({ store }).holds({ sku: 'A' }));
    expect(error).toMatchObject({ code: 'INVALID_INPUT', field: 'store', message: 'store: this store cannot list holds' });
    expect(calls).toEqual([]);
  });
});

describe('a closed ledger', () => {
  it('refuses operations and reads with STORE_UNAVAILABLE without calling the store, and is not retried', async () => {
    const { store, calls } = spied();
    const ledger = new StockLedger({ store });
    await ledger.close();
    const before = calls.length;
    const errors = [
      await failure(ledger.deduct({ requestId: 'd', sku: 'A', qty: 1 })),
      await failure(ledger.stock('A')),
      await failure(ledger.verify()),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(error).toMatchObject({ message: 'the ledger is closed', attempts: 1 });
    }
    expect(calls.length).toBe(before);
  });
});

describe('reads and verify', () => {
  it('a read that fails once with STORE_UNAVAILABLE is retried and answers', async () => {
    let failures = 1;
    const inner = new MemoryStore();
    const { store } = spied({
      stocks: async (skus, now) => {
        if (failures > 0) {
          failures -= 1;
          throw new StoreUnavailableError('lost');
        }
        return inner.stocks(skus, now);
      },
    }, inner);
    const ledger = new StockLedger({ store, retry: { baseMs: 0 } });
    expect(await ledger.stock('A')).toEqual({ sku: 'A', onHand: 0, reserved: 0, available: 0, version: 0 });
    expect(failures).toBe(0);
  });

  it('verify walks every chunk: the first from no cursor at the chunk size, then from the cursor it was given', async () => {
    const seen: Array<{ cursor: string | null; limit: number }> = [];
    const inner = new MemoryStore();
    const { store } = spied({
      verifyChunk: async (query) => {
        seen.push(query);
        return inner.verifyChunk(query);
      },
    }, inner);
    const ledger = new StockLedger({ store });
    const count = LIMITS.verifyChunkSkus + 3;
    for (let i = 0; i < count; i += 1) await ledger.restock({ requestId: `r${i}`, sku: `S${String(i).padStart(4, '0')}`, qty: 1 });
    expect(await ledger.verify()).toEqual({ ok: true, skusChecked: count, drift: [] });
    expect(seen).toEqual([
      { cursor: null, limit: LIMITS.verifyChunkSkus },
      { cursor: `S${String(LIMITS.verifyChunkSkus - 1).padStart(4, '0')}`, limit: LIMITS.verifyChunkSkus },
    ]);
  });

  it('verify is not ok when a chunk reports drift', async () => {
    const c = { onHand: 1, reserved: 0, version: 1 };
    const { store } = spied({
      verifyChunk: async () => ({ items: [{ sku: 'A', stored: { ...c, onHand: 2 }, folded: c, holds: [], foldedHolds: [], repeated: [], buyers: [] }], cursor: null }),
    });
    const report = await new StockLedger({ store }).verify();
    expect(report).toMatchObject({ ok: false, skusChecked: 1, drift: [{ sku: 'A', invariant: 'fold' }] });
  });

  it('reservation() names reservationId when the id is bad', async () => {
    expect(await failure(new StockLedger({ store: new MemoryStore() }).reservation(''))).toMatchObject({ field: 'reservationId' });
  });
});

describe('results in detail', () => {
  it('releaseOrThrow returns the applied release, and throws the rejection for an unknown id', async () => {
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => 1000 });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 });
    expect(await ledger.releaseOrThrow({ reservationId: 'cart' })).toMatchObject({ ok: true, replayed: false, levels: [{ sku: 'A', reserved: 0 }] });
    expect(await failure(ledger.releaseOrThrow({ reservationId: 'nope' }))).toBeInstanceOf(RejectedError);
  });

  it('a reservation made without meta has no meta key; one with meta keeps it', async () => {
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => 1000 });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 2 });
    const plain = await ledger.reserveOrThrow({ requestId: 'c1', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000 });
    expect('meta' in plain.reservation).toBe(false);
    expect('meta' in ((await ledger.reservation('c1')) ?? {})).toBe(false);
    const tagged = await ledger.reserveOrThrow({ requestId: 'c2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 1000, meta: { cart: 2 } });
    expect(tagged.reservation.meta).toEqual({ cart: 2 });
  });

  it('a committed reservation committed again with other lines is a conflict on a reserve', async () => {
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => 1000 });
    await ledger.restock({ requestId: 'r', sku: 'A', qty: 5 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 3 }], ttlMs: 1000 });
    await ledger.commit({ reservationId: 'cart', lines: [{ sku: 'A', qty: 2 }] });
    const error = await failure(ledger.commit({ reservationId: 'cart', lines: [{ sku: 'A', qty: 1 }] }));
    expect(error).toBeInstanceOf(IdempotencyConflictError);
    expect(error).toMatchObject({ requestId: 'cart', storedKind: 'reserve' });
  });

  it('reversing a partly committed reservation gives back only what was sold, per SKU', async () => {
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => 1000 });
    await ledger.restock({ requestId: 'ra', sku: 'A', qty: 5 });
    await ledger.restock({ requestId: 'rb', sku: 'B', qty: 5 });
    await ledger.reserve({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], ttlMs: 1000 });
    await ledger.commit({ reservationId: 'cart', lines: [{ sku: 'B', qty: 1 }] });
    expect(await ledger.reverse({ requestId: 'refund-1', of: 'cart' })).toMatchObject({ ok: true, entries: [{ sku: 'B', onHandDelta: 1 }] });
    expect(await ledger.reverse({ requestId: 'refund-2', of: 'cart' })).toEqual({
      ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: 'B', requested: 1, remaining: 0,
    });
  });
});

describe('normalized commands in detail', () => {
  it('fingerprints spell out absent fields as null', () => {
    expect(toAdjust({ requestId: 'r', sku: 'A', onHand: 5 }, 0).fingerprint).toBe('["adjust","A",5,null,null]');
    expect(toReverse({ requestId: 'r', of: 'o' }, 0).fingerprint).toBe('["reverse","o",null,null]');
    expect(toRestock({ requestId: 'r', sku: 'A', qty: 2, meta: { b: 1, a: 2 } }, 0).fingerprint).toBe('["restock","A",2,{"a":2,"b":1}]');
  });

  it('retimed moves only a reserve\'s expiry; other commands only change their time', () => {
    const deduct = retimed(toDeduct({ requestId: 'r', sku: 'A', qty: 1 }, 5), 9);
    expect(deduct).toMatchObject({ kind: 'deduct', at: 9 });
    expect('expiresAt' in deduct).toBe(false);
  });

  it('meta with nulls and nested objects is accepted, copied and frozen all the way down', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const meta = { a: null, b: { c: 1, d: [{ e: 'x' }] } };
    const r = await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1, meta });
    const stored = r.entries[0]?.meta as typeof meta;
    expect(stored).toEqual(meta);
    expect(stored).not.toBe(meta);
    expect(Object.isFrozen(stored.b)).toBe(true);
    expect(Object.isFrozen(stored.b.d[0])).toBe(true);
  });

  it('a deduct with lines and either half of the shorthand names lines', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    for (const input of [{ requestId: 'r', sku: 'A', lines: [{ sku: 'A', qty: 1 }] }, { requestId: 'r', qty: 1, lines: [{ sku: 'A', qty: 1 }] }]) {
      expect(await failure(ledger.deduct(input as never))).toMatchObject({ field: 'lines', message: 'lines: give either lines or sku and qty, not both' });
    }
  });
});
