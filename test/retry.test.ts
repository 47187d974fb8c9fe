import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_POLICY, InvalidInputError, StockLedger, StoreUnavailableError, backoffMs, isStockLedgerError, withRetry, type StockStore } from 'stock-ledger';
import { type Command, type StoreOutcome } from 'stock-ledger/store';
import { MemoryStore } from 'stock-ledger/memory';

/** A real MemoryStore whose replies are lost: the write happens, then the caller sees a failure. */
class LosingReplies implements StockStore {
  readonly inner = new MemoryStore();
  calls = 0;
  constructor(private readonly lose: (call: number) => 'before' | 'after' | null) {}

  async execute(command: Command): Promise<StoreOutcome> {
    this.calls += 1;
    const fault = this.lose(this.calls);
    if (fault === 'before') throw new StoreUnavailableError('connection refused');
    const outcome = await this.inner.execute(command);
    if (fault === 'after') throw new StoreUnavailableError('reply lost');
    return outcome;
  }
  stocks = this.inner.stocks.bind(this.inner);
  entries = this.inner.entries.bind(this.inner);
  request = this.inner.request.bind(this.inner);
  reservation = this.inner.reservation.bind(this.inner);
  verifyChunk = this.inner.verifyChunk.bind(this.inner);
  close = this.inner.close.bind(this.inner);
}

describe('withRetry', () => {
  const noSleep = { sleep: async () => {}, random: () => 0.5 };

  it('retries STORE_UNAVAILABLE up to attemptsMax, then rethrows it with the attempt count', async () => {
    let calls = 0;
    const error = await withRetry(async () => {
      calls += 1;
      throw new StoreUnavailableError('down');
    }, { ...noSleep, attemptsMax: 3 }).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
    expect((error as StoreUnavailableError).attempts).toBe(3);
    expect((error as Error).message).toMatch(/after 3 attempts/);
    expect((error as StoreUnavailableError).retry).toBe('operation');
  });

  it('with one attempt allowed, says "after 1 attempt"; an error a custom retryable let through comes back as it was', async () => {
    const once = await withRetry(async () => {
      throw new StoreUnavailableError('down');
    }, { ...noSleep, attemptsMax: 1 }).catch((e: unknown) => e);
    expect((once as Error).message).toBe('down (after 1 attempt)');
    const plain = new Error('timeout');
    const error = await withRetry(async () => {
      throw plain;
    }, { ...noSleep, attemptsMax: 2, retryable: () => true }).catch((e: unknown) => e);
    expect(error).toBe(plain);
  });

  it('checks the policy at its bounds: attemptsMax 1 to 100, times finite and >= 0, with one message', async () => {
    const ok = (policy: object): Promise<number> => withRetry(async () => 1, policy);
    expect(await ok({ attemptsMax: 100, baseMs: 0, capMs: 0, totalMsMax: 0 })).toBe(1);
    for (const bad of [{ attemptsMax: 101 }, { attemptsMax: 0 }, { baseMs: -1 }, { capMs: Number.NaN }, { totalMsMax: Number.POSITIVE_INFINITY }]) {
      const error = await ok(bad).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toMatch(/^retry: invalid policy \{.*\}: attemptsMax 1 to 100, times finite and >= 0$/);
    }
  });

  it('rethrows the last failure, not the first; the default sleep really waits between attempts', async () => {
    const started: number[] = [];
    const error = await withRetry(async (attempt) => {
      started.push(performance.now());
      throw new StoreUnavailableError(`down ${attempt}`);
    }, { attemptsMax: 3, baseMs: 30, capMs: 30, totalMsMax: 1000, random: () => 0.99 }).catch((e: unknown) => e);
    expect((error as Error).message).toBe('down 3 (after 3 attempts)');
    // Each wait is floor(0.99 x 30) = 29 ms; timers may fire a little early, never much.
    expect((started[1] as number) - (started[0] as number)).toBeGreaterThan(20);
  });

  it('the time bound holds with the default clock too: a wait past totalMsMax ends the retries', async () => {
    let made = 0;
    await withRetry(async () => {
      made += 1;
      throw new StoreUnavailableError('down');
    }, { attemptsMax: 5, baseMs: 100, capMs: 100, totalMsMax: 50, random: () => 0.99, sleep: async () => {} }).catch(() => undefined);
    expect(made).toBe(1);
  });

  it('a retry whose wait ends exactly at totalMsMax still runs; one past it does not', async () => {
    for (const [totalMsMax, calls] of [[99, 2], [98, 1]] as const) { // the wait is floor(0.9999999 x 100) = 99 ms
      let now = 0;
      let made = 0;
      await withRetry(async () => {
        made += 1;
        throw new StoreUnavailableError('down');
      }, { attemptsMax: 2, baseMs: 100, capMs: 100, totalMsMax, random: () => 0.9999999, now: () => now, sleep: async (ms) => { now += ms; } }).catch(() => undefined);
      expect(made).toBe(calls);
    }
  });

  it('keeps what the last failure said to run again (the whole transaction)', async () => {
    const error = await withRetry(async () => {
      throw new StoreUnavailableError('lost a conflict', { retry: 'transaction' });
    }, { ...noSleep, attemptsMax: 2 }).catch((e: unknown) => e);
    expect((error as StoreUnavailableError).retry).toBe('transaction');
    expect((error as StoreUnavailableError).attempts).toBe(2);
  });

  it('does not retry other errors', async () => {
    let calls = 0;
    const error = await withRetry(async () => {
      calls += 1;
      throw new InvalidInputError('qty', 'bad');
    }, noSleep).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(error).toBeInstanceOf(InvalidInputError);
  });

  it('returns the first success', async () => {
    let calls = 0;
    const value = await withRetry(async (attempt) => {
      calls += 1;
      if (attempt < 3) throw new StoreUnavailableError('flaky');
      return 'done';
    }, noSleep);
    expect(value).toBe('done');
    expect(calls).toBe(3);
  });

  it('stops before the total time budget is exceeded', async () => {
    let now = 0;
    let calls = 0;
    const error = await withRetry(async () => {
      calls += 1;
      now += 400;
      throw new StoreUnavailableError('slow');
    }, { attemptsMax: 50, baseMs: 100, capMs: 100, totalMsMax: 1000, random: () => 0.99, now: () => now, sleep: async (ms) => { now += ms; } })
      .catch((e: unknown) => e);
    expect(calls).toBeLessThanOrEqual(3);
    expect((error as StoreUnavailableError).attempts).toBe(calls);
  });

  it('uses full jitter below an exponentially growing, capped ceiling', () => {
    const policy = { attemptsMax: 10, baseMs: 10, capMs: 100, totalMsMax: 1000 };
    expect(backoffMs({ ...policy, attempt: 1, random: () => 0.999 })).toBe(9);
    expect(backoffMs({ ...policy, attempt: 3, random: () => 0.999 })).toBe(39);
    expect(backoffMs({ ...policy, attempt: 9, random: () => 0.999 })).toBe(99);
    expect(backoffMs({ ...policy, attempt: 9, random: () => 0 })).toBe(0);
  });

  it('rejects a policy that could loop without end', async () => {
    await expect(withRetry(async () => 1, { attemptsMax: 0 })).rejects.toThrow(InvalidInputError);
    await expect(withRetry(async () => 1, { baseMs: Number.NaN })).rejects.toThrow(InvalidInputError);
    expect(DEFAULT_RETRY_POLICY.attemptsMax).toBeGreaterThan(1);
  });
});

