import { StoreUnavailableError, decide, materialize, zeroCounters } from '../../src/index.js';
import type {
  Applied, Command, Counters, Decision, Entry, HoldRef, Level, StateView, StockStore, StoreOutcome, StoredRequest,
  StoredReservation, VerifyChunk, Write,
} from '../../src/index.js';
import { HoldIndex, type HoldItem } from './memory-holds.js';
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
 * import { StockLedger } from 'stock-ledger';
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
  readonly #reservations = new Map<string, StoredReservation>();
  readonly #holds = new HoldIndex();
  readonly #holdsBySku = new Map<string, HoldIndex>();
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
      reservation: (id) => this.#reservations.get(id) ?? null,
      dueHolds: (sku, now, limit) => (this.#holdsBySku.get(sku)?.due(now, limit) ?? []).map((h) => h.reservationId),
      dueAnywhere: (now, limit) => this.#holds.due(now, limit).map(({ reservationId, sku }) => ({ reservationId, sku })),
    };
  }

  async execute(command: Command): Promise<StoreOutcome> {
    this.#open();
    if (this.#interleave === null) return this.#settle(decide(command, this.#view));
    const release = await this.#locks.acquire(upfrontKeys(command));
    try {
      const later = this.#laterKeys(command);
      const releaseMore = await this.#locks.acquire(later.map((sku) => `c:${sku}`));
      try {
        const decision = decide(command, command.kind === 'sweep' ? this.#sweepView(new Set(later)) : this.#view);
        await this.#interleave();
        this.#open();
        return this.#settle(decision);
      } finally {
        releaseMore();
      }
    } finally {
      release();
    }
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    this.#open();
    return skus.map((sku) => {
      const c = this.#levels.get(sku) ?? zeroCounters();
      const due = this.#holdsBySku.get(sku)?.dueTotals(now) ?? { qty: 0, count: 0 };
      const reserved = c.reserved - due.qty;
      return { sku, onHand: c.onHand, reserved, available: c.onHand - reserved, version: c.version + due.count };
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
    return stored === undefined ? null : { ...stored, outcome: copyOutcome(stored.outcome) as Applied };
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    this.#open();
    const stored = this.#reservations.get(reservationId);
    return stored === undefined ? null : structuredClone(stored);
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
  #settle(decision: Decision): StoreOutcome {
    const written = decision.write === null ? null : this.#apply(decision.write);
    return copyOutcome(decision.outcome ?? (written as StoreOutcome));
  }

  #apply(write: Write): StoreOutcome {
    const { outcome, entries, counters } = materialize(write, this.#entries.length + 1);
    for (const entry of entries) {
      this.#entries.push(entry);
      const list = this.#entriesBySku.get(entry.sku);
      if (list === undefined) this.#entriesBySku.set(entry.sku, [entry]);
      else list.push(entry);
    }
    for (const [sku, c] of counters) this.#levels.set(sku, c);
    if (write.request !== null) this.#requests.set(write.request.requestId, { ...write.request, at: write.at, outcome: outcome as Applied });
    if (write.reversal !== null) this.#tally(write.reversal.of, write.reversal.lines);
    if (write.reservation !== null) this.#hold(write.reservation);
    for (const hold of write.holdsEnded) this.#endHold(hold);
    for (const id of write.expired) this.#update(id, (r) => (r.state === 'held' ? { ...r, state: 'expired' } : r));
    const settled = write.settled;
    if (settled !== null) this.#update(settled.reservationId, (r) => ({ ...r, state: settled.state, committed: settled.committed, outcome: outcome as Applied }));
    return outcome;
  }

  #hold(reservation: StoredReservation): void {
    this.#reservations.set(reservation.id, reservation);
    for (const { sku, qty } of reservation.lines) {
      const item: HoldItem = { expiresAt: reservation.expiresAt, reservationId: reservation.id, sku, qty };
      this.#holds.add(item);
      let bySku = this.#holdsBySku.get(sku);
      if (bySku === undefined) this.#holdsBySku.set(sku, (bySku = new HoldIndex()));
      bySku.add(item);
    }
  }

  #endHold({ reservationId, sku }: HoldRef): void {
    const reservation = this.#reservations.get(reservationId);
    if (reservation === undefined) return;
    const item = { expiresAt: reservation.expiresAt, reservationId, sku, qty: 0 };
    this.#holds.remove(item);
    const bySku = this.#holdsBySku.get(sku);
    bySku?.remove(item);
    if (bySku?.size === 0) this.#holdsBySku.delete(sku);
    this.#update(reservationId, (r) => ({ ...r, holds: r.holds.filter((s) => s !== sku) }));
  }

  /** Replaces a reservation record, so readers holding the old one keep a consistent copy. */
  #update(id: string, change: (r: StoredReservation) => StoredReservation): void {
    const found = this.#reservations.get(id);
    if (found !== undefined) this.#reservations.set(id, change(found));
  }

  #tally(of: string, lines: Array<{ sku: string; qty: number }>): void {
    const tally = this.#reversed.get(of) ?? new Map<string, number>();
    for (const { sku, qty } of lines) tally.set(sku, (tally.get(sku) ?? 0) + qty);
    this.#reversed.set(of, tally);
  }

  /** SKUs an operation can only name after reading: a reverse's original, a reservation's, a sweep's. */
  #laterKeys(command: Command): string[] {
    switch (command.kind) {
      case 'reverse': {
        if (command.lines !== null) return [];
        const original = this.#requests.get(command.of);
        if (original === undefined) return [];
        return original.kind === 'reserve' ? (this.#reservations.get(command.of)?.lines ?? []).map((l) => l.sku) : original.outcome.entries.map((e) => e.sku);
      }
      case 'commit':
      case 'release':
        return (this.#reservations.get(command.reservationId)?.lines ?? []).map((l) => l.sku);
      case 'sweep':
        return this.#holds.due(command.at, command.limit + 1).map((h) => h.sku);
      default:
        return [];
    }
  }

  /** A sweep only touches the SKUs it locked. */
  #sweepView(locked: Set<string>): StateView {
    return { ...this.#view, dueAnywhere: (now, limit) => this.#view.dueAnywhere(now, limit).filter((h) => locked.has(h.sku)) };
  }

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError('the memory store is closed');
  }
}

/**
 * Lock keys known before reading: the request or reservation id, the reversed request, the
 * SKUs. A reverse locks its original's id too: that waits out the original (a deduct, or the
 * commit of a reservation) still in flight, so the SKUs it reads from it cannot change before
 * it locks them. The same holds for a commit or release and its reserve.
 */
function upfrontKeys(command: Command): string[] {
  switch (command.kind) {
    case 'restock':
    case 'adjust':
      return [`a:${command.requestId}`, `c:${command.sku}`];
    case 'deduct':
    case 'reserve':
      return [`a:${command.requestId}`, ...command.lines.map((l) => `c:${l.sku}`)];
    case 'reverse':
      return [`a:${command.requestId}`, `a:${command.of}`, ...(command.lines ?? []).map((l) => `c:${l.sku}`)];
    case 'commit':
    case 'release':
      return [`a:${command.reservationId}`];
    case 'sweep':
      return [];
  }
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
  const copy = { ...outcome, entries: outcome.entries.map(copyEntry), levels: outcome.levels.map((level) => ({ ...level })) };
  return 'reservation' in outcome ? { ...copy, reservation: structuredClone(outcome.reservation) } : copy;
}
