import { StoreUnavailableError } from '../../src/index.js';
import type { Connection, Connector } from './postgres-client.js';
import { int, str, type EntryRef } from './postgres-codec.js';
import { sqlState } from './postgres-errors.js';
import type { Statements } from './postgres-sql.js';

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