describe('the ledger retries STORE_UNAVAILABLE with the same request id', () => {
  it('turns a lost reply into a replay, applied once', async () => {
    const store = new LosingReplies((call) => (call === 2 ? 'after' : null));
    const ledger = new StockLedger({ store, retry: { baseMs: 0 } });
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 5 });
    const result = await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 2 });
    expect(result).toMatchObject({ ok: true, replayed: true, levels: [{ sku: 'A', onHand: 3 }] });
    expect(store.calls).toBe(3);
    expect((await ledger.entries()).entries.filter((e) => e.requestId === 'o1')).toHaveLength(1);
  });

  it('a lost reply of a revoke is retried into a replay, and the id stays closed', async () => {
    const store = new LosingReplies((call) => (call === 1 ? 'after' : null));
    const ledger = new StockLedger({ store, retry: { baseMs: 0 } });
    expect(await ledger.revoke({ requestId: 'o1' })).toEqual({ ok: true, replayed: true, entries: [], levels: [] });
    expect(store.calls).toBe(2);
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 5 });
    expect(await ledger.deduct({ requestId: 'o1', sku: 'A', qty: 1 })).toEqual({ ok: false, code: 'REQUEST_REVOKED', requestId: 'o1' });
    expect((await ledger.stock('A')).onHand).toBe(5);
  });

  it('a revoke after a deduct whose reply was lost finds it applied (REQUEST_APPLIED), never half', async () => {
    const store = new LosingReplies((call) => (call === 2 ? 'after' : null));
    const ledger = new StockLedger({ store, retry: false });
    await ledger.restock({ requestId: 'po', sku: 'A', qty: 5 });
    await expect(ledger.deduct({ requestId: 'o1', sku: 'A', qty: 2 })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // The caller cannot tell whether it ran: closing the id answers it.
    expect(await ledger.revoke({ requestId: 'o1' })).toEqual({ ok: false, code: 'REQUEST_APPLIED', requestId: 'o1', kind: 'deduct' });
    expect((await ledger.stock('A')).onHand).toBe(3);
  });

  it('gives up after attemptsMax and reports the attempts', async () => {
    const store = new LosingReplies(() => 'before');
    const ledger = new StockLedger({ store, retry: { attemptsMax: 3, baseMs: 0 } });
    const error = await ledger.restock({ requestId: 'po', sku: 'A', qty: 5 }).catch((e: unknown) => e);
    expect(isStockLedgerError(error) && error.code).toBe('STORE_UNAVAILABLE');
    expect((error as StoreUnavailableError).attempts).toBe(3);
    expect(store.calls).toBe(3);
  });

  it('a retried reserve holds for its whole ttlMs from the attempt that applied it', async () => {
    let now = 1000;
    const store = new LosingReplies((call) => (call === 1 ? 'before' : null));
    const ledger = new StockLedger({ store, clock: () => (now += 10), retry: { baseMs: 0 } });
    await store.inner.execute({ kind: 'restock', requestId: 'po', lines: [{ sku: 'A', qty: 5 }], meta: null, at: 0, fingerprint: 'po' });
    const result = await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 5 });
    expect(result.reservation.expiresAt - result.reservation.createdAt).toBe(5);
    expect(result.reservation.state).toBe('held');
  });

  it('does not retry when retry is false', async () => {
    const store = new LosingReplies((call) => (call === 1 ? 'before' : null));
    const ledger = new StockLedger({ store, retry: false });
    await expect(ledger.restock({ requestId: 'po', sku: 'A', qty: 5 })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(store.calls).toBe(1);
    expect(await ledger.restock({ requestId: 'po', sku: 'A', qty: 5 })).toMatchObject({ ok: true, replayed: false });
  });
});
