import { emptyCheckpoint, endsReservation, foldIntoCheckpoint, isSettled, ownsRecord, reservationOf, type Checkpoint } from '../../src/store-kit.js';
import { InvariantViolationError, type Entry } from '../../src/index.js';
import type { CompactQuery, CompactStep, StoredReservation } from '../../src/store-kit.js';
import type { SqliteDatabase, SqliteStatement } from './sqlite-database.js';
import type { SqliteTables } from './sqlite-schema.js';

/**
 * Compaction of `SqliteStore` (schema 7): the statements of one step and of the
 * checkpoint reads of `verifyChunk`. The step runs inside the store's `BEGIN IMMEDIATE`
 * transaction; nothing here opens or ends one.
 *
 * @example
 * ```ts
 * const retention = new SqliteRetention(db, tables);
 * db.transaction(() => retention.step({ before, limit: 1000, now }, readEntries)).immediate();
 * ```
 */
export class SqliteRetention {
  readonly #sql: ReturnType<typeof prepare>;

  constructor(db: SqliteDatabase, t: SqliteTables) {
    this.#sql = prepare(db, t);
  }

  /** The highest entry seq removed so far; 0 when never compacted. */
  horizon(): number {
    return (this.#sql.horizon.get() as { compacted_through: number }).compacted_through;
  }

  /**
   * One step, in the caller's write transaction: the walk over the oldest entries (`read`
   * returns up to `limit` of them after a seq, in seq order), then the closed ids.
   */
  step(query: CompactQuery, read: (after: number, limit: number) => Entry[]): CompactStep {
    const from = this.horizon();
    const gone = this.#walk(read(from, query.limit), query.before);
    const removed = this.#remove(gone);
    const last = gone[gone.length - 1];
    const through = last === undefined ? from : (last.seq as number);
    if (through !== from) {
      const { changes } = this.#sql.deleteEntries.run(from, through);
      if (changes !== gone.length) throw new InvariantViolationError(`compaction deleted ${changes} entries, expected ${gone.length}`);
      this.#sql.setHorizon.run(through);
    }
    const closed = this.#sql.deleteClosedIds.run(query.before, query.limit).changes;
    return {
      requests: removed.requests + closed, reservations: removed.reservations, entries: gone.length, compactedThrough: through,
      more: gone.length === query.limit || closed === query.limit,
    };
  }

  /**
   * The entries that go: the prefix before the first one inside the window or of a reservation
   * not yet settled. A reservation's state is read once per step: the step only deletes, after the walk.
   */
  #walk(entries: readonly Entry[], before: number): Entry[] {
    const settled = new Map<string, boolean>();
    const gone: Entry[] = [];
    for (const entry of entries) {
      if (entry.at >= before) break;
      const id = reservationOf(entry);
      if (id !== null) {
        if (!settled.has(id)) settled.set(id, this.#settledOrGone(id));
        if (settled.get(id) !== true) break;
      }
      gone.push(entry);
    }
    return gone;
  }

  #settledOrGone(id: string): boolean {
    const row = this.#sql.reservation.get(id) as { state: StoredReservation['state'] } | undefined;
    if (row === undefined) return true;
    const holds = (this.#sql.holdsOf.all(id) as Array<{ sku: string }>).map((h) => h.sku);
    return isSettled({ state: row.state, holds });
  }

  /** Folds the entries into their SKUs' checkpoints and deletes the records they take with them. */
  #remove(gone: readonly Entry[]): { requests: number; reservations: number } {
    const checkpoints = new Map<string, Checkpoint>();
    const requestIds = new Set<string>();
    const reservationIds = new Set<string>();
    for (const entry of gone) {
      let cp = checkpoints.get(entry.sku);
      if (cp === undefined) checkpoints.set(entry.sku, (cp = emptyCheckpoint()));
      foldIntoCheckpoint(cp, entry);
      if (ownsRecord(entry)) requestIds.add(entry.requestId);
      // The end of a settled reservation (every entry that goes is of one, by the walk) is
      // older than the window: no retry inside it can need the reservation or its reserve's record.
      if (endsReservation(entry)) {
        requestIds.add(entry.requestId);
        reservationIds.add(entry.requestId);
      }
    }
    for (const [sku, cp] of checkpoints) this.#addToCheckpoint(sku, cp);
    let requests = 0;
    // A reversal tally is kept under the id it reverses: a request's, or a committed reservation's.
    for (const id of requestIds) {
      requests += this.#sql.deleteRequest.run(id).changes;
      this.#sql.deleteReversals.run(id);
    }
    let reservations = 0;
    for (const id of reservationIds) reservations += this.#sql.deleteReservation.run(id).changes;
    return { requests, reservations };
  }

