/**
 * The checkers must bite: a store that breaks the contract has to fail the suite. These tests
 * feed the conformance suite and its checkers deliberately broken stores and histories.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LIMITS, StockLedger } from 'stock-ledger';
import { decide, materialize, zeroCounters } from 'stock-ledger/store';
import type { Applied, Counters, FeedEntry, Level, StockStore } from 'stock-ledger';
import type { Command, StoreOutcome, StoredRequest, VerifyChunk } from 'stock-ledger/store';
import type { StoredReservation } from 'stock-ledger/store';
import { MemoryStore } from 'stock-ledger/memory';
import { ReferenceModel, checkInvariants, checkLinearizable, conformanceCases, type HistoryEvent } from 'stock-ledger/testing';

/**
 * While `on`, every store built on the core's `decide()` ends holds as a store keyed by
 * `${reservationId}\u0000${sku}` would: a second hold whose joined key repeats one already
 * ended in the same operation is left in place (the composite-key collision).
 */
const joinedHoldKeys = vi.hoisted(() => ({ on: false }));
vi.mock(import('../src/decide.js'), async (importOriginal) => {
  const actual = await importOriginal();
  return {
    ...actual,
    decide: (...args: Parameters<typeof actual.decide>) => {
      const decision = actual.decide(...args);
      if (!joinedHoldKeys.on || decision.write === null) return decision;
      const ended = new Set<string>();
      decision.write.holdsEnded = decision.write.holdsEnded.filter(({ reservationId, sku }) => {
        const key = `${reservationId}\u0000${sku}`;
        const first = !ended.has(key);
        ended.add(key);
        return first;
      });
      return decision;
    },
  };
});

afterEach(() => {
  vi.unstubAllEnvs();
  joinedHoldKeys.on = false;
});

/**
 * Reads, awaits, then writes, with no lock at all: the read-then-SET race of DESIGN.md 1.
 * Its decisions come from the library's own `decide`, so only the missing atomicity is wrong.
 */
class RacyStore implements StockStore {
  readonly #levels = new Map<string, Counters>();
  readonly #entries: FeedEntry[] = [];
  readonly #requests = new Map<string, StoredRequest>();
  readonly #reversed = new Map<string, number>();

  constructor(private readonly interleave: () => Promise<void> = () => Promise.resolve()) {}

