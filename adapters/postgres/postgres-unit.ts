import { LIMITS, StoreUnavailableError } from '../../src/index.js';
import type { Applied, Counters, Entry } from '../../src/index.js';
import { compareCodePoints, decide, materialize, namedSkus, policyOf, publicReservation } from '../../src/store-kit.js';
import type { Command, StoredReservation, StoreOutcome, Write } from '../../src/store-kit.js';
import type { Connection } from './postgres-client.js';
import { decodeKey, encodeKey, int, str, type LevelJson } from './postgres-codec.js';
import { constraintOf, sqlState } from './postgres-errors.js';
import type { Statements } from './postgres-sql.js';
import { sequenceBeforeLastWrite, seqOf } from './postgres-sequencer.js';
import { Cache, EntryRefs, Missing, type HoldItem, type LoadJson, type Need } from './postgres-view.js';

/** One command's end: its outcome, or the error it alone failed with. */
export type Finished = { ok: true; outcome: StoreOutcome } | { ok: false; error: unknown };

/** What one unit of commands did inside its transaction. */
export interface UnitResult {
  finished: Finished[];
  /** Ops of the flushes written (empty: nothing was written, the transaction may roll back). */
  ops: number[];
  refs: EntryRefs;
  /** Set when a sweep wrote: what its seal checks (see `sealSweep`). */
  sweep: SweepMark | null;
}

/** What a sweep decided on: its time, whether it left more due holds, and the last hold it took. */
export interface SweepMark {
  at: number;
  more: boolean;
  last: HoldItem | null;
}

/**
 * A concurrent transaction recorded one of the unit's request ids first (a unique violation
 * on the request table): the whole unit is undone and decided again, and then reads as a
 * replay or a conflict.
 */
export class TwinWon extends Error {
  constructor(cause: unknown) {
    super('PostgreSQL store: a concurrent twin recorded the request id first', { cause });
  }
}

/** Due holds read per SKU: one more than an operation may expire, to know whether that is all. */
const HOLDS_FETCH = LIMITS.expiriesPerSkuMax + 1;

/** Rounds of load-then-decide a unit may take: each round settles at least one thing decide asked for. */
const roundsMax = (commands: number): number => 4 + 4 * commands;

/**
 * The decided writes since the last flush, as the flush statement takes them. `view` is the
 * unit's view, read as it stood before each write (`add` comes before the view applies it).
 */
class Pending {
  readonly #view: Cache;
  readonly e: Array<Record<string, unknown>> = [];
  readonly l = new Map<string, Counters>();
  readonly q: Array<Record<string, unknown>> = [];
  readonly t = new Map<string, Map<string, number>>();
  readonly n = new Map<string, {
    id: string; st: string; l: string; xp: number; fx: number | null; c: number; cm: string | null; m: string | null; b: string | null;
  }>();
  readonly hn = new Map<string, Map<string, { q: number; xp: number }>>();
  readonly hd: Array<{ r: string; s: string }> = [];
  /** Updates of stored reservations: a new state (null: kept), what a commit sold, a new expiry, new lines (null: kept). */
  readonly u = new Map<string, { id: string; st: string | null; cm: string | null; xp: number | null; l: string | null }>();
  /** Stored holds whose expiry moves (an extend), by reservation then SKU. */
  readonly xh = new Map<string, Map<string, number>>();
  /**
   * Holds of stored reservations an amend sets (quantity and expiry), by reservation then SKU:
   * upserted. `fresh`: no row before this flush (an amend of this flush added the SKU).
   */
  readonly ah = new Map<string, Map<string, { q: number; xp: number; fresh: boolean }>>();
  /** Buyer totals after this flush's writes, by SKU then buyer (escaped): the last write of a pair wins. */
  readonly bt = new Map<string, Map<string, number>>();

  constructor(view: Cache) {
    this.#view = view;
  }

  get empty(): boolean {
    return this.e.length === 0 && this.q.length === 0 && this.n.size === 0 && this.u.size === 0 && this.hd.length === 0;
  }

