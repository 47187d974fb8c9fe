import { isStockLedgerError } from '../src/index.js';
import type {
  AdjustInput, AmendInput, CommitInput, DeductInput, ExtendInput, Level, OperationResult, OrderLine, ReleaseInput, Reservation, ReserveInput, RestockInput, ReverseInput, RevokeInput,
  SetPolicyInput, StockLedger, SweepInput, SweepResult,
} from '../src/index.js';

/** One call on a ledger, as data: what the model, the histories and the generators share. */
export type Op =
  | { kind: 'restock'; input: RestockInput }
  | { kind: 'deduct'; input: DeductInput }
  | { kind: 'adjust'; input: AdjustInput }
  | { kind: 'reverse'; input: ReverseInput }
  | { kind: 'reserve'; input: ReserveInput }
  | { kind: 'revoke'; input: RevokeInput }
  | { kind: 'setPolicy'; input: SetPolicyInput }
  | { kind: 'amend'; input: AmendInput }
  | { kind: 'commit'; input: CommitInput }
  | { kind: 'release'; input: ReleaseInput }
  | { kind: 'extend'; input: ExtendInput }
  | { kind: 'sweep'; input: SweepInput }
  | { kind: 'stock'; sku: string }
  | { kind: 'reservation'; id: string };

/** A call that changes the ledger (or may: a sweep, a commit or release that is rejected). */
export type WriteOp = Exclude<Op, { kind: 'stock' } | { kind: 'reservation' }>;

/** A write that carries its own request id (and fingerprint): every kind but commit, release and sweep. */
export type RequestOp = Extract<WriteOp, { kind: 'restock' | 'deduct' | 'adjust' | 'reverse' | 'reserve' | 'revoke' | 'setPolicy' | 'amend' }>;

/** A thrown `StockLedgerError`, reduced to its code. */
export interface Thrown {
  thrown: string;
}

/**
 * What a call produced: a result, a level (`stock`), a reservation or null (`reservation`), a
 * sweep's result, or the code of the error it threw.
 */
export type Outcome = OperationResult | Level | Reservation | SweepResult | null | Thrown;

/**
 * Runs one op and turns a thrown `StockLedgerError` into `{ thrown: code }`; anything else that
 * is thrown (a bug, a non-library error) propagates.
 *
 * @example
 * ```ts
 * const outcome = await runOp(ledger, { kind: 'revoke', input: { requestId: 'order-7' } });
 * ```
 */
export async function runOp(ledger: StockLedger, op: Op): Promise<Outcome> {
  try {
    switch (op.kind) {
      case 'restock':
        return await ledger.restock(op.input);
      case 'deduct':
        return await ledger.deduct(op.input);
      case 'adjust':
        return await ledger.adjust(op.input);
      case 'reverse':
        return await ledger.reverse(op.input);
      case 'reserve':
        return await ledger.reserve(op.input);
      case 'revoke':
        return await ledger.revoke(op.input);
      case 'setPolicy':
        return await ledger.setPolicy(op.input);
      case 'amend':
        return await ledger.amend(op.input);
      case 'commit':
        return await ledger.commit(op.input);
      case 'release':
        return await ledger.release(op.input);
      case 'extend':
        return await ledger.extend(op.input);
      case 'sweep':
        return await ledger.sweepExpired(op.input);
      case 'stock':
        return await ledger.stock(op.sku);
      case 'reservation':
        return await ledger.reservation(op.id);
    }
  } catch (error) {
    if (isStockLedgerError(error)) return { thrown: error.code };
    throw error;
  }
}

/**
 * True for the writes that carry a request id of their own.
 *
 * @example
 * ```ts
 * isRequestOp({ kind: 'revoke', input: { requestId: 'o' } }) === true;
 * ```
 */
export function isRequestOp(op: Op): op is RequestOp {
  return op.kind === 'restock' || op.kind === 'deduct' || op.kind === 'adjust' || op.kind === 'reverse' || op.kind === 'reserve' || op.kind === 'revoke' ||
    op.kind === 'setPolicy' || op.kind === 'amend';
}

/** The request id of a request op. */
export function requestIdOf(op: RequestOp): string {
  return op.input.requestId;
}

/**
 * The id a write's own entries carry: its request id, or the reservation id of a commit or
 * release; null for a sweep (its entries carry the ids of the reservations it expires).
 */
export function entryIdOf(op: WriteOp): string | null {
  if (isRequestOp(op)) return op.input.requestId;
  if (op.kind === 'commit' || op.kind === 'release') return op.input.reservationId;
  return null;
}

/** SKUs a write op names up front (a reverse or commit without lines, a release, a revoke and a sweep name none). */
export function skusOf(op: WriteOp): string[] {
  switch (op.kind) {
    case 'setPolicy':
      return [op.input.sku];
    case 'restock':
    case 'adjust':
      return 'lines' in op.input ? op.input.lines.map((line) => line.sku) : [op.input.sku];
    case 'deduct':
      return 'lines' in op.input ? plainSkus(op.input.lines) : [op.input.sku];
    case 'reverse':
    case 'commit':
      return (op.input.lines ?? []).map((line) => line.sku);
    case 'reserve':
      return plainSkus(op.input.lines);
    case 'amend':
      // Only SKUs whose hold changes get an entry: none is certain up front.
      return [];
    case 'release':
    case 'extend':
    case 'revoke':
    case 'sweep':
      return [];
  }
}

/** SKUs of the one-SKU lines: what an applied deduct or reserve must touch (an `anyOf` line may take from any of its SKUs). */
function plainSkus(lines: readonly OrderLine[]): string[] {
  return lines.flatMap((line) => ('sku' in line ? [line.sku] : []));
}

/** Short text of an op for messages and labels. */
export function describeOp(op: Op): string {
  if (op.kind === 'stock') return `stock(${JSON.stringify(op.sku)})`;
  if (op.kind === 'reservation') return `reservation(${JSON.stringify(op.id)})`;
  return `${op.kind}(${JSON.stringify(op.input)})`;
}