  async execute(command: Command): Promise<StoreOutcome> {
    const decision = decide(command, {
      counters: (sku) => ({ ...(this.#levels.get(sku) ?? zeroCounters()) }),
      request: (id) => this.#requests.get(id) ?? null,
      reversed: (of, sku) => this.#reversed.get(JSON.stringify([of, sku])) ?? 0,
      buyerTaken: () => 0,
      reservation: () => null,
      dueHolds: () => [],
      dueAnywhere: () => [],
    });
    await this.interleave();
    const write = decision.write;
    if (write === null) return decision.outcome as StoreOutcome;
    const { outcome, entries } = materialize(write, this.#entries.length + 1);
    this.#entries.push(...entries);
    for (const step of write.steps) for (const change of step.changes) this.#levels.set(change.sku, change.after);
    if (write.request !== null) this.#requests.set(write.request.requestId, { ...write.request, at: write.at, outcome: outcome as Applied });
    for (const line of write.reversal?.lines ?? []) {
      const key = JSON.stringify([write.reversal?.of, line.sku]);
      this.#reversed.set(key, (this.#reversed.get(key) ?? 0) + line.qty);
    }
    return decision.outcome ?? outcome;
  }

  async reservation(): Promise<null> {
    return null;
  }

  async stocks(skus: readonly string[]): Promise<Level[]> {
    return skus.map((sku) => {
      const c = this.#levels.get(sku) ?? zeroCounters();
      return { sku, onHand: c.onHand, reserved: c.reserved, available: c.onHand - c.reserved, version: c.version };
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
    return this.#entries.filter((e) => e.seq > query.after && (query.sku === null || e.sku === query.sku)).slice(0, query.limit);
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    return this.#requests.get(requestId) ?? null;
  }

  async verifyChunk(): Promise<VerifyChunk> {
    const items = [...this.#levels.keys()].sort().map((sku) => {
      const folded = zeroCounters();
      for (const e of this.#entries) {
        if (e.sku !== sku) continue;
        folded.onHand += e.onHandDelta;
        folded.reserved += e.reservedDelta;
        folded.version += 1;
      }
      // No reservations here: no holds to report, and nothing repeated as far as it knows.
      return { sku, stored: { ...(this.#levels.get(sku) ?? zeroCounters()) }, folded, holds: [], foldedHolds: [], repeated: [], buyers: [] };
    });
    return { items, cursor: null };
  }

  async close(): Promise<void> {}
}

/** A gate per call: each store operation parks between its read and its write until opened. */
function gates(): { interleave: () => Promise<void>; open: () => void; parked: () => number } {
  const waiting: Array<() => void> = [];
  return {
    interleave: () => new Promise<void>((resolve) => waiting.push(resolve)),
    open: () => waiting.shift()?.(),
    parked: () => waiting.length,
  };
}

/** Lets every parked call reach its gate: one macrotask turn. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('checkLinearizable', () => {
  // A counter: `add` returns the new value, `get` the current one.
  type In = { add: number } | { get: true };
  const counter = {
    initial: 0,
    apply: (n: number, input: In) => ('add' in input ? { state: n + input.add, output: n + input.add } : { state: n, output: n }),
    equal: (a: number, b: number) => a === b,
    key: (n: number) => String(n),
  };
  const event = (input: In, output: number, invokedAt: number, respondedAt: number): HistoryEvent<In, number> => ({ input, output, invokedAt, respondedAt });

  it('accepts overlapping calls in either order', () => {
    const result = checkLinearizable([event({ add: 1 }, 2, 1, 4), event({ add: 1 }, 1, 2, 3)], counter);
    expect(result).toEqual({ ok: true, order: [1, 0] });
  });

  it('rejects a read that missed a write which had already returned', () => {
    const result = checkLinearizable([event({ add: 1 }, 1, 1, 2), event({ get: true }, 0, 3, 4)], counter);
    expect(result.ok).toBe(false);
  });

  it('accepts the same read when it overlapped the write', () => {
    expect(checkLinearizable([event({ add: 1 }, 1, 1, 3), event({ get: true }, 0, 2, 4)], counter).ok).toBe(true);
  });

  it('rejects two concurrent increments that both saw the same value (a lost update)', () => {
    const result = checkLinearizable([event({ add: 1 }, 1, 1, 3), event({ add: 1 }, 1, 2, 4)], counter);
    expect(result).toMatchObject({ ok: false, inconclusive: false, longestPrefix: [0] });
  });

  it('reports an exhausted budget as inconclusive, not as a pass', () => {
    // Ten interchangeable no-ops and one impossible answer: without memoization the search
    // tries every order of the no-ops before it can say no.
    const history = [...Array.from({ length: 10 }, (_, i) => event({ add: 0 }, 0, 1 + i, 100 + i)), event({ add: 1 }, 100, 11, 111)];
    const { key: _key, ...withoutMemo } = counter;
    expect(checkLinearizable(history, withoutMemo, { stepsMax: 1000 })).toMatchObject({ ok: false, inconclusive: true });
    expect(checkLinearizable(history, counter)).toMatchObject({ ok: false, inconclusive: false });
  });
});

describe('checkInvariants', () => {
  it('passes on a correct store', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 2 });
    await ledger.deductOrThrow({ requestId: 'd', lines: [{ sku: 'A', qty: 1 }] });
    const { entries } = await checkInvariants(ledger);
    expect(entries.map((e) => e.requestId)).toEqual(['r', 'd']);
  });

  it('catches the lost update of a store without locks (two deducts of the last unit)', async () => {
    const gate = gates();
    const ledger = new StockLedger({ store: new RacyStore(gate.interleave) });
    const restock = ledger.restock({ requestId: 'r', sku: 'A', qty: 1 });
    gate.open();
    await restock;
    const first = ledger.deduct({ requestId: 'd1', sku: 'A', qty: 1 });
    const second = ledger.deduct({ requestId: 'd2', sku: 'A', qty: 1 });
    await nextTurn();
    expect(gate.parked()).toBe(2); // both read "1 available" before either wrote
    gate.open();
    gate.open();
    const results = await Promise.all([first, second]);
    expect(results.map((r) => r.ok)).toEqual([true, true]); // oversold
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariants broken[\s\S]*(drift|fold)/);
  });

  it('catches a request applied twice', async () => {
    const gate = gates();
    const ledger = new StockLedger({ store: new RacyStore(gate.interleave) });
    const sends = [ledger.restock({ requestId: 'r', sku: 'A', qty: 1 }), ledger.restock({ requestId: 'r', sku: 'A', qty: 1 })];
    await nextTurn();
    gate.open();
    gate.open();
    await Promise.all(sends);
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariant appliedOnce of "A" broken.*2 restock entries of request "r"/);
  });

  it('catches a partly applied multi-line operation', async () => {
    const ledger = new StockLedger({ store: new MemoryStore() });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 1 });
    // As if the store had applied "r" on A only, though the operation named A and B.
    await expect(checkInvariants(ledger, { operations: [{ requestId: 'r', skus: ['A', 'B'] }] })).rejects.toThrow(/partly applied/);
  });
});

/** Reads of `A` with `reserved` moved by `delta` (and `available` to match): the stored levels are right, the reads are not. */
class SkewedReads extends MemoryStore {
  constructor(private readonly delta: number) {
    super();
  }
  override async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    return (await super.stocks(skus, now)).map((l) => (l.sku === 'A' ? { ...l, reserved: l.reserved + this.delta, available: l.available - this.delta } : l));
  }
}

/** Loses the record of reservation `cart` while its hold is still in the entries. */
class LostRecord extends MemoryStore {
  override async reservation(reservationId: string): Promise<StoredReservation | null> {
    return reservationId === 'cart' ? null : super.reservation(reservationId);
  }
}

/** A `verifyChunk` that reports `A` with reserved -1: only `verify()` sees it. */
class NegativeInVerify extends MemoryStore {
  override async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    const chunk = await super.verifyChunk(query);
    return { ...chunk, items: chunk.items.map((i) => (i.sku === 'A' ? { ...i, stored: { ...i.stored, reserved: -1 } } : i)) };
  }
}

/** A ledger on `store` with 3 of A and a hold `cart` of 1 unit for a minute. */
async function withHold(store: StockStore): Promise<StockLedger> {
  const ledger = new StockLedger({ store, clock: () => 1000 });
  await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 3 });
  await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 60_000 });
  return ledger;
}

describe('checkInvariants runs the core\'s verifyItem on what the public API reads, and names the invariant', () => {
  it('a level read with a negative reserved breaks reservedNonNegative, though the store\'s own verify() is fooled', async () => {
    const ledger = await withHold(new SkewedReads(-2));
    expect((await ledger.verify()).ok).toBe(true);
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariant reservedNonNegative of "A" broken, as read \(no hold due\): reserved is -1, below 0/);
  });

  it('a level whose reserved is not what the live holds hold breaks holdsSum', async () => {
    const ledger = await withHold(new SkewedReads(1));
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariant holdsSum of "A" broken, as read \(no hold due\): live holds sum to 1, reserved is 2/);
  });

  it('a live hold whose reservation has no record breaks holdRecord', async () => {
    const ledger = await withHold(new LostRecord());
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariant holdRecord of "A" broken, as read \(no hold due\): hold of "cart" has no reservation record/);
  });