  add(write: Write, entries: Entry[], flush: number, refs: EntryRefs): void {
    let i = 0;
    for (const step of write.steps) {
      for (const change of step.changes) {
        const entry = entries[i] as Entry;
        i += 1;
        const pos = this.e.length;
        // Every entry keeps the policy after it (not only policy entries): replays rebuild levels from entries.
        const { backorderMax: bm, lowStockAt: ls, buyerMax: bx } = policyOf(change.after);
        this.e.push({
          pos, r: encodeKey(entry.requestId), k: entry.kind, s: encodeKey(entry.sku), dh: entry.onHandDelta, dr: entry.reservedDelta,
          ah: entry.onHandAfter, ar: entry.reservedAfter, v: change.after.version, at: entry.at, m: entry.meta === undefined ? null : JSON.stringify(entry.meta),
          bm, ls, bx, b: entry.buyer === undefined ? null : encodeKey(entry.buyer),
          vr: entry.reservationId === undefined ? null : encodeKey(entry.reservationId),
        });
        refs.made(entry, flush, pos);
        this.l.set(encodeKey(change.sku), change.after);
      }
    }
    if (write.request !== null) {
      const { requestId, kind, fingerprint } = write.request;
      // Which SKUs served each line is not in the entries: kept with the request, for its replays.
      const a = write.allocations === null ? null : JSON.stringify(write.allocations);
      // So is the reservation as an amend left it: later amends and commits change the record.
      const am = write.amended === null ? null : JSON.stringify(publicReservation(write.amended, write.at));
      this.q.push({ id: encodeKey(requestId), k: kind, f: fingerprint, at: write.at, a, am });
    }
    if (write.reversal !== null) this.#tally(write.reversal.of, write.reversal.lines);
    if (write.reservation !== null) this.#reservation(write.reservation);
    for (const hold of write.holdsEnded) this.#endHold(encodeKey(hold.reservationId), encodeKey(hold.sku));
    for (const id of write.expired) this.#state(encodeKey(id), 'expired', null);
    if (write.settled !== null) {
      const committed = write.settled.committed === null ? null : JSON.stringify(write.settled.committed);
      this.#state(encodeKey(write.settled.reservationId), write.settled.state, committed);
    }
    if (write.extended !== null) this.#extend(write.extended);
    if (write.amended !== null) this.#amend(write.amended);
    // The record changes, maybe no level: see #touch.
    for (const r of [write.extended, write.amended]) if (r !== null) this.#touch(r);
    for (const { sku, buyer, taken } of write.buyerTotals) {
      const key = encodeKey(sku);
      let bySku = this.bt.get(key);
      if (bySku === undefined) this.bt.set(key, (bySku = new Map()));
      bySku.set(encodeKey(buyer), taken);
    }
  }

