/**
 * The memory baseline: the least code that still deducts safely and idempotently in one
 * process. A request-id map (holding the outcome, so a replay can return it), a level map and
 * an append-only entry array; the whole check-and-write runs without an await, so it is atomic
 * on the event loop. No validation, no fingerprint, no copies, no retry: that is what the
 * ledger adds, and what the benchmark puts a price on.
 *
 * Reservations: the level map holds the units free to take (on hand minus held), so a deduct
 * needs no other read; a per-SKU reserved map and a reservation map (state, expiry, lines) hold
 * the rest. A reserve takes units from free onto reserved, a commit takes them off reserved
 * (sold), a release gives them back to free; commit and release are idempotent by the
 * reservation's state and refuse a held reservation past its expiry. Nothing gives an expired
 * hold back (a sweep would; the bench's holds never expire): safe, it only sells less.
 */
import type { RawLine } from './contenders.js';

export interface RawEntry {
  seq: number;
  requestId: string;
  sku: string;
  /** Change of on hand. */
  delta: number;
  /** Change of reserved; absent for a deduct. */
  reservedDelta?: number;
  /** Units free to take after. */
  after: number;
  at: number;
}

export type RawOutcome =
  | { ok: true; replayed: boolean; entry: RawEntry }
  | { ok: false; code: 'INSUFFICIENT_STOCK'; available: number };

export type RawLinesOutcome = { ok: true; replayed: boolean; entries: readonly RawEntry[] } | { ok: false; code: 'INSUFFICIENT_STOCK'; sku: string };

type SettledState = 'committed' | 'released';

/** Commit or release of a reservation: applied, a replay, or refused (state: where it stands; null when unknown). */
export type RawSettleOutcome = { ok: true; replayed: boolean } | { ok: false; code: 'NOT_HELD'; state: SettledState | 'expired' | null };

interface RawReservation {
  state: 'held' | SettledState;
  expiresAt: number;
  lines: readonly RawLine[];
}

export class RawMapStock {
  readonly #applied = new Map<string, RawEntry | readonly RawEntry[]>();
  /** Units free to take: on hand minus reserved. */
  readonly #levels = new Map<string, number>();
  readonly #reserved = new Map<string, number>();
  readonly #reservations = new Map<string, RawReservation>();
  readonly #entries: RawEntry[] = [];

  /** Adds units (not idempotent: the benchmark only calls it once per SKU). */
  async restock(options: { sku: string; qty: number }): Promise<void> {
    this.#levels.set(options.sku, (this.#levels.get(options.sku) ?? 0) + options.qty);
  }

  /** Takes `qty` units of `sku` once per request id: a second call is a replay. */
  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawOutcome> {
    const { requestId, sku, qty } = options;
    const done = this.#applied.get(requestId);
    if (done !== undefined) return { ok: true, replayed: true, entry: Array.isArray(done) ? (done[0] as RawEntry) : (done as RawEntry) };
    const level = this.#levels.get(sku) ?? 0;
    if (level < qty) return { ok: false, code: 'INSUFFICIENT_STOCK', available: level };
    const entry: RawEntry = { seq: this.#entries.length + 1, requestId, sku, delta: -qty, after: level - qty, at: Date.now() };
    this.#levels.set(sku, level - qty);
    this.#entries.push(entry);
    this.#applied.set(requestId, entry);
    return { ok: true, replayed: false, entry };
  }

  /** Takes every line (distinct SKUs) once per request id, all or none. */
  async deductLines(options: { requestId: string; lines: readonly RawLine[] }): Promise<RawLinesOutcome> {
    const { requestId, lines } = options;
    const done = this.#applied.get(requestId);
    if (done !== undefined) return { ok: true, replayed: true, entries: Array.isArray(done) ? (done as readonly RawEntry[]) : [done as RawEntry] };
    const short = this.#shortLine(lines);
    if (short !== undefined) return { ok: false, code: 'INSUFFICIENT_STOCK', sku: short.sku };
    const entries = this.#take(requestId, lines, false);
    this.#applied.set(requestId, entries);
    return { ok: true, replayed: false, entries };
  }

  /** Holds every line (distinct SKUs) until `ttlMs` from now, all or none; the request id is the reservation's id. */
  async reserve(options: { requestId: string; lines: readonly RawLine[]; ttlMs: number }): Promise<RawLinesOutcome> {
    const { requestId, lines } = options;
    if (this.#reservations.has(requestId)) return { ok: true, replayed: true, entries: [] };
    const short = this.#shortLine(lines);
    if (short !== undefined) return { ok: false, code: 'INSUFFICIENT_STOCK', sku: short.sku };
    const entries = this.#take(requestId, lines, true);
    this.#reservations.set(requestId, { state: 'held', expiresAt: Date.now() + options.ttlMs, lines });
    return { ok: true, replayed: false, entries };
  }

  /** Sells what a held reservation holds. */
  async commit(reservationId: string): Promise<RawSettleOutcome> {
    return this.#settle(reservationId, 'committed');
  }

  /** Gives back what a held reservation holds. */
  async release(reservationId: string): Promise<RawSettleOutcome> {
    return this.#settle(reservationId, 'released');
  }

  /** On hand and reserved, summed over `skus`; the benchmark checks them against what it sold. */
  async totals(skus: readonly string[]): Promise<{ onHand: number; reserved: number }> {
    let onHand = 0;
    let reserved = 0;
    for (const sku of skus) {
      const held = this.#reserved.get(sku) ?? 0;
      onHand += (this.#levels.get(sku) ?? 0) + held;
      reserved += held;
    }
    return { onHand, reserved };
  }

  #shortLine(lines: readonly RawLine[]): RawLine | undefined {
    return lines.find((line) => (this.#levels.get(line.sku) ?? 0) < line.qty);
  }

  /** Takes every line off free units (onto reserved when `hold`); the caller checked they are there. */
  #take(requestId: string, lines: readonly RawLine[], hold: boolean): RawEntry[] {
    const at = Date.now();
    return lines.map(({ sku, qty }) => {
      const after = (this.#levels.get(sku) ?? 0) - qty;
      this.#levels.set(sku, after);
      if (hold) this.#reserved.set(sku, (this.#reserved.get(sku) ?? 0) + qty);
      const entry: RawEntry = hold
        ? { seq: this.#entries.length + 1, requestId, sku, delta: 0, reservedDelta: qty, after, at }
        : { seq: this.#entries.length + 1, requestId, sku, delta: -qty, after, at };
      this.#entries.push(entry);
      return entry;
    });
  }

  #settle(reservationId: string, to: SettledState): RawSettleOutcome {
    const reservation = this.#reservations.get(reservationId);
    if (reservation === undefined) return { ok: false, code: 'NOT_HELD', state: null };
    if (reservation.state === to) return { ok: true, replayed: true };
    const at = Date.now();
    if (reservation.state !== 'held') return { ok: false, code: 'NOT_HELD', state: reservation.state };
    if (at >= reservation.expiresAt) return { ok: false, code: 'NOT_HELD', state: 'expired' };
    for (const { sku, qty } of reservation.lines) {
      this.#reserved.set(sku, (this.#reserved.get(sku) ?? 0) - qty);
      const after = (this.#levels.get(sku) ?? 0) + (to === 'released' ? qty : 0);
      if (to === 'released') this.#levels.set(sku, after);
      this.#entries.push({ seq: this.#entries.length + 1, requestId: reservationId, sku, delta: to === 'committed' ? -qty : 0, reservedDelta: -qty, after, at });
    }
    reservation.state = to;
    return { ok: true, replayed: false };
  }
}
