/**
 * The memory baseline: the least code that still deducts safely and idempotently in one
 * process. A request-id map (holding the outcome, so a replay can return it), a level map and
 * an append-only entry array; the whole check-and-write runs without an await, so it is atomic
 * on the event loop. No validation, no fingerprint, no copies, no retry: that is what the
 * ledger adds, and what the benchmark puts a price on.
 */

export interface RawEntry {
  seq: number;
  requestId: string;
  sku: string;
  delta: number;
  after: number;
  at: number;
}

export type RawOutcome =
  | { ok: true; replayed: boolean; entry: RawEntry }
  | { ok: false; code: 'INSUFFICIENT_STOCK'; available: number };

export class RawMapStock {
  readonly #applied = new Map<string, RawEntry>();
  readonly #levels = new Map<string, number>();
  readonly #entries: RawEntry[] = [];

  /** Adds units (not idempotent: the benchmark only calls it once per SKU). */
  async restock(options: { sku: string; qty: number }): Promise<void> {
    this.#levels.set(options.sku, (this.#levels.get(options.sku) ?? 0) + options.qty);
  }

  /** Takes `qty` units of `sku` once per request id: a second call is a replay. */
  async deduct(options: { requestId: string; sku: string; qty: number }): Promise<RawOutcome> {
    const { requestId, sku, qty } = options;
    const done = this.#applied.get(requestId);
    if (done !== undefined) return { ok: true, replayed: true, entry: done };
    const level = this.#levels.get(sku) ?? 0;
    if (level < qty) return { ok: false, code: 'INSUFFICIENT_STOCK', available: level };
    const entry: RawEntry = { seq: this.#entries.length + 1, requestId, sku, delta: -qty, after: level - qty, at: Date.now() };
    this.#levels.set(sku, level - qty);
    this.#entries.push(entry);
    this.#applied.set(requestId, entry);
    return { ok: true, replayed: false, entry };
  }

  /** Units left of `sku`; the benchmark checks the hot SKU never sells more than it had. */
  async onHand(sku: string): Promise<number> {
    return this.#levels.get(sku) ?? 0;
  }
}