  /**
   * An extend: a reservation made in this flush is inserted with the new expiry (and the first
   * one kept); a stored one is updated, row by row, in the same statement as anything else
   * this flush does to it (one statement cannot update a row twice).
   */
  #extend(r: NonNullable<Write['extended']>): void {
    const id = encodeKey(r.id);
    const created = this.n.get(id);
    if (created !== undefined) {
      created.fx ??= created.xp;
      created.xp = r.expiresAt;
      for (const hold of this.hn.get(id)?.values() ?? []) hold.xp = r.expiresAt;
      return;
    }
    const known = this.u.get(id);
    this.u.set(id, { id, st: known?.st ?? null, cm: known?.cm ?? null, xp: r.expiresAt, l: known?.l ?? null });
    let holds = this.xh.get(id);
    if (holds === undefined) this.xh.set(id, (holds = new Map()));
    for (const sku of r.holds) {
      // A hold an amend of this flush upserts moves with that upsert: one statement writes a row once.
      const amended = this.ah.get(id)?.get(encodeKey(sku));
      if (amended !== undefined) amended.xp = r.expiresAt;
      else holds.set(encodeKey(sku), r.expiresAt);
    }
  }

  /**
   * An amend: a reservation made in this flush is inserted as amended, holds and all; a stored
   * one gets its new lines, and each line's hold is upserted at its quantity (a new SKU's at
   * the reservation's expiry). Dropped SKUs came through `holdsEnded` already.
   */
  #amend(r: StoredReservation): void {
    const id = encodeKey(r.id);
    const lines = JSON.stringify(r.lines);
    const created = this.n.get(id);
    if (created !== undefined) {
      created.l = lines;
      this.hn.set(id, new Map(r.lines.map((line) => [encodeKey(line.sku), { q: line.qty, xp: r.expiresAt }])));
      return;
    }
    const known = this.u.get(id);
    this.u.set(id, { id, st: known?.st ?? null, cm: known?.cm ?? null, xp: known?.xp ?? null, l: lines });
    let holds = this.ah.get(id);
    if (holds === undefined) this.ah.set(id, (holds = new Map()));
    const before = this.#view.reservations.get(r.id)?.holds ?? [];
    for (const line of r.lines) {
      const s = encodeKey(line.sku);
      // The upsert sets the expiry too, so an extend of this flush need not update the row again.
      this.xh.get(id)?.delete(s);
      // A row deleted earlier in this flush (a hold dropped, then taken again) is updated instead.
      const deleted = this.hd.findIndex((h) => h.r === id && h.s === s);
      if (deleted >= 0) this.hd.splice(deleted, 1);
      const fresh = holds.get(s)?.fresh ?? (deleted < 0 && !before.includes(line.sku));
      holds.set(s, { q: line.qty, xp: r.expiresAt, fresh });
    }
  }

  /**
   * An extend or an amend changes the reservation record but maybe no level: its level rows are
   * written anyway (unchanged), so a transaction that read the record before this one committed
   * and then waited for one of those locks sees the row changed (see the lock-and-load's
   * staleness check) and reads the record again. Every SKU it held or holds is locked here.
   */
  #touch(r: StoredReservation): void {
    const before = this.#view.reservations.get(r.id)?.lines ?? [];
    for (const { sku } of [...before, ...r.lines]) {
      const key = encodeKey(sku);
      const counters = this.#view.levels.get(sku);
      if (!this.l.has(key) && counters !== undefined) this.l.set(key, counters);
    }
  }

  #tally(of: string, lines: ReadonlyArray<{ sku: string; qty: number }>): void {
    const key = encodeKey(of);
    let bySku = this.t.get(key);
    if (bySku === undefined) this.t.set(key, (bySku = new Map()));
    for (const line of lines) bySku.set(encodeKey(line.sku), (bySku.get(encodeKey(line.sku)) ?? 0) + line.qty);
  }

  #reservation(r: NonNullable<Write['reservation']>): void {
    const id = encodeKey(r.id);
    this.n.set(id, {
      id, st: r.state, l: JSON.stringify(r.lines), xp: r.expiresAt, fx: null, c: r.createdAt, cm: null, m: r.meta === undefined ? null : JSON.stringify(r.meta),
      b: r.buyer === undefined ? null : encodeKey(r.buyer),
    });
    const holds = new Map(r.lines.map((line) => [encodeKey(line.sku), { q: line.qty, xp: r.expiresAt }]));
    this.hn.set(id, holds);
  }

  /** A hold made in this flush and ended in it is written not at all: one statement cannot insert and delete a row. */
  #endHold(r: string, s: string): void {
    if (this.hn.get(r)?.delete(s) === true) return;
    // Deleted in this flush: not also updated by it.
    this.xh.get(r)?.delete(s);
    const amended = this.ah.get(r)?.get(s);
    this.ah.get(r)?.delete(s);
    if (amended?.fresh === true) return;
    this.hd.push({ r, s });
  }

  #state(id: string, state: string, committed: string | null): void {
    const created = this.n.get(id);
    if (created !== undefined) {
      if (state !== 'expired' || created.st === 'held') created.st = state;
      if (committed !== null) created.cm = committed;
      return;
    }
    const known = this.u.get(id);
    if (state === 'expired' && known !== undefined && known.st !== null) return;
    this.u.set(id, { id, st: state, cm: committed ?? known?.cm ?? null, xp: known?.xp ?? null, l: known?.l ?? null });
  }

  payload(last: number | null): string {
    if (last !== null) for (const e of this.e) e['q'] = last + (e['pos'] as number) + 1;
    const t = [...this.t].flatMap(([o, bySku]) => [...bySku].map(([s, q]) => ({ o, s, q })));
    const hn = [...this.hn].flatMap(([r, holds]) => [...holds].map(([s, h]) => ({ r, s, q: h.q, xp: h.xp })));
    const l = [...this.l].map(([s, c]) => levelRow(s, c));
    const xh = [...this.xh].flatMap(([r, holds]) => [...holds].map(([s, xp]) => ({ r, s, xp })));
    const ah = [...this.ah].flatMap(([r, holds]) => [...holds].map(([s, h]) => ({ r, s, q: h.q, xp: h.xp })));
    // Upserted while above 0, deleted at 0 (reads take a missing row as 0): each pair once, so one statement touches its row once.
    const bu = this.buyerRows().filter((x) => x.q > 0);
    const bd = this.buyerRows().filter((x) => x.q === 0).map(({ s, b }) => ({ s, b }));
    return JSON.stringify({ e: this.e, l, q: this.q, t, n: [...this.n.values()], hn, hd: this.hd, u: [...this.u.values()], xh, ah, bu, bd });
  }

  buyerRows(): Array<{ s: string; b: string; q: number }> {
    return [...this.bt].flatMap(([s, bySku]) => [...bySku].map(([b, q]) => ({ s, b, q })));
  }
}