  it('a drift verify() reports is listed with its invariant', async () => {
    const ledger = await withHold(new NegativeInVerify());
    const error = await checkInvariants(ledger).catch((e: unknown) => e);
    expect(String(error)).toMatch(/verify\(\): invariant reservedNonNegative of "A" broken/);
    // The reads are sound: only verify() is named.
    expect(String(error)).not.toMatch(/as read/);
  });

  it('passes the same ledgers on a correct store, due holds included', async () => {
    let now = 1000;
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 3 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 });
    await ledger.reserveOrThrow({ requestId: 'cart\u0000A', lines: [{ sku: 'A', qty: 2 }], ttlMs: 60_000 });
    await checkInvariants(ledger);
    now = 1010; // cart is due, not yet expired in storage
    const { levels } = await checkInvariants(ledger);
    expect(levels.get('A')).toEqual({ sku: 'A', onHand: 3, reserved: 2, available: 1, version: 4 });
  });
});

describe('the conformance suite bites', () => {
  it('fails the scheduler interleaving case for a store that reads, awaits, then writes without locks', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '42');
    const cases = conformanceCases({ name: 'racy', createStore: () => new RacyStore(), createInterleavedStore: (i) => new RacyStore(i) });
    const interleavings = cases.find((c) => c.name.includes('fc.scheduler'));
    expect(interleavings).toBeDefined();
    await expect(interleavings?.run()).rejects.toThrow(/NOT linearizable|invariants broken/);
  });

  it('fails the jittered concurrent batches for the same store, without a scheduler', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '7');
    const cases = conformanceCases({ name: 'racy', createStore: () => new RacyStore(), createInterleavedStore: (i) => new RacyStore(i) });
    const batches = cases.find((c) => c.name.includes('small batches on the interleaved store'));
    await expect(batches?.run()).rejects.toThrow(/NOT linearizable|invariants broken/);
  });

  it('fails the differential case for a store that answers a changed payload with a replay', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '1');
    class ConflictBlind extends MemoryStore {
      override async execute(command: Command): Promise<StoreOutcome> {
        const outcome = await super.execute(command);
        if (outcome.ok || outcome.code !== 'IDEMPOTENCY_CONFLICT' || !('requestId' in command)) return outcome;
        const stored = await this.request(command.requestId);
        return stored === null ? outcome : { ...stored.outcome, replayed: true };
      }
    }
    const differential = conformanceCases({ name: 'blind', createStore: () => new ConflictBlind() }).find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/IDEMPOTENCY_CONFLICT/);
  });

  it('fails the differential case for a store whose replays carry the time of the retry', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '1');
    class Forgetful extends MemoryStore {
      override async execute(command: Command): Promise<StoreOutcome> {
        const outcome = await super.execute(command);
        if (!outcome.ok || !outcome.replayed) return outcome;
        return { ...outcome, entries: outcome.entries.map((e) => ({ ...e, at: command.at })) };
      }
    }
    const differential = conformanceCases({ name: 'forgetful', createStore: () => new Forgetful() }).find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/property failed/);
  });

  it('fails the closed-id case and the differential for a store that lets a late duplicate of a revoked id through', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '1');
    // Applies the refused call under a fresh id, as a store that forgot to check for a tombstone would.
    class TombstoneBlind extends MemoryStore {
      override async execute(command: Command): Promise<StoreOutcome> {
        const outcome = await super.execute(command);
        if (outcome.ok || outcome.code !== 'REQUEST_REVOKED' || !('requestId' in command)) return outcome;
        return super.execute({ ...command, requestId: `${command.requestId}#late` });
      }
    }
    const cases = conformanceCases({ name: 'tombstone-blind', createStore: () => new TombstoneBlind() });
    const closed = cases.find((c) => c.name.includes('revoke closes a rejected id'));
    await expect(closed?.run()).rejects.toThrow(/deduct under the revoked id/);
    const differential = cases.find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/property failed[\s\S]*REQUEST_REVOKED/);
  });

  it('fails the composite-key case for a store whose holds are keyed by reservation id and SKU joined with U+0000', async () => {
    joinedHoldKeys.on = true;
    const collide = conformanceCases({ name: 'joined', createStore: () => new MemoryStore() }).find((c) => c.name.includes('never collide'));
    await expect(collide?.run()).rejects.toThrow(/with separator "\\u0000": levels past every expiry[\s\S]*"reserved":-2/);
  });

  it('fails the differential for the same store: its pools make the collision reachable', async () => {
    // Most seeds find it; this one fast (shrinking a long failing run takes a while).
    vi.stubEnv('STOCK_LEDGER_SEED', '2');
    joinedHoldKeys.on = true;
    const differential = conformanceCases({ name: 'joined', createStore: () => new MemoryStore() }).find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/property failed/);
  });

  it('fails the retry storm for a store that records nothing for replays to find', async () => {
    // Every send is evaluated afresh: lost replies turn into double deductions.
    class NoIdempotency extends MemoryStore {
      #n = 0;
      override execute(command: Command): Promise<StoreOutcome> {
        if (!('requestId' in command)) return super.execute(command);
        return super.execute({ ...command, requestId: `${command.requestId}#${(this.#n += 1)}` });
      }
    }
    const storm = conformanceCases({ name: 'no-idempotency', createStore: () => new NoIdempotency() }).find((c) => c.name.includes('retry storm'));
    await expect(storm?.run()).rejects.toThrow(/applied|served|twice/);
  });

  it('fails the paging case for a store whose sku filter is ignored past the first page', async () => {
    class BadFilter extends MemoryStore {
      override entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
        return super.entries(query.after > 0 ? { ...query, sku: null } : query);
      }
    }
    const reads = conformanceCases({ name: 'bad-filter', createStore: () => new BadFilter() }).find((c) => c.name.includes('paging'));
    await expect(reads?.run()).rejects.toThrow(/entries/);
  });
});

