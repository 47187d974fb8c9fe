import { StoreUnavailableError } from '../../src/index.js';
import type { Connection, Connector } from './postgres-client.js';
import { encodeKey, int, str, type EntryRef } from './postgres-codec.js';
import { sqlState } from './postgres-errors.js';
import type { Statements } from './postgres-sql.js';
import type { SweepMark } from './postgres-unit.js';
import type { EntryRefs } from './postgres-view.js';

/** Entries numbered per statement of the sequencer. */
const SEQUENCE_BATCH = 10_000;
/** Statements per sequencer transaction: together, the most entries one run numbers. */
const SEQUENCE_ROUNDS_MAX = 20;

const refKey = (op: number, pos: number): string => `${op}:${pos}`;

/**
 * Numbers committed entries that have no `seq` yet, in one short transaction under this
 * ledger's advisory lock: contiguously from the highest seq, in (op, pos) order. Only
 * committed rows are visible to it, and every SKU's entries have growing ops (an op is taken
 * while the SKU is locked), so seqs follow every SKU's versions, and a feed reader that sees
 * seq n has seen every seq below n: nothing is skipped, whoever committed when.
 *
 * Returns the seqs of the entries of `ops` (numbered now or before).
 *
 * @example
 * ```ts
 * const seqs = await sequence(connector, statements('stock_ledger'), [op]);
 * seqs.get(`${op}:0`); // the seq of the op's first entry
 * ```
 */
export async function sequence(connector: Connector, sql: Statements, ops: readonly number[]): Promise<Map<string, number>> {
  const mine = JSON.stringify(ops);
  let reply: string;
  try {
    const rows = await connector.query(sql.numberEntries, [SEQUENCE_BATCH, SEQUENCE_ROUNDS_MAX, mine, true]);
    reply = str(rows[0]?.['j'], 'sequence');
  } catch (error) {
    // The session's default isolation is not READ COMMITTED: the same steps, in a transaction that is.
    if (sqlState(error) !== '0A000') throw error;
    reply = await connector.transaction(async (connection) => {
      const rows = await connection.query(sql.numberEntries, [SEQUENCE_BATCH, SEQUENCE_ROUNDS_MAX, mine, true]);
      return { value: str(rows[0]?.['j'], 'sequence'), commit: true };
    }, null);
  }
  return seqsOf(reply);
}

function seqsOf(reply: string): Map<string, number> {
  const found = JSON.parse(reply) as { seqs: Row[] };
  return new Map(found.seqs.map((r) => [refKey(r.op, r.pos), int(r.seq, 'seq')]));
}

/**
 * Inside a store-owned transaction, right before its last write: if the sequencer lock is
 * free, takes it (until COMMIT), numbers what waits (the transaction's earlier writes
 * included) and returns the highest seq, from which the last write numbers its own entries.
 * Null when the lock is taken: the store then runs {@link sequence} after its commit.
 *
 * @example
 * ```ts
 * const numbered = await sequenceBeforeLastWrite(connection, sql, refs.unnumberedOps());
 * ```
 */
export async function sequenceBeforeLastWrite(
  connection: Connection, sql: Statements, ops: readonly number[],
): Promise<{ last: number; seqs: Map<string, number> } | null> {
  const rows = await connection.query(sql.numberEntries, [SEQUENCE_BATCH, SEQUENCE_ROUNDS_MAX, JSON.stringify(ops), false]);
  const reply = rows[0]?.['j'];
  if (reply === null || reply === undefined) return null;
  const text = str(reply, 'sequence');
  return { last: int((JSON.parse(text) as { last: unknown }).last, 'last seq'), seqs: seqsOf(text) };
}

interface Row {
  op: number;
  pos: number;
  seq: number;
}

/** The seq of an entry ref in a map {@link sequence} returned. */
export function seqOf(seqs: Map<string, number>, ref: EntryRef): number | null {
  return seqs.get(refKey(ref.op, ref.pos)) ?? null;
}

/** Runs the sequencer when committed entries lack a seq (cheap check first: readers call it on every page). */
export async function sequenceIfNeeded(connector: Connector, sql: Statements): Promise<void> {
  const rows = await connector.query(sql.anyUnnumbered);
  const any = rows[0]?.['any'];
  if (any === true || any === 't') await sequence(connector, sql, []);
}

/** A committed entry the sequencer could not number within its bound: the caller retries. */
export function unnumbered(): StoreUnavailableError {
  return new StoreUnavailableError('PostgreSQL: committed entries are still being numbered; retry');
}

/**
 * A sweep's result depends on every due hold of the ledger, not only on the SKUs it locked: a
 * reserve of another SKU that committed after the sweep read could still be numbered before
 * the sweep's entries, and the feed would then show a sweep that missed a hold already due.
 * So a sweep that wrote numbers its entries before its COMMIT, waiting for the sequencer lock
 * (held from then until the COMMIT, so whatever commits later is numbered after it), and then
 * checks, in a snapshot taken after that numbering, that the due holds it left are exactly
 * those the model allows: none before the last one it took, and some exactly when it said
 * `more`. If not, {@link SweepRaced}: the store rolls back and sweeps again.
 *
 * @example
 * ```ts
 * if (unit.sweep !== null) await sealSweep(connection, sql, unit.ops, unit.sweep, unit.refs);
 * ```
 */
export async function sealSweep(connection: Connection, sql: Statements, ops: readonly number[], mark: SweepMark, refs: EntryRefs): Promise<void> {
  const rows = await connection.query(sql.numberEntries, [SEQUENCE_BATCH, SEQUENCE_ROUNDS_MAX, JSON.stringify(ops), true]);
  const seqs = seqsOf(str(rows[0]?.['j'], 'sequence'));
  refs.number((ref) => seqOf(seqs, ref));
  if (refs.unnumberedOps().length > 0) throw new SweepRaced('its entries could not be numbered before its commit');
  const last = mark.last;
  const [check] = await connection.query(sql.sweepLeft, [
    mark.at, last?.expiresAt ?? null, last === null ? null : encodeKey(last.reservationId), last === null ? null : encodeKey(last.sku),
  ]);
  const any = check?.['any'] === true || check?.['any'] === 't';
  const before = check?.['before'] === true || check?.['before'] === 't';
  if (before || any !== mark.more) throw new SweepRaced('a hold fell due elsewhere while it ran');
}

/** A sweep met a hold that fell due while it ran (or could not number first): rolled back and run again. */
export class SweepRaced extends StoreUnavailableError {
  constructor(why: string) {
    super(`PostgreSQL: a sweep raced other writers (${why}); retry`);
  }
}
