import { InvariantViolationError, StoreUnavailableError } from '../../src/index.js';
import {
  DEFAULT_POLICY, decide, emptyCheckpoint, endsReservation, foldIntoCheckpoint, isSettled, namedSkus, levelAsOf, levelOf, materialize, ownsRecord, publicReservation, reservationOf, withCheckpoint,
  withPolicy, zeroCounters, type Checkpoint,
} from '../../src/store-kit.js';
import type { Allocation, Applied, Reservation, Counters, Entry, EntryKind, FeedEntry, Level, OperationKind, StockPolicy, StockStore } from '../../src/index.js';
import type {
  Command, CompactQuery, CompactStep, Decision, HoldCheck, HoldCursor, HoldRef, LevelsQueryOfStore, StateView, StoredHold, StoredLevelsPage, StoreOutcome, StoredRequest,
  StoredReservation, VerifyChunk, VerifyItem, Write,
} from '../../src/store-kit.js';
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
  readonly #entries: FeedEntry[] = [];
  readonly #entriesBySku = new Map<string, FeedEntry[]>();
  /** SKUs in order, for verify's walk; SKUs are never removed, so a size change means stale. */
  #sortedSkus: string[] | null = null;
  /** Applied requests, kept small (the hot path writes one per operation); outcomes are rebuilt on demand. */
  readonly #requests = new Map<string, RequestSlot>();
  readonly #reversed = new Map<string, Map<string, number>>();
  readonly #reservations = new Map<string, StoredReservation>();
  /** The expiry a reservation was made with, once an extend moved it: its reserve's replay shows this one. */
  readonly #madeUntil = new Map<string, number>();
  /** The SKU's policy after an entry, by seq, kept only where it is not the default: replays rebuild levels from entries. */
  readonly #policyAt = new Map<number, StockPolicy>();
  /** What each buyer holds plus has bought: SKU -> buyer -> units (nested: no two pairs share a key; zeros removed). */
  readonly #buyers = new Map<string, Map<string, number>>();
  readonly #holds = new HoldIndex();
  readonly #holdsBySku = new Map<string, HoldIndex>();
  /** What each SKU's compacted entries folded to. */
  readonly #checkpoints = new Map<string, Checkpoint>();
  /** The highest seq compacted away: `#entries[0]` has seq `#horizon + 1`. */
  #horizon = 0;
  /** Closed ids (revoke records) in the order they were recorded, for compaction. */
  readonly #closedIds: string[] = [];
  readonly #locks = new KeyedLocks();
  readonly #interleave: (() => Promise<void>) | null;
  readonly #view: StateView;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#interleave = options.interleave ?? null;
    this.#view = {
      counters: (sku) => this.#levels.get(sku) ?? zeroCounters(),
      request: (id) => this.#storedRequest(id),
      reversed: (of, sku) => this.#reversed.get(of)?.get(sku) ?? 0,
      reservation: (id) => this.#reservations.get(id) ?? null,
      dueHolds: (sku, now, limit) => (this.#holdsBySku.get(sku)?.due(now, limit) ?? []).map((h) => h.reservationId),
      dueAnywhere: (now, limit) => this.#holds.due(now, limit).map(({ reservationId, sku }) => ({ reservationId, sku })),
      buyerTaken: (sku, buyer) => this.#buyers.get(sku)?.get(buyer) ?? 0,
    };
  }

  execute(command: Command): Promise<StoreOutcome> {
    if (this.#interleave !== null) return this.#executeLocked(command, this.#interleave);
    // Synchronous: the whole operation runs in one turn of the event loop, so it is atomic.
    try {
      this.#open();
      return Promise.resolve(this.#carryOut(decide(command, this.#view)));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new InvariantViolationError(`memory store threw ${String(error)}`));
    }
  }

  /** With an await between read and write: locks the request id and SKUs, in a fixed order. */
  async #executeLocked(command: Command, interleave: () => Promise<void>): Promise<StoreOutcome> {
    this.#open();
    const release = await this.#locks.acquire(upfrontKeys(command));
    try {
      for (let attempt = 1; attempt <= LATER_LOCK_ATTEMPTS_MAX; attempt += 1) {
        const later = await this.#lockLater(command);
        try {
          const decision = decide(command, this.#view);
          await interleave();
          this.#open();
          if (command.kind !== 'sweep') return this.#carryOut(decision);
          // A sweep reads every due hold, and a reserve on a SKU it has not locked can add one
          // while it waits: it decides again now, in the same turn as its write, if it still
          // holds every SKU it would touch, else it locks the new set and starts over.
          if (this.#laterKeys(command).every((sku) => later.held.has(sku))) return this.#carryOut(decide(command, this.#view));
        } finally {
          later.release();
        }
      }
      throw new StoreUnavailableError(`${command.kind}: the SKUs to lock kept changing; retry`);
    } finally {
      release();
    }
  }

  /**
   * Locks the SKUs an operation can only name after reading, then reads them again: if they
   * changed while it waited (a sweep's due holds can), it lets go and locks the new set, a
   * bounded number of times. The caller decides right after, in the same turn, so it reads
   * exactly the SKUs it holds.
   */
  async #lockLater(command: Command): Promise<{ release: () => void; held: ReadonlySet<string> }> {
    let later = this.#laterKeys(command);
    for (let attempt = 1; attempt <= LATER_LOCK_ATTEMPTS_MAX; attempt += 1) {
      const releaseMore = await this.#locks.acquire(later.map((sku) => `c:${sku}`));
      const now = this.#laterKeys(command);
      const held = new Set(later);
      if (now.every((sku) => held.has(sku))) return { release: releaseMore, held };
      releaseMore();
      later = [...new Set([...later, ...now])];
    }
    throw new StoreUnavailableError(`${command.kind}: the SKUs to lock kept changing; retry`);
  }

  async stocks(skus: readonly string[], now: number): Promise<Level[]> {
    this.#open();
    return skus.map((sku) => {
      const c = this.#levels.get(sku) ?? zeroCounters();
      const due = this.#holdsBySku.get(sku)?.dueTotals(now) ?? { qty: 0, count: 0 };
      return levelAsOf(sku, c, due);
    });
  }

  async entries(query: { after: number; sku: string | null; limit: number }): Promise<FeedEntry[]> {
    this.#open();
    const { after, sku, limit } = query;
    if (sku === null) {
      const from = Math.max(after - this.#horizon, 0);
      return this.#entries.slice(from, from + limit).map(copyEntry);
    }
    const list = this.#entriesBySku.get(sku) ?? [];
    const from = firstAbove(list, after);
    return list.slice(from, from + limit).map(copyEntry);
  }

  async request(requestId: string): Promise<StoredRequest | null> {
    this.#open();
    return this.#storedRequest(requestId);
  }

  async reservation(reservationId: string): Promise<StoredReservation | null> {
    this.#open();
    const stored = this.#reservations.get(reservationId);
    return stored === undefined ? null : structuredClone(stored);
  }

  async holds(query: { sku: string; after: HoldCursor | null; limit: number; now: number }): Promise<StoredHold[]> {
    this.#open();
    const items = this.#holdsBySku.get(query.sku)?.live(query.now, query.after, query.limit) ?? [];
    return items.map((item) => {
      const hold: StoredHold = { reservationId: item.reservationId, qty: item.qty, expiresAt: item.expiresAt };
      const reservation = this.#reservations.get(item.reservationId);
      if (reservation?.meta !== undefined) hold.meta = structuredClone(reservation.meta);
      if (reservation?.buyer !== undefined) hold.buyer = reservation.buyer;
      return hold;
    });
  }

  async buyerTotals(query: { buyer: string; skus: readonly string[]; now: number }): Promise<number[]> {
    this.#open();
    const { buyer, skus, now } = query;
    return skus.map((sku) => {
      const due = (this.#holdsBySku.get(sku)?.due(now, Number.MAX_SAFE_INTEGER) ?? [])
        .filter((h) => this.#reservations.get(h.reservationId)?.buyer === buyer)
        .reduce((sum, h) => sum + h.qty, 0);
      return (this.#buyers.get(sku)?.get(buyer) ?? 0) - due;
    });
  }

  async verifyChunk(query: { cursor: string | null; limit: number }): Promise<VerifyChunk> {
    this.#open();
    const { cursor, limit } = query;
    const all = this.#skusInOrder();
    const from = cursor === null ? 0 : firstAfter(all, cursor);
    const skus = all.slice(from, from + limit);
    const items = skus.map((sku): VerifyItem => ({
      sku, stored: { ...(this.#levels.get(sku) ?? zeroCounters()) }, ...this.#foldWithCheckpoint(sku), holds: this.#holdChecks(sku),
    }));
    return { items, cursor: skus.length < limit ? null : (skus[skus.length - 1] ?? null) };
  }

  /**
   * One compaction step. Lock-free, it runs in one turn; with `interleave` it first locks the
   * request ids, reservations and SKUs of what it plans to remove, then removes only what it
   * still plans and holds locks for, so an operation in flight never sees half of it.
   */
  async compact(query: CompactQuery): Promise<CompactStep> {
    this.#open();
    if (this.#interleave === null) return this.#compactStep(query, null);
    const keys = [...this.#walk(query, null).flatMap(entryKeys), ...this.#oldClosedIds(query, null).map((id) => `a:${id}`)];
    const release = await this.#locks.acquire(keys);
    try {
      this.#open();
      return this.#compactStep(query, new Set(keys));
    } finally {
      release();
    }
  }

  async compactedThrough(): Promise<number> {
    this.#open();
    return this.#horizon;
  }

  async levels(query: LevelsQueryOfStore): Promise<StoredLevelsPage> {
    this.#open();
    const all = this.#skusInOrder();
    const from = query.after === null ? 0 : firstAfter(all, query.after);
    const skus = all.slice(from, from + query.limit);
    const levels = (await this.stocks(skus, query.now)).filter((l) => query.availableAtMost === null || l.available <= query.availableAtMost);
    return { levels, next: skus.length < query.limit ? null : (skus[skus.length - 1] ?? null) };
  }

  #compactStep(query: CompactQuery, held: ReadonlySet<string> | null): CompactStep {
    const gone = this.#walk(query, held);
    let requests = 0;
    let reservations = 0;
    const perSku = new Map<string, number>();
    for (const entry of gone) {
      const cp = this.#checkpoints.get(entry.sku) ?? emptyCheckpoint();
      this.#checkpoints.set(entry.sku, cp);
      foldIntoCheckpoint(cp, entry);
      perSku.set(entry.sku, (perSku.get(entry.sku) ?? 0) + 1);
      this.#policyAt.delete(entry.seq);
      if (ownsRecord(entry)) requests += this.#dropRequest(entry.requestId);
      const reservation = this.#reservations.get(entry.requestId);
      if (endsReservation(entry) && reservation !== undefined && isSettled(reservation)) {
        requests += this.#dropRequest(entry.requestId);
        reservations += this.#dropReservation(entry.requestId);
      }
    }
    // The walk takes a prefix of the feed, so of each SKU's list too.
    for (const [sku, count] of perSku) this.#entriesBySku.get(sku)?.splice(0, count);
    this.#entries.splice(0, gone.length);
    const last = gone[gone.length - 1];
    if (last !== undefined) this.#horizon = last.seq;
    const closed = this.#oldClosedIds(query, held);
    for (const id of closed) requests += this.#dropRequest(id);
    this.#closedIds.splice(0, closed.length);
    return { requests, reservations, entries: gone.length, compactedThrough: this.#horizon, more: gone.length === query.limit || closed.length === query.limit };
  }

  /** The entries a step may remove: a prefix of the feed, cut at the first that must stay (or is not locked). */
  #walk(query: CompactQuery, held: ReadonlySet<string> | null): FeedEntry[] {
    const gone: FeedEntry[] = [];
    for (const entry of this.#entries) {
      if (gone.length >= query.limit || entry.at >= query.before) break;
      const id = reservationOf(entry);
      const reservation = id === null ? undefined : this.#reservations.get(id);
      if (reservation !== undefined && !isSettled(reservation)) break;
      if (held !== null && !entryKeys(entry).every((key) => held.has(key))) break;
      gone.push(entry);
    }
    return gone;
  }

  /** Closed ids a step may remove: the oldest, recorded before the cutoff (and locked). */
  #oldClosedIds(query: CompactQuery, held: ReadonlySet<string> | null): string[] {
    const old: string[] = [];
    for (const id of this.#closedIds) {
      const at = this.#requests.get(id)?.at ?? Number.NEGATIVE_INFINITY;
      if (old.length >= query.limit || at >= query.before || (held !== null && !held.has(`a:${id}`))) break;
      old.push(id);
    }
    return old;
  }

  #dropRequest(id: string): number {
    this.#reversed.delete(id);
    return this.#requests.delete(id) ? 1 : 0;
  }

  #dropReservation(id: string): number {
    this.#madeUntil.delete(id);
    this.#reversed.delete(id);
    return this.#reservations.delete(id) ? 1 : 0;
  }

  /** Every SKU with entries, sorted; rebuilt only when a new SKU has appeared since. */
  #skusInOrder(): string[] {
    if (this.#sortedSkus === null || this.#sortedSkus.length !== this.#entriesBySku.size) {
      this.#sortedSkus = [...this.#entriesBySku.keys()].sort();
    }
    return this.#sortedSkus;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #foldWithCheckpoint(sku: string): Pick<VerifyItem, 'folded' | 'foldedHolds' | 'repeated' | 'buyers'> {
    const fold = this.#fold(sku);
    return { ...fold, ...withCheckpoint(fold, this.#checkpoints.get(sku) ?? null) };
  }

  /** The SKU's entries folded: its counters, and per reservation the units they still hold. */
  #fold(sku: string): Pick<VerifyItem, 'folded' | 'foldedHolds' | 'repeated' | 'buyers'> {
    const folded = zeroCounters();
    const held = new Map<string, number>();
    const buyers = new Map<string, number>();
    // Kind, then request id: nested, so no two pairs can share a key.
    const seen = new Map<EntryKind, Map<string, number>>();
    for (const entry of this.#entriesBySku.get(sku) ?? []) {
      folded.onHand += entry.onHandDelta;
      folded.reserved += entry.reservedDelta;
      folded.version += 1;
      const holder = entry.reservationId ?? entry.requestId;
      if (entry.reservedDelta !== 0) held.set(holder, (held.get(holder) ?? 0) + entry.reservedDelta);
      if (entry.buyer !== undefined) buyers.set(entry.buyer, (buyers.get(entry.buyer) ?? 0) + entry.reservedDelta - entry.onHandDelta);
      const ofKind = seen.get(entry.kind) ?? new Map<string, number>();
      seen.set(entry.kind, ofKind.set(entry.requestId, (ofKind.get(entry.requestId) ?? 0) + 1));
    }
    const foldedHolds = [...held].filter(([, qty]) => qty !== 0).map(([reservationId, qty]) => ({ reservationId, qty }));
    const repeated = [...seen].flatMap(([kind, ids]) => [...ids].filter(([, count]) => count > 1).map(([requestId, count]) => ({ requestId, kind, count })));
    const stored = this.#buyers.get(sku) ?? new Map<string, number>();
    const buyerChecks = [...new Set([...buyers.keys(), ...stored.keys()])].sort()
      .map((buyer) => ({ buyer, stored: stored.get(buyer) ?? 0, folded: buyers.get(buyer) ?? 0 }))
      .filter((b) => b.stored !== 0 || b.folded !== 0);
    return { folded, foldedHolds, repeated, buyers: buyerChecks };
  }

  /** The SKU's live holds, each with what its reservation record says of it. */
  #holdChecks(sku: string): HoldCheck[] {
    return (this.#holdsBySku.get(sku)?.items() ?? []).map((hold) => {
      const r = this.#reservations.get(hold.reservationId);
      const record = r === undefined ? null : {
        state: r.state, expiresAt: r.expiresAt, lineQty: r.lines.find((l) => l.sku === sku)?.qty ?? null, listed: r.holds.includes(sku),
      };
      return { reservationId: hold.reservationId, qty: hold.qty, expiresAt: hold.expiresAt, record };
    });
  }

  /**
   * Applies the decision's write, if any, and returns the outcome. Fresh outcomes go to the
   * caller as they are (the store keeps its own copies); replays of a commit or release share
   * the stored outcome, so they are copied.
   */
  #carryOut(decision: Decision): StoreOutcome {
    const written = decision.write === null ? null : this.#apply(decision.write);
    const outcome = decision.outcome ?? (written as StoreOutcome);
    return outcome.ok && outcome.replayed ? copyOutcome(outcome) : outcome;
  }

  /** A request's stored outcome, rebuilt from its entries (and its reservation, for a reserve). */
  #storedRequest(requestId: string): StoredRequest | null {
    const slot = this.#requests.get(requestId);
    if (slot === undefined) return null;
    const from = slot.seq - 1 - this.#horizon;
    const entries = this.#entries.slice(from, from + slot.count).map(copyEntry);
    const levels = entries.map((e) => {
      const version = (this.#checkpoints.get(e.sku)?.version ?? 0) + firstAbove(this.#entriesBySku.get(e.sku) ?? [], e.seq - 1) + 1;
      const counters = withPolicy({ onHand: e.onHandAfter, reserved: e.reservedAfter, version }, this.#policyAt.get(e.seq) ?? DEFAULT_POLICY);
      return levelOf(e.sku, counters);
    });
    const outcome: Applied = { ok: true, replayed: false, entries, levels };
    if (slot.allocations !== undefined) outcome.allocations = structuredClone(slot.allocations);
    const stored: StoredRequest = { requestId, kind: slot.kind, fingerprint: slot.fingerprint, at: slot.at, outcome };
    const made = slot.amended ?? this.#madeBy(requestId, slot, entries);
    if (made !== null) stored.outcome = { ...outcome, reservation: structuredClone(made) } as Applied;
    return stored;
  }

  /**
   * The reservation a reserve made, as it answered then: held, with the expiry it was made
   * with and its lines as its own entries took them (an amend may have changed them since).
   */
  #madeBy(requestId: string, slot: RequestSlot, entries: Entry[]): Reservation | null {
    const reservation = slot.kind === 'reserve' ? this.#reservations.get(requestId) : undefined;
    if (reservation === undefined) return null;
    const lines = entries.map((e) => ({ sku: e.sku, qty: e.reservedDelta }));
    const made = { ...reservation, lines, state: 'held' as const, committed: null, expiresAt: this.#madeUntil.get(requestId) ?? reservation.expiresAt };
    return publicReservation(made, slot.at);
  }

  /** Writes everything synchronously, so no reader ever sees half of an operation. */
  #apply(write: Write): StoreOutcome {
    const { outcome, entries } = materialize(write, this.#horizon + this.#entries.length + 1);
    for (const entry of entries) {
      const own = copyEntry(entry);
      this.#entries.push(own);
      const list = this.#entriesBySku.get(own.sku);
      if (list === undefined) this.#entriesBySku.set(own.sku, [own]);
      else list.push(own);
    }
    let i = 0;
    for (const step of write.steps) {
      for (const change of step.changes) {
        this.#levels.set(change.sku, change.after);
        if (change.after.policy !== undefined) this.#policyAt.set((entries[i] as FeedEntry).seq, change.after.policy);
        i += 1;
      }
    }
    const request = write.request;
    if (request !== null) {
      const own = (outcome as Applied).entries;
      const slot: RequestSlot = { kind: request.kind, fingerprint: request.fingerprint, at: write.at, seq: own[0]?.seq ?? 0, count: own.length };
      if (write.allocations !== null) slot.allocations = structuredClone(write.allocations);
      if (write.amended !== null) slot.amended = publicReservation(structuredClone(write.amended), write.at);
      this.#requests.set(request.requestId, slot);
      if (request.kind === 'revoke') this.#closedIds.push(request.requestId);
    }
    if (write.reversal !== null) this.#tally(write.reversal.of, write.reversal.lines);
    for (const { sku, buyer, taken } of write.buyerTotals) this.#setBuyer(sku, buyer, taken);
    if (write.reservation !== null) this.#hold(write.reservation);
    for (const hold of write.holdsEnded) this.#endHold(hold);
    if (write.amended !== null) this.#amend(write.amended);
    for (const id of write.expired) this.#update(id, (r) => (r.state === 'held' ? { ...r, state: 'expired' } : r));
    const settled = write.settled;
    if (settled !== null) {
      const kept = copyOutcome(outcome) as Applied;
      this.#update(settled.reservationId, (r) => ({ ...r, state: settled.state, committed: settled.committed, outcome: kept }));
    }
    if (write.extended !== null) this.#extend(write.extended.id, write.extended.expiresAt);
    return outcome;
  }

  /** Moves a reservation's expiry, and its live holds in both due indexes with it. */
  #extend(id: string, expiresAt: number): void {
    const before = this.#reservations.get(id);
    if (before === undefined) return;
    if (!this.#madeUntil.has(id)) this.#madeUntil.set(id, before.expiresAt);
    for (const sku of before.holds) {
      // Stryker disable next-line OptionalChaining: a hold's SKU is always one of its reservation's lines
      const old: HoldItem = { expiresAt: before.expiresAt, reservationId: id, sku, qty: before.lines.find((l) => l.sku === sku)?.qty ?? 0 };
      const moved: HoldItem = { ...old, expiresAt };
      this.#holds.remove(old);
      this.#holds.add(moved);
      this.#holdsBySku.get(sku)?.remove(old);
      this.#holdsBySku.get(sku)?.add(moved);
    }
    this.#reservations.set(id, { ...before, expiresAt });
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

  /** An amended reservation: its record, and a hold of each line at its new quantity (dropped lines ended already). */
  #amend(reservation: StoredReservation): void {
    for (const { sku } of reservation.lines) {
      const old: HoldItem = { expiresAt: reservation.expiresAt, reservationId: reservation.id, sku, qty: 0 };
      this.#holds.remove(old);
      this.#holdsBySku.get(sku)?.remove(old);
    }
    this.#hold(reservation);
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

  #setBuyer(sku: string, buyer: string, taken: number): void {
    let bySku = this.#buyers.get(sku);
    if (bySku === undefined) this.#buyers.set(sku, (bySku = new Map()));
    if (taken === 0) bySku.delete(buyer);
    else bySku.set(buyer, taken);
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
        const original = this.#storedRequest(command.of);
        if (original === null) return [];
        return original.kind === 'reserve' ? (this.#reservations.get(command.of)?.lines ?? []).map((l) => l.sku) : original.outcome.entries.map((e) => e.sku);
      }
      case 'commit':
      case 'release':
      case 'extend':
        return (this.#reservations.get(command.reservationId)?.lines ?? []).map((l) => l.sku);
      case 'amend':
        return [...namedSkus(command), ...(this.#reservations.get(command.reservationId)?.lines ?? []).map((l) => l.sku)];
      case 'sweep':
        return this.#holds.due(command.at, command.limit + 1).map((h) => h.sku);
      default:
        return [];
    }
  }

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError('the memory store is closed');
  }
}

/** Rounds of re-locking before an operation gives up as `STORE_UNAVAILABLE` (the ledger retries). */
const LATER_LOCK_ATTEMPTS_MAX = 8;

/** What the store keeps of an applied request: its own entries are `count` entries from `seq`. */
interface RequestSlot {
  kind: OperationKind;
  fingerprint: string;
  at: number;
  seq: number;
  count: number;
  /** Which SKUs served each line, for a deduct, reserve or amend with an `anyOf` line. */
  allocations?: Allocation[];
  /** An amend's answer: the reservation as amended. */
  amended?: Reservation;
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
      return [`a:${command.requestId}`, ...command.lines.map((l) => `c:${l.sku}`)];
    case 'policy':
      return [`a:${command.requestId}`, `c:${command.sku}`];
    case 'revoke':
      return [`a:${command.requestId}`];
    case 'amend':
      // Its SKUs are locked later, with the reservation's, in one sorted acquire: locks are not
      // re-entrant, and an amend often names a SKU its reservation holds.
      return [`a:${command.requestId}`, `a:${command.reservationId}`];
    case 'deduct':
    case 'reserve':
      return [`a:${command.requestId}`, ...namedSkus(command).map((sku) => `c:${sku}`)];
    case 'reverse':
      return [`a:${command.requestId}`, `a:${command.of}`, ...(command.lines ?? []).map((l) => `c:${l.sku}`)];
    case 'commit':
    case 'release':
    case 'extend':
      return [`a:${command.reservationId}`];
    case 'sweep':
      return [];
  }
}

/** The lock keys of what removing an entry touches: its request id, its reservation, its SKU. */
function entryKeys(entry: Entry): string[] {
  const reservation = reservationOf(entry);
  return [`a:${entry.requestId}`, `c:${entry.sku}`, ...(reservation === null ? [] : [`a:${reservation}`])];
}

/** Index of the first string above `after` in a sorted list. */
function firstAfter(list: string[], after: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as string) <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first entry with `seq > after` in a list ascending by seq. */
function firstAbove(list: FeedEntry[], after: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as FeedEntry).seq <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A literal copy (not a spread: spreads of these shapes are several times slower here). */
function copyEntry<E extends Entry>(e: E): E {
  const copy = {
    seq: e.seq, requestId: e.requestId, kind: e.kind, sku: e.sku, onHandDelta: e.onHandDelta, reservedDelta: e.reservedDelta,
    onHandAfter: e.onHandAfter, reservedAfter: e.reservedAfter, at: e.at,
  } as E;
  if (e.meta !== undefined) copy.meta = e.meta;
  if (e.policy !== undefined) copy.policy = { ...e.policy };
  if (e.buyer !== undefined) copy.buyer = e.buyer;
  if (e.reservationId !== undefined) copy.reservationId = e.reservationId;
  return copy;
}

function copyLevel(l: Level): Level {
  const copy: Level = { sku: l.sku, onHand: l.onHand, reserved: l.reserved, available: l.available, version: l.version };
  if (l.policy !== undefined) copy.policy = { ...l.policy };
  return copy;
}

/** A copy the caller may mutate without touching the store (meta is frozen at validation). */
function copyOutcome(outcome: StoreOutcome): StoreOutcome {
  if (!outcome.ok) return { ...outcome };
  const copy = { ...outcome, entries: outcome.entries.map(copyEntry), levels: outcome.levels.map(copyLevel) };
  if ('reservation' in copy) copy.reservation = structuredClone(copy.reservation);
  if ('allocations' in copy && copy.allocations !== undefined) copy.allocations = structuredClone(copy.allocations);
  return copy;
}