describe('ReferenceModel (hand-computed, to keep the model honest)', () => {
  it('merges duplicate lines, sorts by SKU, numbers entries and counts versions', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'b', qty: 5 } }, 10);
    m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'a', qty: 5 } }, 20);
    const d = m.apply({ kind: 'deduct', input: { requestId: 'd', lines: [{ sku: 'b', qty: 1 }, { sku: 'a', qty: 2 }, { sku: 'b', qty: 2 }] } }, 30);
    expect(d).toEqual({
      ok: true, replayed: false,
      entries: [
        { seq: 3, requestId: 'd', kind: 'deduct', sku: 'a', onHandDelta: -2, reservedDelta: 0, onHandAfter: 3, reservedAfter: 0, at: 30 },
        { seq: 4, requestId: 'd', kind: 'deduct', sku: 'b', onHandDelta: -3, reservedDelta: 0, onHandAfter: 2, reservedAfter: 0, at: 30 },
      ],
      levels: [
        { sku: 'a', onHand: 3, reserved: 0, available: 3, version: 2 },
        { sku: 'b', onHand: 2, reserved: 0, available: 2, version: 2 },
      ],
    });
    // The shorthand of the same merged payload would conflict (other lines); the same lines reordered replay.
    expect(m.apply({ kind: 'deduct', input: { requestId: 'd', lines: [{ sku: 'a', qty: 2 }, { sku: 'b', qty: 3 }] } }, 99)).toEqual({ ...d, replayed: true });
    expect(m.apply({ kind: 'deduct', input: { requestId: 'd', sku: 'a', qty: 2 } }, 99)).toEqual({ thrown: 'IDEMPOTENCY_CONFLICT' });
  });

  it('reverses what is left, then refuses, and knows what is not reversible', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r', sku: 'A', qty: 10 } }, 1);
    m.apply({ kind: 'deduct', input: { requestId: 'd', lines: [{ sku: 'A', qty: 4 }] } }, 2);
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v1', of: 'd', lines: [{ sku: 'A', qty: 1 }] } }, 3)).toMatchObject({ ok: true });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v2', of: 'd' } }, 4)).toMatchObject({ ok: true, entries: [{ sku: 'A', onHandDelta: 3 }] });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v3', of: 'd' } }, 5)).toEqual({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: 'A', requested: 4, remaining: 0 });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v4', of: 'd', lines: [{ sku: 'B', qty: 1 }] } }, 5)).toEqual({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: 'B', requested: 1, remaining: 0 });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v5', of: 'r' } }, 6)).toEqual({ ok: false, code: 'NOT_REVERSIBLE', requestId: 'r', kind: 'restock' });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v6', of: 'zz' } }, 6)).toEqual({ ok: false, code: 'REQUEST_NOT_FOUND', requestId: 'zz' });
    expect(m.level('A')).toEqual({ sku: 'A', onHand: 10, reserved: 0, available: 10, version: 4 });
    // Rejections recorded nothing: v3 can be used again, for anything.
    expect(m.apply({ kind: 'restock', input: { requestId: 'v3', sku: 'A', qty: 1 } }, 7)).toMatchObject({ ok: true, replayed: false });
  });

  it('checks the version before the level, and the quantity limit', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r', sku: 'A', qty: LIMITS.quantityMax } }, 1);
    expect(m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'A', qty: 1 } }, 2)).toEqual({
      ok: false, code: 'QUANTITY_LIMIT', sku: 'A', requested: 1, onHand: LIMITS.quantityMax, limit: LIMITS.quantityMax,
    });
    expect(m.apply({ kind: 'adjust', input: { requestId: 'a', sku: 'A', onHand: 3, expectedVersion: 0 } }, 3)).toMatchObject({ ok: false, code: 'VERSION_CONFLICT', expectedVersion: 0, level: { version: 1 } });
    expect(m.apply({ kind: 'adjust', input: { requestId: 'a', sku: 'A', onHand: 3, expectedVersion: 1 } }, 4)).toMatchObject({ ok: true, entries: [{ onHandDelta: 3 - LIMITS.quantityMax }] });
  });
});