/** A level row as the flush writes it: counters and the whole policy (defaults included). */
function levelRow(s: string, c: Counters): Record<string, unknown> {
  const { backorderMax: bm, lowStockAt: ls, buyerMax: bx } = policyOf(c);
  return { s, h: c.onHand, r: c.reserved, v: c.version, bm, ls, bx };
}

/** What one lock-and-load statement loads besides the locks (decoded keys). */
interface Load {
  requests: string[];
  reservations: string[];
  tallies: string[];
  holds: string[];
  anywhere: number;
  buyers: Array<{ sku: string; buyer: string }>;
}

/** What one round asks the lock-and-load statement for (decoded keys). */
interface Asks {
  lock: Set<string>;
  requests: Set<string>;
  reservations: Set<string>;
  tallies: Set<string>;
  anywhere: number;
  /** Buyer totals to load: SKU -> buyers. */
  buyers: Map<string, Set<string>>;
  planReservations: Set<string>;
  planOrigins: Set<string>;
}

function addPair(pairs: Map<string, Set<string>>, sku: string, buyer: string): void {
  const buyers = pairs.get(sku);
  if (buyers === undefined) pairs.set(sku, new Set([buyer]));
  else buyers.add(buyer);
}

/**
 * Runs commands in order inside the transaction the caller opened on `connection` (the
 * store's own, or a savepoint of the app's): each is decided by the core's `decide()` against
 * a view of what was loaded plus what the commands before it decided, and the writes are
 * flushed in as few statements as the commands allow.
 *
 * @example
 * ```ts
 * const unit = await runUnit(connection, statements('stock_ledger'), [command], { numberOwn: true });
 * ```
 */
export async function runUnit(connection: Connection, sql: Statements, commands: readonly Command[], options: UnitOptions): Promise<UnitResult> {
  return new Unit(connection, sql, commands, options).run();
}

/** How a unit runs. */
export interface UnitOptions {
  /**
   * In a store-owned transaction: number the entries as the last write inserts them, when the
   * sequencer lock is free (never inside the app's transaction: it would hold the lock until
   * the app commits).
   */
  numberOwn: boolean;
}