  /** Adds one step's fold of a SKU to its stored checkpoint; sums that come to 0 are deleted. */
  #addToCheckpoint(sku: string, cp: Checkpoint): void {
    this.#sql.addCheckpoint.run(sku, cp.onHand, cp.reserved, cp.version);
    const { hold, setHold, deleteHold, buyer, setBuyer, deleteBuyer } = this.#sql;
    for (const [id, qty] of cp.holds) addSum({ get: hold, set: setHold, remove: deleteHold }, sku, id, qty);
    for (const [name, taken] of cp.buyers) addSum({ get: buyer, set: setBuyer, remove: deleteBuyer }, sku, name, taken);
  }

  /** The stored checkpoints of the SKUs after `after`, up to `upper` inclusive (null: no bound). */
  checkpoints(after: string, upper: string | null): Map<string, Checkpoint> {
    const range = (pair: { range: SqliteStatement; from: SqliteStatement }): unknown[] => (upper === null ? pair.from.all(after) : pair.range.all(after, upper));
    const found = new Map<string, Checkpoint>();
    const of = (sku: string): Checkpoint => {
      let cp = found.get(sku);
      if (cp === undefined) found.set(sku, (cp = emptyCheckpoint()));
      return cp;
    };
    for (const row of range(this.#sql.counters) as Array<{ sku: string; on_hand: number; reserved: number; version: number }>) {
      Object.assign(of(row.sku), { onHand: row.on_hand, reserved: row.reserved, version: row.version });
    }
    for (const row of range(this.#sql.holds) as Array<{ sku: string; key: string; qty: number }>) of(row.sku).holds.set(row.key, row.qty);
    for (const row of range(this.#sql.buyers) as Array<{ sku: string; key: string; qty: number }>) of(row.sku).buyers.set(row.key, row.qty);
    return found;
  }
}

/** Adds `qty` to the stored sum of (sku, key): set absolute, as the tables refuse a 0. */
function addSum(sql: { get: SqliteStatement; set: SqliteStatement; remove: SqliteStatement }, sku: string, key: string, qty: number): void {
  const sum = ((sql.get.get(sku, key) as { qty: number } | undefined)?.qty ?? 0) + qty;
  if (sum === 0) sql.remove.run(sku, key);
  else sql.set.run(sku, key, sum);
}

function prepare(db: SqliteDatabase, t: SqliteTables) {
  const ranged = (select: string): { range: SqliteStatement; from: SqliteStatement } => ({
    range: db.prepare(`${select} WHERE sku > ? AND sku <= ?`),
    from: db.prepare(`${select} WHERE sku > ?`),
  });
  return {
    horizon: db.prepare(`SELECT compacted_through FROM ${t.horizon} WHERE id = 1`),
    setHorizon: db.prepare(`UPDATE ${t.horizon} SET compacted_through = ? WHERE id = 1`),
    deleteEntries: db.prepare(`DELETE FROM ${t.entries} WHERE seq > ? AND seq <= ?`),
    reservation: db.prepare(`SELECT state, expires_at FROM ${t.reservations} WHERE id = ?`),
    holdsOf: db.prepare(`SELECT sku FROM ${t.holds} WHERE reservation_id = ?`),
    deleteRequest: db.prepare(`DELETE FROM ${t.requests} WHERE request_id = ?`),
    deleteReversals: db.prepare(`DELETE FROM ${t.reversals} WHERE of_request = ?`),
    deleteReservation: db.prepare(`DELETE FROM ${t.reservations} WHERE id = ?`),
    // The oldest closed ids first, through the partial index on revoke records by time.
    deleteClosedIds: db.prepare(
      `DELETE FROM ${t.requests} WHERE request_id IN (SELECT request_id FROM ${t.requests} WHERE kind = 'revoke' AND at < ? ORDER BY at LIMIT ?)`,
    ),
    addCheckpoint: db.prepare(
      `INSERT INTO ${t.checkpoints} (sku, on_hand, reserved, version) VALUES (?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET ` +
        'on_hand = on_hand + excluded.on_hand, reserved = reserved + excluded.reserved, version = version + excluded.version',
    ),
    hold: db.prepare(`SELECT qty FROM ${t.checkpointHolds} WHERE sku = ? AND reservation_id = ?`),
    setHold: db.prepare(
      `INSERT INTO ${t.checkpointHolds} (sku, reservation_id, qty) VALUES (?, ?, ?) ON CONFLICT (sku, reservation_id) DO UPDATE SET qty = excluded.qty`,
    ),
    deleteHold: db.prepare(`DELETE FROM ${t.checkpointHolds} WHERE sku = ? AND reservation_id = ?`),
    buyer: db.prepare(`SELECT taken AS qty FROM ${t.checkpointBuyers} WHERE sku = ? AND buyer = ?`),
    setBuyer: db.prepare(`INSERT INTO ${t.checkpointBuyers} (sku, buyer, taken) VALUES (?, ?, ?) ON CONFLICT (sku, buyer) DO UPDATE SET taken = excluded.taken`),
    deleteBuyer: db.prepare(`DELETE FROM ${t.checkpointBuyers} WHERE sku = ? AND buyer = ?`),
    counters: ranged(`SELECT sku, on_hand, reserved, version FROM ${t.checkpoints}`),
    holds: ranged(`SELECT sku, reservation_id AS key, qty FROM ${t.checkpointHolds}`),
    buyers: ranged(`SELECT sku, buyer AS key, taken AS qty FROM ${t.checkpointBuyers}`),
  };
}