/** Reads that never count a hold as due: a store that forgot `stocks(skus, now)` must discount due holds. */
class StaleReads extends MemoryStore {
  override stocks(skus: readonly string[]): Promise<Level[]> {
    return super.stocks(skus, Number.MIN_SAFE_INTEGER);
  }
}

/** Lets a commit through at or after `expiresAt`, as if the store compared with `>` or read a stale clock. */
class LateCommit extends MemoryStore {
  override async execute(command: Command): Promise<StoreOutcome> {
    if (command.kind === 'commit') {
      const held = await this.reservation(command.reservationId);
      if (held?.state === 'held' && command.at >= held.expiresAt) return super.execute({ ...command, at: held.expiresAt - 1 });
    }
    return super.execute(command);
  }
}

/** Forgets that a reservation was committed when asked about it (its entries say otherwise). */
class Amnesiac extends MemoryStore {
  override async reservation(reservationId: string): Promise<StoredReservation | null> {
    const stored = await super.reservation(reservationId);
    return stored?.state === 'committed' ? { ...stored, state: 'held', committed: null } : stored;
  }
}

describe('the conformance suite bites stores that get reservations wrong', () => {
  it('fails the differential case for a store whose reads do not discount due holds', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '1');
    const differential = conformanceCases({ name: 'stale-reads', createStore: () => new StaleReads() }).find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/property failed[\s\S]*levels (after|at)/);
  });

  it('fails the differential case for a store that lets a commit through at expiresAt', async () => {
    vi.stubEnv('STOCK_LEDGER_SEED', '1');
    const differential = conformanceCases({ name: 'late-commit', createStore: () => new LateCommit() }).find((c) => c.name.includes('differential'));
    await expect(differential?.run()).rejects.toThrow(/property failed[\s\S]*outcome of commit/);
  });

  it('checkInvariants catches reads that do not discount due holds', async () => {
    let now = 1000;
    const ledger = new StockLedger({ store: new StaleReads(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 2 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 2 }], ttlMs: 10 });
    await checkInvariants(ledger);
    now = 1010;
    await expect(checkInvariants(ledger)).rejects.toThrow(/invariant fold of "A" broken, as read \(1 due hold\(s\) of 2 unit\(s\) counted as expired\)/);
  });

  it('checkInvariants catches a reservation whose state disagrees with its entries', async () => {
    const ledger = new StockLedger({ store: new Amnesiac(), clock: () => 1000 });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 2 });
    await ledger.reserveOrThrow({ requestId: 'cart', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 });
    await ledger.commitOrThrow({ reservationId: 'cart' });
    await expect(checkInvariants(ledger)).rejects.toThrow(/reservation cart is held; commit entries: true/);
  });

  it('checkInvariants passes on a correct store with every kind of reservation move', async () => {
    let now = 1000;
    const ledger = new StockLedger({ store: new MemoryStore(), clock: () => now });
    await ledger.restockOrThrow({ requestId: 'r', sku: 'A', qty: 9 });
    await ledger.restockOrThrow({ requestId: 'r2', sku: 'B', qty: 9 });
    await ledger.reserveOrThrow({ requestId: 'sold', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 100 });
    await ledger.commitOrThrow({ reservationId: 'sold', lines: [{ sku: 'A', qty: 1 }] });
    await ledger.reserveOrThrow({ requestId: 'back', lines: [{ sku: 'A', qty: 1 }], ttlMs: 100 });
    await ledger.releaseOrThrow({ reservationId: 'back' });
    await ledger.reserveOrThrow({ requestId: 'late', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 2 }], ttlMs: 5 });
    await ledger.reserveOrThrow({ requestId: 'live', lines: [{ sku: 'B', qty: 1 }], ttlMs: 1000 });
    now = 1005;
    await checkInvariants(ledger); // 'late' is due but not yet expired in storage
    await ledger.restockOrThrow({ requestId: 'r3', sku: 'A', qty: 1 }); // expires 'late' on A only
    const { entries } = await checkInvariants(ledger);
    expect(entries.filter((e) => e.kind === 'expire').map((e) => [e.requestId, e.sku])).toEqual([['late', 'A']]);
  });
});