class Unit {
  readonly #connection: Connection;
  readonly #sql: Statements;
  readonly #commands: readonly Command[];
  readonly #options: UnitOptions;
  readonly #refs = new EntryRefs();
  readonly #cache: Cache;
  readonly #finished: Finished[] = [];
  readonly #ops: number[] = [];
  /** Immutable facts read before locking: a reservation's lines, an original request's SKUs. */
  readonly #plan = new Map<string, string[]>();
  readonly #extra = {
    lock: new Set<string>(), requests: new Set<string>(), reservations: new Set<string>(), tallies: new Set<string>(), buyers: new Map<string, Set<string>>(),
  };
  #pending: Pending;
  #next = 0;
  #sweep: SweepMark | null = null;

  constructor(connection: Connection, sql: Statements, commands: readonly Command[], options: UnitOptions) {
    this.#connection = connection;
    this.#sql = sql;
    this.#commands = commands;
    this.#options = options;
    const horizon = Math.max(...commands.map((c) => c.at));
    this.#cache = new Cache(this.#refs, horizon, HOLDS_FETCH);
    this.#pending = new Pending(this.#cache);
  }

  async run(): Promise<UnitResult> {
    for (let round = 1; this.#next < this.#commands.length; round += 1) {
      if (round > roundsMax(this.#commands.length)) {
        throw new StoreUnavailableError('PostgreSQL: the state an operation reads kept changing while it was loaded; retry');
      }
      await this.#prepare();
      const need = this.#decideFrom();
      if (need === null) break;
      await this.#flush(null);
      this.#satisfy(need);
    }
    await this.#flush(await this.#numberBeforeLastWrite());
    return { finished: this.#finished, ops: this.#ops, refs: this.#refs, sweep: this.#ops.length > 0 ? this.#sweep : null };
  }

  /**
   * Right before the last write of a store-owned transaction (every row lock it needs is held
   * by then, so the sequencer lock is never held while waiting for one): the highest seq, if
   * the sequencer lock was free; null otherwise, or when nothing was written.
   */
  async #numberBeforeLastWrite(): Promise<number | null> {
    if (!this.#options.numberOwn || (this.#pending.empty && this.#ops.length === 0)) return null;
    const numbered = await sequenceBeforeLastWrite(this.#connection, this.#sql, this.#refs.unnumberedOps());
    if (numbered === null) return null;
    this.#refs.number((ref) => seqOf(numbered.seqs, ref));
    return numbered.last;
  }

  /** Decides commands from the next one on; stops at the first that needs what is not loaded. */
  #decideFrom(): Need | null {
    for (; this.#next < this.#commands.length; this.#next += 1) {
      const command = this.#commands[this.#next] as Command;
      let decision: ReturnType<typeof decide>;
      try {
        decision = decide(command, this.#cache);
      } catch (error) {
        if (error instanceof Missing) return error.need;
        // A throw is this command's alone: nothing of it was applied to the view.
        this.#finished[this.#next] = { ok: false, error };
        continue;
      }
      if (command.kind === 'sweep' && decision.write !== null && decision.write.sweep !== null) {
        this.#sweep = { at: command.at, more: decision.write.sweep.more, last: this.#cache.lastDueAnywhere(command.at, command.limit) };
      }
      this.#finished[this.#next] = { ok: true, outcome: this.#take(decision) };
    }
    return null;
  }

  #take(decision: ReturnType<typeof decide>): StoreOutcome {
    if (decision.write === null) return decision.outcome as StoreOutcome;
    const { outcome, entries } = materialize(decision.write, 1);
    // Numbered by the sequencer, as the last write inserts them or after the commit.
    for (const entry of entries) (entry as Entry).seq = null;
    this.#pending.add(decision.write, entries, this.#ops.length, this.#refs);
    this.#cache.apply(decision.write, outcome as Applied);
    return decision.outcome ?? outcome;
  }

  /** Remembers what decide asked for, for the next round to load. */
  #satisfy(need: Need): void {
    switch (need.kind) {
      case 'lock':
        for (const sku of need.skus) this.#extra.lock.add(sku);
        // What other transactions may have changed before the new locks was read unlocked.
        this.#cache.forgetUnlocked();
        return;
      case 'request':
        this.#extra.requests.add(need.id);
        return;
      case 'reservation':
        this.#extra.reservations.add(need.id);
        return;
      case 'tally':
        this.#extra.tallies.add(need.of);
        this.#cache.tallies.delete(need.of);
        return;
      case 'holds':
        this.#cache.holds.delete(need.sku);
        return;
      case 'anywhere':
        this.#cache.anywhere = null;
        return;
      case 'buyer':
        addPair(this.#extra.buyers, need.sku, need.buyer);
        return;
    }
  }

  /** What the remaining commands will read. */
  #asks(): Asks {
    const asks: Asks = {
      lock: new Set(this.#extra.lock), requests: new Set(this.#extra.requests), reservations: new Set(this.#extra.reservations),
      tallies: new Set(this.#extra.tallies), anywhere: 0, buyers: new Map([...this.#extra.buyers].map(([sku, buyers]) => [sku, new Set(buyers)])),
      planReservations: new Set(), planOrigins: new Set(),
    };
    for (const command of this.#commands.slice(this.#next)) addAsks(command, asks, this.#plan, this.#cache);
    return asks;
  }

  async #prepare(): Promise<void> {
    const asks = this.#asks();
    // Once the plan knows a reservation's lines and buyer, the commands that wait on it ask for their locks and totals.
    if (await this.#planLocks(asks)) for (const command of this.#commands.slice(this.#next)) addAsks(command, asks, this.#plan, this.#cache);
    const cache = this.#cache;
    const lock = [...asks.lock].filter((sku) => !cache.levels.has(sku)).sort(compareCodePoints);
    const load = {
      requests: [...asks.requests].filter((id) => !cache.requests.has(id)),
      reservations: [...asks.reservations].filter((id) => !cache.reservations.has(id)),
      tallies: [...asks.tallies].filter((of) => !cache.tallies.has(of)),
      holds: [...cache.levels].filter(([sku, c]) => c.reserved > 0 && !cache.holds.has(sku)).map(([sku]) => sku),
      anywhere: asks.anywhere > 0 && cache.anywhere === null ? asks.anywhere : 0,
      buyers: [...asks.buyers].flatMap(([sku, buyers]) => [...buyers].filter((buyer) => !cache.knowsBuyer(sku, buyer)).map((buyer) => ({ sku, buyer }))),
    };
    // A request's reservation (a reserve replays with it) and an original's (a reverse of a commit) come along.
    load.reservations.push(...load.requests.filter((id) => !cache.reservations.has(id) && !load.reservations.includes(id)));
    const loads = load.requests.length + load.reservations.length + load.tallies.length + load.holds.length + load.buyers.length;
    if (lock.length === 0 && loads === 0 && load.anywhere === 0) {
      cache.noHolds(cache.levels.keys());
      return;
    }
    let data = await this.#lockAndLoad(lock, load);
    const locked = new Map(data.l.map((row) => [decodeKey(row.s), row]));
    cache.locked(data.l);
    const absent = lock.filter((sku) => !locked.has(sku));
    // A row changed while this waited for its lock: a new version, or (an extend or amend) the same counters rewritten.
    const changed = (s: { s: string; v: number; x: string }): boolean => {
      const row = locked.get(decodeKey(s.s));
      return int(row?.v, 'version') !== int(s.v, 'version') || row?.x !== s.x;
    };
    const stale = data.snap.length !== data.l.length || data.snap.some(changed);
    if (absent.length > 0) await this.#ensure(absent);
    if (absent.length > 0 || stale) {
      // The load's snapshot was taken before the locks were granted: read again, now that they are held.
      const held = lock.filter((sku) => (cache.levels.get(sku)?.reserved ?? 0) > 0);
      data = await this.#lockAndLoad([], { ...load, holds: [...load.holds, ...held] });
    }
    cache.absorb(data, { requests: load.requests, reservations: load.reservations, tallies: load.tallies, anywhere: load.anywhere });
    cache.noHolds(cache.levels.keys());
    for (const id of load.requests) this.#extra.requests.delete(id);
    for (const id of load.reservations) this.#extra.reservations.delete(id);
    for (const of of load.tallies) this.#extra.tallies.delete(of);
    for (const { sku, buyer } of load.buyers) {
      // Asked, with its SKU locked by now: loaded. (A SKU still unlocked asks for its lock first.)
      if (cache.knowsBuyer(sku, buyer)) this.#extra.buyers.get(sku)?.delete(buyer);
    }
  }

  /**
   * Reads, unlocked, what says which SKUs commits, releases, extends, amends, reverses and sweeps
   * touch: a reservation's lines (an amend may change them later: decide then asks for the
   * locks it lacks) and buyer, an original's SKUs, due holds anywhere. True when it read any.
   */
  async #planLocks(asks: Asks): Promise<boolean> {
    const reservations = [...asks.planReservations].filter((id) => !this.#plan.has(`v:${id}`));
    const origins = [...asks.planOrigins].filter((id) => !this.#plan.has(`o:${id}`));
    const anywhere = asks.anywhere > 0 && this.#cache.anywhere === null ? asks.anywhere : 0;
    if (reservations.length + origins.length === 0 && anywhere === 0) return false;
    const rows = await this.#connection.query(this.#sql.plan, [
      JSON.stringify(reservations.map(encodeKey)), JSON.stringify(origins.map(encodeKey)), this.#cache.horizon, anywhere,
    ]);
    const data = JSON.parse(str(rows[0]?.['j'], 'plan')) as {
      v: Array<{ id: string; l: string; b: string | null }>; o: Array<{ id: string; s: string[] }>; a: string[];
    };
    for (const id of reservations) this.#plan.set(`v:${id}`, []).set(`b:${id}`, []);
    for (const id of origins) this.#plan.set(`o:${id}`, []);
    for (const v of data.v) {
      this.#plan.set(`v:${decodeKey(v.id)}`, (JSON.parse(v.l) as Array<{ sku: string }>).map((l) => l.sku));
      // Its buyer (none: an empty list): an amend loads that buyer's totals of every SKU it touches.
      this.#plan.set(`b:${decodeKey(v.id)}`, v.b === null ? [] : [decodeKey(v.b)]);
    }
    for (const o of data.o) this.#plan.set(`o:${decodeKey(o.id)}`, o.s.map(decodeKey));
    // A hint only: the sweep reads its holds again once their SKUs are locked.
    for (const sku of data.a) asks.lock.add(decodeKey(sku));
    return true;
  }

  async #lockAndLoad(lock: string[], load: Load): Promise<
    LoadJson & { l: LevelJson[]; snap: Array<{ s: string; v: number; x: string }> }
  > {
    const rows = await this.#connection.query(this.#sql.lockAndLoad, [
      JSON.stringify(lock.map(encodeKey)), JSON.stringify(load.requests.map(encodeKey)), JSON.stringify(load.reservations.map(encodeKey)),
      JSON.stringify(load.holds.map(encodeKey)), JSON.stringify(load.tallies.map(encodeKey)), this.#cache.horizon, HOLDS_FETCH, load.anywhere,
      JSON.stringify(load.buyers.map(({ sku, buyer }) => ({ s: encodeKey(sku), b: encodeKey(buyer) }))),
    ]);
    return JSON.parse(str(rows[0]?.['j'], 'load')) as LoadJson & { l: LevelJson[]; snap: Array<{ s: string; v: number; x: string }> };
  }

  /** Creates the level rows of SKUs never seen (locking every row named, in one sorted statement). */
  async #ensure(skus: string[]): Promise<void> {
    const rows = await this.#connection.query(this.#sql.ensureLevels, [JSON.stringify(skus.map(encodeKey))]);
    this.#cache.locked(rows.map((row) => ({
      s: str(row['sku'], 'sku'), h: int(row['on_hand'], 'on_hand'), r: int(row['reserved'], 'reserved'), v: int(row['version'], 'version'),
      bm: int(row['backorder_max'], 'backorder_max'), ls: row['low_stock_at'] === null ? null : int(row['low_stock_at'], 'low_stock_at'),
      bx: row['buyer_max'] === null ? null : int(row['buyer_max'], 'buyer_max'),
    })));
  }

  /** Writes what was decided since the last flush; with `last`, its entries are numbered from `last` + 1. */
  async #flush(last: number | null): Promise<void> {
    const pending = this.#pending;
    if (pending.empty) return;
    this.#pending = new Pending(this.#cache);
    let rows: readonly Record<string, unknown>[];
    try {
      rows = await this.#connection.query(this.#sql.flush, [pending.payload(last)]);
    } catch (error) {
      if (sqlState(error) === '23505' && constraintOf(error) === 'requests_pkey') throw new TwinWon(error);
      throw error;
    }
    const row = rows[0] ?? {};
    const expected = {
      e: pending.e.length, l: pending.l.size, d: pending.hd.length, q: pending.q.length, bu: pending.buyerRows().filter((x) => x.q > 0).length,
      ah: [...pending.ah.values()].reduce((n, holds) => n + holds.size, 0),
    };
    for (const [key, want] of Object.entries(expected)) {
      if (int(row[key], key) !== want) {
        throw new StoreUnavailableError(`PostgreSQL store: a flush wrote ${String(row[key])} rows of ${key}, expected ${want}`);
      }
    }
    const op = int(row['op'], 'op');
    this.#refs.flushed(this.#ops.length, op);
    if (last !== null) this.#refs.numberedAt(this.#ops.length, last);
    this.#ops.push(op);
  }
}

