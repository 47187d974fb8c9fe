import { InvalidInputError, StoreUnavailableError, isStockLedgerError } from './errors.js';

/** How to retry an operation whose outcome may be unknown. Every bound is hard. */
export interface RetryPolicy {
  /** Most attempts in all, the first included (1 means no retry). */
  attemptsMax: number;
  /** Backoff before the second attempt, before jitter, in ms; doubles per attempt. */
  baseMs: number;
  /** Largest backoff before jitter, in ms. */
  capMs: number;
  /** No new attempt starts once this much time has passed since the first, in ms. */
  totalMsMax: number;
}

/** The ledger's default: 4 attempts, 20 ms base, 500 ms cap, 3 s in all. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attemptsMax: 4,
  baseMs: 20,
  capMs: 500,
  totalMsMax: 3000,
});

/** Options of {@link withRetry}: a policy plus hooks, mostly for tests. */
export interface RetryOptions extends Partial<RetryPolicy> {
  /** Which errors to retry; default: `STORE_UNAVAILABLE` only. */
  retryable?: (error: unknown) => boolean;
  /** Random source in [0, 1) for the jitter. */
  random?: () => number;
  /** How to wait; default `setTimeout`. */
  sleep?: (ms: number) => Promise<void>;
  /** Monotonic time in ms; default `performance.now`. */
  now?: () => number;
}

const isUnavailable = (error: unknown): boolean => isStockLedgerError(error) && error.code === 'STORE_UNAVAILABLE';
const sleepMs = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A full, checked policy from a partial one: what is not given (or undefined) is the default. */
export function resolvePolicy(partial: Partial<RetryPolicy> = {}): RetryPolicy {
  return checkRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...definedOnly(partial) });
}

/** Checks a policy's numbers, so a typo cannot turn into an endless loop. */
export function checkRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const { attemptsMax, baseMs, capMs, totalMsMax } = policy;
  const ok =
    Number.isInteger(attemptsMax) && attemptsMax >= 1 && attemptsMax <= 100 &&
    [baseMs, capMs, totalMsMax].every((n) => Number.isFinite(n) && n >= 0);
  if (!ok) throw new InvalidInputError('retry', `invalid policy ${JSON.stringify(policy)}: attemptsMax 1 to 100, times finite and >= 0`);
  return policy;
}

/**
 * Full-jitter exponential backoff: a uniform wait in `[0, min(cap, base * 2^(attempt-1)))`.
 *
 * @example
 * ```ts
 * backoffMs({ ...DEFAULT_RETRY_POLICY, attempt: 2, random: Math.random });
 * ```
 */
export function backoffMs(options: RetryPolicy & { attempt: number; random: () => number }): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** (options.attempt - 1));
  return Math.floor(options.random() * ceiling);
}

/** The hooks of a retry loop, resolved once. */
export interface RetryHooks {
  retryable: (error: unknown) => boolean;
  random: () => number;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

/** Hooks from options, with the defaults filled in. */
export function retryHooks(options: RetryOptions = {}): RetryHooks {
  return {
    retryable: options.retryable ?? isUnavailable,
    random: options.random ?? Math.random,
    sleep: options.sleep ?? sleepMs,
    now: options.now ?? (() => performance.now()),
  };
}

/**
 * Runs `fn` and retries it while it throws a retryable error (by default `STORE_UNAVAILABLE`),
 * with full-jitter exponential backoff, at most `attemptsMax` times and no new attempt after
 * `totalMsMax`. The last error is rethrown as a `StoreUnavailableError` carrying the attempt
 * count (other errors are rethrown as they are). Only wrap idempotent work: ledger operations
 * with a fixed request id are.
 *
 * @example
 * ```ts
 * const result = await withRetry(() => callInventoryService({ requestId: 'order-7', sku: 'A', qty: 1 }));
 * ```
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy = resolvePolicy(options);
  const hooks = retryHooks(options);
  const startedMs = hooks.now();
  try {
    return await fn(1);
  } catch (error) {
    return retryAfter({ error, fn, policy, hooks, startedMs });
  }
}

/**
 * The retry loop after a first attempt failed with `error`: attempts 2 to `attemptsMax`.
 * Callers that keep a fast path for success (the ledger) enter it only on failure.
 */
export async function retryAfter<T>(options: {
  error: unknown; fn: (attempt: number) => Promise<T>; policy: RetryPolicy; hooks: RetryHooks; startedMs: number;
}): Promise<T> {
  const { fn, policy, hooks, startedMs } = options;
  let last = options.error;
  for (let attempt = 1; ; attempt += 1) {
    if (!hooks.retryable(last)) throw last;
    const waitMs = backoffMs({ ...policy, attempt, random: hooks.random });
    if (attempt >= policy.attemptsMax || hooks.now() - startedMs + waitMs > policy.totalMsMax) throw exhausted(last, attempt);
    await hooks.sleep(waitMs);
    try {
      return await fn(attempt + 1);
    } catch (error) {
      last = error;
    }
  }
}

function exhausted(error: unknown, attempts: number): unknown {
  if (!isUnavailable(error)) return error;
  const message = `${(error as Error).message} (after ${attempts} attempt${attempts === 1 ? '' : 's'})`;
  const retry = (error as { retry?: unknown }).retry === 'transaction' ? 'transaction' : 'operation';
  return new StoreUnavailableError(message, { cause: error, attempts, retry });
}

function definedOnly(options: Partial<RetryPolicy>): Partial<RetryPolicy> {
  const out: Partial<RetryPolicy> = {};
  for (const key of ['attemptsMax', 'baseMs', 'capMs', 'totalMsMax'] as const) {
    const value = options[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
