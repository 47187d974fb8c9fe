import { StoreUnavailableError, decide, materialize, zeroCounters } from '../../src/index.js';
import type { Command, Counters, Entry, Level, StateView, StockStore, StoreOutcome, StoredRequest, VerifyChunk, Write } from '../../src/index.js';
import { KeyedLocks } from './memory-locks.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Awaited inside every operation, after it has read the state and before it writes, with
   * the operation's locks held. Tests use it to interleave concurrent operations
   * (`fc.scheduler`, injected latency). Without it the store takes a lock-free synchronous path.
   */
  interleave?: () => Promise<void>;
}

/**
 * The reference store: the whole ledger in process memory. Each operation is one critical
 * section; with `interleave` it locks the request id and its SKUs (in a fixed order) so an
 * await between read and write stays safe.
 *
 * @example
 * ```ts
 * import { StockLedger } from '../../src/index.js';
 * import { MemoryStore } from 'stock-ledger/memory';
 * const ledger = new StockLedger({ store: new MemoryStore() });
 * ```
 */
export class MemoryStore implements StockStore {
  readonly #levels = new Map<string, Counters>();
  readonly #entries: Entry[] = [];
  readonly #entriesBySku = new Map<string, Entry[]>();
  readonly #requests = new Map<string, StoredRequest>();
  readonly #reversed = new Map<string, Map<string, number>>();
  readonly #locks = new KeyedLocks();
  readonly #interleave: (() => Promise<void>) | null;
  readonly #view: StateView;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#interleave = options.interleave ?? null;
    this.#view = {
      counters: (sku) => this.#levels.get(sku) ?? zeroCounters(),
      request: (id) => this.#requests.get(id) ?? null,
      reversed: (of, sku) => this.#reversed.get(of)?.get(sku) ?? 0,
    };
  }

  async execute(command: Command): Promise<StoreOutcome> {
    this.#open();
    if (this.#interleave === null) {
      const decision = decide(command, this.#view);
      return decision.write === null ? copyOutcome(decision.outcome) : this.#apply(decision.write);
    }
    const release = await this.#locks.acquire(upfrontKeys(command));
    try {
      const releaseMore = await this.#locks.acquire(this.#laterKeys(command));
      try {
        const decision = decide(command, this.#view);
        await this.#interleave();
        this.#open();
        return decision.write === null ? copyOutcome(decision.outcome) : this.#apply(decision.write);
      } finally {
        releaseMore();
      }
    } finally {
      release();
    }
  }

  async stocks(skus: readonly string[]): Promise<Level[]> {
    this.#open();
    return skus.map((sku) => {
      const c = this.#levels.get(sku) ?? zeroCounters();
      return { sku, onHand: c.onHand, reserved: c.reserved, available: c.onHand - c.reserved, version: c.version };
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<Entry[]> {
    this.#open();
    const { after, sku, limit } = query;
    if (sku === null) return this.#entries.slice(after, after + limit).map(copyEntry);
    const list = this.#entriesBySku.get(sku) ?? [];
    const from = firstAbove(list, after);
    return list.slice(from, from + limit).map(copyEntry);
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    this.#open();
    const stored = this.#requests.get(requestId);
    return stored === undefined ? null : { ...stored, outcome: copyOutcome(stored.outcome) as StoredRequest['outcome'] };
  }

  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    this.#open();
    const { cursor, limit } = query;
    const skus = [...new Set([...this.#levels.keys(), ...this.#entriesBySku.keys()])]
      .filter((sku) => cursor === null || sku > cursor)
      .sort()
      .slice(0, limit);
    const items = skus.map((sku) => ({ sku, stored: { ...(this.#levels.get(sku) ?? zeroCounters()) }, folded: this.#fold(sku) }));
    return { items, cursor: skus.length < limit ? null : (skus[skus.length - 1] ?? null) };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #fold(sku: string): Counters {
    const folded = zeroCounters();
    for (const entry of this.#entriesBySku.get(sku) ?? []) {
      folded.onHand += entry.onHandDelta;
      folded.reserved += entry.reservedDelta;
      folded.version += 1;
    }
    return folded;
  }

  /** Writes everything synchronously, so no reader ever sees half of an operation. */
  #apply(write: Write): StoreOutcome {
    const { outcome, entries, request } = materialize(write, this.#entries.length + 1);
    for (const entry of entries) {
      this.#entries.push(entry);
      const list = this.#entriesBySku.get(entry.sku);
      if (list === undefined) this.#entriesBySku.set(entry.sku, [entry]);
      else list.push(entry);
      this.#levels.set(entry.sku, { onHand: entry.onHandAfter, reserved: entry.reservedAfter, version: list === undefined ? 1 : list.length });
    }
    this.#requests.set(request.requestId, request);
    if (write.command.kind === 'reverse') this.#tally(write.command.of, write.reversals);
    return copyOutcome(outcome);
  }

  #tally(of: string, lines: Write['reversals']): void {
    const tally = this.#reversed.get(of) ?? new Map<string, number>();
    for (const { sku, qty } of lines) tally.set(sku, (tally.get(sku) ?? 0) + qty);
    this.#reversed.set(of, tally);
  }

  /** Keys a reverse without lines can only name after reading its original. */
  #laterKeys(command: Command): string[] {
    if (command.kind !== 'reverse' || command.lines !== null) return [];
    const original = this.#requests.get(command.of);
    return original === undefined ? [] : original.outcome.entries.map((entry) => `c:${entry.sku}`);
  }

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError('the memory store is closed');
  }
}

/**
 * Lock keys known before reading: the request id, the reversed request, the SKUs. A reverse
 * locks its original's id too: that waits out a deduct of it still in flight, so the SKUs it
 * reads from the original cannot change before it locks them.
 */
function upfrontKeys(command: Command): string[] {
  const keys = [`a:${command.requestId}`];
  switch (command.kind) {
    case 'restock':
    case 'adjust':
      keys.push(`c:${command.sku}`);
      break;
    case 'deduct':
      for (const line of command.lines) keys.push(`c:${line.sku}`);
      break;
    case 'reverse':
      keys.push(`a:${command.of}`);
      for (const line of command.lines ?? []) keys.push(`c:${line.sku}`);
      break;
  }
  return keys;
}

/** Index of the first entry with `seq > after` in a list ascending by seq. */
function firstAbove(list: Entry[], after: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as Entry).seq <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function copyEntry(entry: Entry): Entry {
  return { ...entry };
}

/** A copy the caller may mutate without touching the store (meta is frozen at validation). */
function copyOutcome(outcome: StoreOutcome): StoreOutcome {
  if (!outcome.ok) return { ...outcome };
  return { ...outcome, entries: outcome.entries.map(copyEntry), levels: outcome.levels.map((level) => ({ ...level })) };
}
