/**
 * The ledger's answers as HTTP: problem details (RFC 9457, `application/problem+json`) for every
 * refusal, with the ledger's code and its fields, so a client can act on `code` and `available`
 * without parsing prose.
 */
import { isStockLedgerError, type Rejection } from 'stock-ledger';

/** A problem+json body: the RFC's members, then the ledger's code and the refusal's own fields. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [field: string]: unknown;
}

/** Status per refusal: not found for a cart that was never held, conflict for the state of stock or of a cart. */
const REJECTION_STATUS: Partial<Record<Rejection['code'], number>> = {
  RESERVATION_NOT_FOUND: 404,
  REQUEST_NOT_FOUND: 404,
};

const TITLES: Record<string, string> = {
  INSUFFICIENT_STOCK: 'Sold out',
  BUYER_LIMIT: 'Purchase limit reached',
  RESERVATION_NOT_FOUND: 'No such cart hold',
  RESERVATION_EXPIRED: 'The cart hold expired',
  RESERVATION_RELEASED: 'The cart hold was released',
  RESERVATION_COMMITTED: 'The cart was already bought',
  EXCEEDS_RESERVATION: 'More than the cart holds',
  REQUEST_REVOKED: 'This key was revoked',
  IDEMPOTENCY_CONFLICT: 'Idempotency-Key reused with another request',
  INVALID_INPUT: 'Invalid request',
  MISSING_IDEMPOTENCY_KEY: 'Idempotency-Key header required',
  STORE_UNAVAILABLE: 'Stock store unavailable, retry with the same Idempotency-Key',
  INTERNAL: 'Internal error',
};

/**
 * A problem for `code`: `type` is a URN naming the code, so it is stable and needs no web page.
 *
 * @example
 * problem(400, 'MISSING_IDEMPOTENCY_KEY', 'POST /orders needs an Idempotency-Key header');
 */
export function problem(status: number, code: string, detail: string, fields: Record<string, unknown> = {}): Problem {
  return { type: `urn:stock-ledger:problem:${code.toLowerCase().replaceAll('_', '-')}`, title: TITLES[code] ?? code, status, detail, code, ...fields };
}

/** A refusal the ledger answered (`ok: false`): 404 or 409, with every field of the refusal. */
export function rejectionProblem(rejection: Rejection): Problem {
  const { ok: _ok, code, ...fields } = rejection;
  return problem(REJECTION_STATUS[code] ?? 409, code, detailOf(rejection), fields);
}

function detailOf(rejection: Rejection): string {
  switch (rejection.code) {
    case 'INSUFFICIENT_STOCK':
      return `${rejection.sku}: ${rejection.requested} asked, ${rejection.available} available`;
    case 'BUYER_LIMIT':
      return `${rejection.buyer} may take ${rejection.limit} of ${rejection.sku} and has ${rejection.taken}`;
    default:
      return `the ledger refused: ${rejection.code}`;
  }
}

/** An error the ledger threw, or any other: 400, 422, 503 (retry) or 500. */
export function errorProblem(error: unknown): Problem {
  if (!isStockLedgerError(error)) return problem(500, 'INTERNAL', 'unexpected error');
  switch (error.code) {
    case 'INVALID_INPUT':
      return problem(400, error.code, error.message);
    case 'IDEMPOTENCY_CONFLICT':
      return problem(422, error.code, 'this Idempotency-Key was used with another request body; use a new key for a new request');
    case 'STORE_UNAVAILABLE':
      return problem(503, error.code, 'the outcome is unknown: send the same request with the same Idempotency-Key again');
    default:
      return problem(500, 'INTERNAL', error.code);
  }
}