describe('ReferenceModel reservations (hand-computed)', () => {
  it('reserves, replays, conflicts, and reads due holds as expired before any write', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 1000);
    m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'B', qty: 5 } }, 1000);
    const reserve = { kind: 'reserve' as const, input: { requestId: 'h', lines: [{ sku: 'B', qty: 1 }, { sku: 'A', qty: 2 }], ttlMs: 100, meta: { cart: 1 } } };
    const held = m.apply(reserve, 1000);
    const reservation = { id: 'h', state: 'held', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], expiresAt: 1100, createdAt: 1000, committed: null, meta: { cart: 1 } };
    expect(held).toEqual({
      ok: true, replayed: false,
      entries: [
        { seq: 3, requestId: 'h', kind: 'reserve', sku: 'A', onHandDelta: 0, reservedDelta: 2, onHandAfter: 5, reservedAfter: 2, at: 1000, meta: { cart: 1 } },
        { seq: 4, requestId: 'h', kind: 'reserve', sku: 'B', onHandDelta: 0, reservedDelta: 1, onHandAfter: 5, reservedAfter: 1, at: 1000, meta: { cart: 1 } },
      ],
      levels: [{ sku: 'A', onHand: 5, reserved: 2, available: 3, version: 2 }, { sku: 'B', onHand: 5, reserved: 1, available: 4, version: 2 }],
      reservation,
    });
    expect(m.apply({ ...reserve, input: { ...reserve.input, lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }, { sku: 'A', qty: 1 }] } }, 1050)).toEqual({ ...(held as object), replayed: true });
    expect(m.apply({ ...reserve, input: { ...reserve.input, ttlMs: 101 } }, 1050)).toEqual({ thrown: 'IDEMPOTENCY_CONFLICT' });
    expect(m.request('h')).toMatchObject({ kind: 'reserve', at: 1000, reservation });
    // Due at expiresAt: reads discount the hold (one version each) before anything is written.
    expect(m.levelAt('A', 1099)).toEqual({ sku: 'A', onHand: 5, reserved: 2, available: 3, version: 2 });
    expect(m.levelAt('A', 1100)).toEqual({ sku: 'A', onHand: 5, reserved: 0, available: 5, version: 3 });
    expect(m.reservation('h', 1099)?.state).toBe('held');
    expect(m.reservation('h', 1100)?.state).toBe('expired');
    expect(m.entries()).toHaveLength(4);
  });

  it('writes the due expiries of the SKUs an operation touches first, even when it is rejected', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 1000);
    m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'B', qty: 5 } }, 1000);
    m.apply({ kind: 'reserve', input: { requestId: 'h', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 100 } }, 1000);
    expect(m.apply({ kind: 'deduct', input: { requestId: 'd', sku: 'A', qty: 6 } }, 1100)).toEqual({
      ok: false, code: 'INSUFFICIENT_STOCK', sku: 'A', requested: 6, available: 5,
    });
    expect(m.request('d')).toBeNull();
    expect(m.entries().slice(4)).toEqual([
      { seq: 5, requestId: 'h', kind: 'expire', sku: 'A', onHandDelta: 0, reservedDelta: -2, onHandAfter: 5, reservedAfter: 0, at: 1100 },
    ]);
    // The B hold is still in storage, but reads see it as expired.
    expect(m.level('B')).toEqual({ sku: 'B', onHand: 5, reserved: 1, available: 4, version: 2 });
    expect(m.levelAt('B', 1100)).toEqual({ sku: 'B', onHand: 5, reserved: 0, available: 5, version: 3 });
    expect(m.apply({ kind: 'deduct', input: { requestId: 'd', sku: 'A', qty: 5 } }, 1100)).toMatchObject({ ok: true, entries: [{ seq: 6, onHandAfter: 0 }] });
    // Commit of the expired reservation: rejected, and its last hold expires.
    expect(m.apply({ kind: 'commit', input: { reservationId: 'h' } }, 1101)).toEqual({ ok: false, code: 'RESERVATION_EXPIRED', reservationId: 'h', expiresAt: 1100 });
    expect(m.entries().slice(6)).toEqual([
      { seq: 7, requestId: 'h', kind: 'expire', sku: 'B', onHandDelta: 0, reservedDelta: -1, onHandAfter: 5, reservedAfter: 0, at: 1101 },
    ]);
    expect(m.apply({ kind: 'release', input: { reservationId: 'h' } }, 1102)).toEqual({ ok: false, code: 'RESERVATION_EXPIRED', reservationId: 'h', expiresAt: 1100 });
    expect(m.entries()).toHaveLength(7);
    expect(m.apply({ kind: 'commit', input: { reservationId: 'nope' } }, 1102)).toEqual({ ok: false, code: 'RESERVATION_NOT_FOUND', reservationId: 'nope' });
  });

  it('commits partly, replays the same lines, refuses others, and reverses what the commit sold', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 1);
    m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'B', qty: 5 } }, 1);
    m.apply({ kind: 'reserve', input: { requestId: 'h', lines: [{ sku: 'A', qty: 2 }, { sku: 'B', qty: 1 }], ttlMs: 1000 } }, 1);
    expect(m.apply({ kind: 'commit', input: { reservationId: 'h', lines: [{ sku: 'A', qty: 3 }] } }, 2)).toEqual({
      ok: false, code: 'EXCEEDS_RESERVATION', reservationId: 'h', sku: 'A', requested: 3, held: 2,
    });
    const commit = m.apply({ kind: 'commit', input: { reservationId: 'h', lines: [{ sku: 'A', qty: 1 }] } }, 2);
    expect(commit).toEqual({
      ok: true, replayed: false,
      entries: [
        { seq: 5, requestId: 'h', kind: 'commit', sku: 'A', onHandDelta: -1, reservedDelta: -2, onHandAfter: 4, reservedAfter: 0, at: 2 },
        { seq: 6, requestId: 'h', kind: 'commit', sku: 'B', onHandDelta: 0, reservedDelta: -1, onHandAfter: 5, reservedAfter: 0, at: 2 },
      ],
      levels: [{ sku: 'A', onHand: 4, reserved: 0, available: 4, version: 3 }, { sku: 'B', onHand: 5, reserved: 0, available: 5, version: 3 }],
    });
    expect(m.apply({ kind: 'commit', input: { reservationId: 'h', lines: [{ sku: 'A', qty: 1 }] } }, 5000)).toEqual({ ...(commit as object), replayed: true });
    expect(m.apply({ kind: 'commit', input: { reservationId: 'h' } }, 3)).toEqual({ thrown: 'IDEMPOTENCY_CONFLICT' });
    expect(m.apply({ kind: 'release', input: { reservationId: 'h' } }, 3)).toEqual({ ok: false, code: 'RESERVATION_COMMITTED', reservationId: 'h' });
    expect(m.reservation('h', 5000)).toMatchObject({ state: 'committed', committed: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 0 }] });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v', of: 'h' } }, 4)).toMatchObject({ ok: true, entries: [{ seq: 7, sku: 'A', onHandDelta: 1 }] });
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v2', of: 'h' } }, 4)).toEqual({ ok: false, code: 'REVERSAL_EXCEEDS_ORIGINAL', sku: 'A', requested: 1, remaining: 0 });
    m.apply({ kind: 'reserve', input: { requestId: 'h2', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 } }, 4);
    expect(m.apply({ kind: 'reverse', input: { requestId: 'v3', of: 'h2' } }, 4)).toEqual({ ok: false, code: 'NOT_REVERSIBLE', requestId: 'h2', kind: 'reserve' });
    expect(m.apply({ kind: 'release', input: { reservationId: 'h2' } }, 5)).toMatchObject({ ok: true, replayed: false, entries: [{ kind: 'release', reservedDelta: -1 }] });
    expect(m.apply({ kind: 'release', input: { reservationId: 'h2' } }, 50)).toMatchObject({ ok: true, replayed: true });
    expect(m.apply({ kind: 'commit', input: { reservationId: 'h2' } }, 6)).toEqual({ ok: false, code: 'RESERVATION_RELEASED', reservationId: 'h2' });
  });

  it('sweeps due holds soonest first, then by reservation id and SKU, at most limit, and says if more are due', () => {
    const m = new ReferenceModel();
    m.apply({ kind: 'restock', input: { requestId: 'r1', sku: 'A', qty: 5 } }, 0);
    m.apply({ kind: 'restock', input: { requestId: 'r2', sku: 'B', qty: 5 } }, 0);
    m.apply({ kind: 'reserve', input: { requestId: 'y', lines: [{ sku: 'A', qty: 1 }], ttlMs: 10 } }, 0);
    m.apply({ kind: 'reserve', input: { requestId: 'x', lines: [{ sku: 'A', qty: 1 }, { sku: 'B', qty: 1 }], ttlMs: 10 } }, 0);
    m.apply({ kind: 'reserve', input: { requestId: 'w', lines: [{ sku: 'B', qty: 1 }], ttlMs: 5 } }, 0);
    const ends = (r: unknown): unknown => (r as { entries: Array<{ requestId: string; sku: string }> }).entries.map((e) => `${e.requestId}/${e.sku}`);
    const first = m.apply({ kind: 'sweep', input: { limit: 2 } }, 10);
    expect(first).toMatchObject({ expired: 2, more: true });
    expect(ends(first)).toEqual(['w/B', 'x/A']);
    const second = m.apply({ kind: 'sweep', input: {} }, 10);
    expect(second).toMatchObject({ expired: 2, more: false });
    expect(ends(second)).toEqual(['x/B', 'y/A']);
    expect(m.apply({ kind: 'sweep', input: {} }, 10)).toEqual({ expired: 0, more: false, entries: [] });
    expect(m.levelAt('A', 10)).toEqual({ sku: 'A', onHand: 5, reserved: 0, available: 5, version: 5 });
  });
});
