import { isStockLedgerError } from '../../src/index.js';
import type {
  AdjustInput, DeductInput, Level, OperationResult, RestockInput, ReverseInput, StockLedger,
} from '../../src/index.js';

/** One call on a ledger, as data: what the model, the histories and the generators share. */
export type Op =
  | { kind: 'restock'; input: RestockInput }
  | { kind: 'deduct'; input: DeductInput }
  | { kind: 'adjust'; input: AdjustInput }
  | { kind: 'reverse'; input: ReverseInput }
  | { kind: 'stock'; sku: string };

/** A call that changes the ledger. */
export type WriteOp = Exclude<Op, { kind: 'stock' }>;

/** A thrown `StockLedgerError`, reduced to its code. */
export interface Thrown {
  thrown: string;
}

/** What a call produced: a result (or a level, for `stock`), or the code of the error it threw. */
export type Outcome = OperationResult | Level | Thrown;

/**
 * Runs one op and turns a thrown `StockLedgerError` into `{ thrown: code }`; anything else that
 * is thrown (a bug, a non-library error) propagates.
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
      case 'stock':
        return await ledger.stock(op.sku);
    }
  } catch (error) {
    if (isStockLedgerError(error)) return { thrown: error.code };
    throw error;
  }
}

/** The request id of a write op. */
export function requestIdOf(op: WriteOp): string {
  return op.input.requestId;
}

/** SKUs a write op names up front (a reverse without lines names none). */
export function skusOf(op: WriteOp): string[] {
  switch (op.kind) {
    case 'restock':
    case 'adjust':
      return [op.input.sku];
    case 'deduct':
      return 'lines' in op.input ? op.input.lines.map((line) => line.sku) : [op.input.sku];
    case 'reverse':
      return (op.input.lines ?? []).map((line) => line.sku);
  }
}

/** Short text of an op for messages and labels. */
export function describeOp(op: Op): string {
  if (op.kind === 'stock') return `stock(${JSON.stringify(op.sku)})`;
  return `${op.kind}(${JSON.stringify(op.input)})`;
}