/** Adds what one command reads to the asks (`view`: what the unit knows already). */
function addAsks(command: Command, asks: Asks, plan: Map<string, string[]>, view: Cache): void {
  switch (command.kind) {
    case 'restock':
    case 'adjust':
      // Every line's SKU (a purchase order or a stocktake names many).
      for (const line of command.lines) asks.lock.add(line.sku);
      break;
    case 'policy':
      asks.lock.add(command.sku);
      break;
    case 'deduct':
    case 'reserve':
      // Every SKU it names, alternatives included: which of them it takes is decided only once they are read.
      for (const sku of namedSkus(command)) {
        asks.lock.add(sku);
        // Its buyer's totals of its SKUs, loaded with their locks (a SKU without a buyerMax reads them too: the step moves them).
        if (command.buyer !== null) addPair(asks.buyers, sku, command.buyer);
      }
      break;
    case 'reverse': {
      asks.requests.add(command.of);
      asks.tallies.add(command.of);
      if (command.lines !== null) for (const line of command.lines) asks.lock.add(line.sku);
      else lockPlanned(plan.get(`o:${command.of}`), asks, () => asks.planOrigins.add(command.of));
      break;
    }
    case 'commit':
    case 'release':
    case 'extend':
      asks.reservations.add(command.reservationId);
      lockPlanned(plan.get(`v:${command.reservationId}`), asks, () => asks.planReservations.add(command.reservationId));
      return;
    case 'amend':
      addAmendAsks(command, asks, plan, view);
      break;
    case 'sweep':
      asks.anywhere = Math.max(asks.anywhere, command.limit + 1);
      return;
    case 'revoke':
      break;
  }
  asks.requests.add(command.requestId);
}

/**
 * An amend locks what its reservation holds (planned, like a commit's) and every SKU it names,
 * and loads the reservation's buyer's totals of all of them (the step checks and moves them).
 * The buyer is planned too, or known to the view when a reserve of this unit made the hold.
 */
function addAmendAsks(command: Extract<Command, { kind: 'amend' }>, asks: Asks, plan: Map<string, string[]>, view: Cache): void {
  const id = command.reservationId;
  asks.reservations.add(id);
  const held = plan.get(`v:${id}`);
  lockPlanned(held, asks, () => asks.planReservations.add(id));
  const named = namedSkus(command);
  for (const sku of named) asks.lock.add(sku);
  const known = view.reservations.get(id)?.buyer;
  const buyers = known === undefined ? (plan.get(`b:${id}`) ?? []) : [known];
  for (const buyer of buyers) for (const sku of [...(held ?? []), ...named]) addPair(asks.buyers, sku, buyer);
}

function lockPlanned(skus: string[] | undefined, asks: Asks, plan: () => void): void {
  if (skus === undefined) plan();
  else for (const sku of skus) asks.lock.add(sku);
}
