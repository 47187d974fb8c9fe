import { InvalidInputError, InvariantViolationError, StoreUnavailableError, isStockLedgerError } from '../../src/index.js';

/** SQLSTATE of an error from pg or postgres.js (both put it in `code`), or null. */
export function sqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** The constraint an integrity error names (pg: `constraint`, postgres.js: `constraint_name`). */
export function constraintOf(error: unknown): string | null {
  const e = error as { constraint?: unknown; constraint_name?: unknown } | null;
  const name = e?.constraint ?? e?.constraint_name;
  return typeof name === 'string' ? name : null;
}

/** Deadlock or serialization failure: the transaction was rolled back and may simply run again. */
export function isRetryableConflict(error: unknown): boolean {
  const state = sqlState(error);
  return state === '40001' || state === '40P01';
}

/**
 * SQLSTATEs whose outcome is unknown or whose cause is passing: the connection (08), the
 * server going away or refusing (57P0x, 53xxx), a cancelled statement (57014: statement
 * timeout), a lock timeout (55P03), conflicts (40xxx), system errors (58xxx).
 */
function transientState(state: string): boolean {
  return state.startsWith('08') || state.startsWith('53') || state.startsWith('58') || state.startsWith('40') ||
    state === '57014' || state === '57P01' || state === '57P02' || state === '57P03' || state === '57P04' || state === '55P03' ||
    state === '55006' || state === '25006' || state === 'XX000';
}

/** Node and driver error codes of a lost or refused connection (no SQLSTATE). */
const TRANSPORT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ERR_SOCKET_CLOSED', 'ERR_STREAM_DESTROYED',
]);

/** pg reports a lost connection or a pool timeout with a bare Error: recognised by message. */
const TRANSPORT_MESSAGE = /connection terminated|connection ended|not queryable|timeout exceeded when trying to connect|connection.*(closed|lost|refused)|socket|Client was closed|Cannot use a pool after calling end/i;

/**
 * Maps a driver failure to the library's errors: unknown outcome or passing trouble is
 * `STORE_UNAVAILABLE` (the ledger retries it with the same request id when it owns the
 * transaction); a broken constraint or a statement PostgreSQL refuses as written is a bug
 * (`INVARIANT_VIOLATION`); the library's own errors pass through.
 *
 * @example
 * ```ts
 * try { await connection.query(text, values); } catch (error) { throw storeError(error); }
 * ```
 */
export function storeError(error: unknown, context = 'PostgreSQL'): Error {
  if (isStockLedgerError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  const state = sqlState(error);
  if (state !== null) {
    if (transientState(state)) return new StoreUnavailableError(`${context}: ${message} (SQLSTATE ${state})`, { cause: error });
    if (state === '25P02') {
      return new InvalidInputError('options.transaction', `the transaction has already failed (SQLSTATE 25P02): roll it back; ${message}`, { cause: error });
    }
    if (state === '25P01') return new InvalidInputError('options.transaction', 'no transaction is open on this client: BEGIN first', { cause: error });
    return new InvariantViolationError(`${context}: ${message} (SQLSTATE ${state})`, { cause: error });
  }
  const code = (error as { code?: unknown } | null)?.code;
  if ((typeof code === 'string' && TRANSPORT_CODES.has(code)) || (error instanceof Error && !(error instanceof TypeError) && TRANSPORT_MESSAGE.test(message))) {
    return new StoreUnavailableError(`${context}: ${message}`, { cause: error });
  }
  return new InvariantViolationError(`${context} store: ${message}`, { cause: error });
}

/**
 * A serialization failure or deadlock inside the app's transaction: the store cannot retry it
 * there, the app must roll back and run its whole transaction again (same request ids):
 * `retry: 'transaction'` says so, and the cause keeps PostgreSQL's SQLSTATE.
 */
export function joinedConflict(error: unknown): StoreUnavailableError {
  const state = sqlState(error) ?? 'unknown';
  return new StoreUnavailableError(
    `PostgreSQL: your transaction lost a conflict (SQLSTATE ${state}): roll it back and retry the whole transaction ` +
      '(the same request ids are safe to reuse)',
    { cause: error, retry: 'transaction' },
  );
}
