import { describe, expect, it } from 'vitest';
import { IdempotencyConflictError, InvalidInputError, RejectedError, StockLedger, StockLedgerError, StoreUnavailableError, isStockLedgerError } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';

describe('errors', () => {
  it('isStockLedgerError survives a second copy of the package (a brand, not instanceof)', async () => {
    // @ts-expect-error a query makes the bundler load a second, independent copy of the module
    const copy = await import('../src/errors.ts?second-copy');
    const foreign: unknown = new copy.InvalidInputError('qty', 'bad');
    expect(foreign).not.toBeInstanceOf(StockLedgerError);
    expect(isStockLedgerError(foreign)).toBe(true);
    expect(isStockLedgerError(new Error('x'))).toBe(false);
    expect(isStockLedgerError({ code: 'INVALID_INPUT' })).toBe(false);
    expect(isStockLedgerError(null)).toBe(false);
  });

  it('errors carry a stable code, a name and the offending field', () => {
    const error = new InvalidInputError('lines[0].qty', 'must be an integer');
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.name).toBe('InvalidInputError');
    expect(error.field).toBe('lines[0].qty');
    expect(new IdempotencyConflictError('r', 'deduct').code).toBe('IDEMPOTENCY_CONFLICT');
    expect(new IdempotencyConflictError('order-7', 'deduct').message).toBe('request "order-7" was already used for a different deduct payload');
    expect(new RejectedError({ ok: false, code: 'REQUEST_REVOKED', requestId: 'x' }).message).toBe('operation rejected: REQUEST_REVOKED');
  });

  it('STORE_UNAVAILABLE keeps its cause, counts one attempt, and says to retry the operation unless told the transaction', () => {
    const cause = new Error('socket closed');
    const lost = new StoreUnavailableError('lost', { cause });
    expect(lost).toMatchObject({ code: 'STORE_UNAVAILABLE', attempts: 1, retry: 'operation' });
    expect(lost.cause).toBe(cause);
    const bare = new StoreUnavailableError('down');
    expect('cause' in bare).toBe(false);
    expect(bare.retry).toBe('operation');
    expect(new StoreUnavailableError('conflict', { retry: 'transaction' }).retry).toBe('transaction');
  });

  it('the OrThrow variants throw the rejection as a RejectedError', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 1 });
    const error = await ledger.deductOrThrow({ requestId: 'o', sku: 'A', qty: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RejectedError);
    expect(error).toMatchObject({ code: 'INSUFFICIENT_STOCK', rejection: { sku: 'A', requested: 2, available: 1 } });
    expect(isStockLedgerError(error)).toBe(true);
    const reversed = await ledger.reverseOrThrow({ requestId: 'v', of: 'po' }).catch((e: unknown) => e);
    expect(reversed).toMatchObject({ code: 'NOT_REVERSIBLE' });
    const applied = await ledger.adjustOrThrow({ requestId: 'c', sku: 'A', onHand: 4 });
    expect(applied.levels).toEqual([{ sku: 'A', onHand: 4, reserved: 0, available: 4, version: 2 }]);
  });

  it('revokeOrThrow throws REQUEST_APPLIED for an applied id; the OrThrow variants throw REQUEST_REVOKED for a revoked one', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'po', sku: 'A', qty: 1 });
    const applied = await ledger.revokeOrThrow({ requestId: 'po' }).catch((e: unknown) => e);
    expect(applied).toBeInstanceOf(RejectedError);
    expect(applied).toMatchObject({ code: 'REQUEST_APPLIED', rejection: { requestId: 'po', kind: 'restock' } });
    expect(await ledger.revokeOrThrow({ requestId: 'o' })).toEqual({ ok: true, replayed: false, entries: [], levels: [] });
    const revoked = await ledger.deductOrThrow({ requestId: 'o', sku: 'A', qty: 1 }).catch((e: unknown) => e);
    expect(revoked).toMatchObject({ code: 'REQUEST_REVOKED', rejection: { ok: false, code: 'REQUEST_REVOKED', requestId: 'o' } });
    expect(isStockLedgerError(revoked)).toBe(true);
    const conflict = await ledger.revoke({ requestId: 'o', meta: { other: true } }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(IdempotencyConflictError);
  });

  it('a bad store option fails loudly at construction', () => {
    expect(() => new StockLedger({ store: {} as never })).toThrow(InvalidInputError);
    expect(() => new StockLedger({ store: new MemoryStore(), retry: { attemptsMax: -1 } })).toThrow(InvalidInputError);
  });
});

describe('only StockLedgerErrors escape', () => {
  it('an input whose getter throws rejects with INVALID_INPUT, the original as cause', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    const input = { requestId: 'r', sku: 'A', get qty(): number { throw new TypeError('boom'); } };
    const error = await ledger.restock(input).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_INPUT' });
    expect((error as Error).cause).toBeInstanceOf(TypeError);
  });

  it('a store that fails with an untyped error is reported as INVARIANT_VIOLATION, not retried', async () => {
    const inner = new MemoryStore();
    let calls = 0;
    const store = Object.assign(Object.create(inner) as MemoryStore, {
      execute: async () => {
        calls += 1;
        throw new Error('driver exploded');
      },
    });
    const ledger = new StockLedger({ store });
    await expect(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 })).rejects.toMatchObject({ code: 'INVARIANT_VIOLATION' });
    expect(calls).toBe(1);
  });

  it('a clock past 2^53 or negative is refused', async () => {
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => -1 });
    await expect(ledger.restock({ requestId: 'r', sku: 'A', qty: 1 })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('a sparse array in meta is refused (a hole cannot round-trip)', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    // eslint-disable-next-line no-sparse-arrays
    const meta = { list: [1, , 3] } as never;
    await expect(ledger.restock({ requestId: 'r', sku: 'A', qty: 1, meta })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});
