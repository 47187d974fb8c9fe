import { isStockLedgerError } from 'stock-ledger';

/**
 * The code of the StockLedgerError a call rejected with (or threw), the error itself when it
 * is not one, or 'no error'.
 *
 * @example
 * expect(await codeOf(() => ledger.deduct({ requestId: '', sku: 'A', qty: 1 }))).toBe('INVALID_INPUT');
 */
export async function codeOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return isStockLedgerError(error) ? error.code : error;
  }
  return 'no error';
}
