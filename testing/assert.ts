/**
 * Tiny assertion helpers. The suite ships inside the package (`stock-ledger/testing`), so it
 * cannot depend on a test runner's `expect`: it throws plain errors any runner reports.
 */

/** A failed conformance check. The message says what was compared and where it differs. */
export class ConformanceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConformanceError';
  }
}

/** Throws a {@link ConformanceError}. */
export function fail(message: string): never {
  throw new ConformanceError(message);
}

/** Throws unless `condition` holds. */
export function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) fail(message());
}

const SHOW_CHARS_MAX = 4000;

/**
 * JSON-ish text of any value, for messages: keeps `undefined`, `NaN`, infinities, bigints and
 * functions visible, and escapes control characters (SKUs may hold newlines).
 */
export function show(value: unknown): string {
  const seen = new WeakSet<object>();
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v === undefined) return '<undefined>';
    if (typeof v === 'number' && !Number.isFinite(v)) return `<${String(v)}>`;
    if (typeof v === 'bigint') return `<${v}n>`;
    if (typeof v === 'function') return '<function>';
    if (typeof v === 'symbol') return `<${String(v)}>`;
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '<cycle>';
      seen.add(v);
    }
    return v;
  }) ?? String(value);
  return text.length > SHOW_CHARS_MAX ? `${text.slice(0, SHOW_CHARS_MAX)}... (${text.length} chars)` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keys whose value is not `undefined`: `{ a: undefined }` and `{}` say the same in JSON. */
function definedKeys(value: Record<string, unknown>): string[] {
  return Object.keys(value).filter((key) => value[key] !== undefined).sort();
}

/**
 * The path of the first difference between two JSON-like values and both sides there, or null
 * when they are equal. Object key order does not matter; a key set to `undefined` counts as
 * absent; `NaN` equals `NaN`.
 */
export function firstDifference(actual: unknown, expected: unknown, path = '$'): string | null {
  if (Array.isArray(actual) || Array.isArray(expected)) {
    if (!Array.isArray(actual) || !Array.isArray(expected)) return `${path}: ${show(actual)} vs expected ${show(expected)}`;
    if (actual.length !== expected.length) {
      return `${path}: length ${actual.length} vs expected ${expected.length}\n  actual:   ${show(actual)}\n  expected: ${show(expected)}`;
    }
    for (let i = 0; i < actual.length; i += 1) {
      const found = firstDifference(actual[i], expected[i], `${path}[${i}]`);
      if (found !== null) return found;
    }
    return null;
  }
  if (isRecord(actual) || isRecord(expected)) {
    if (!isRecord(actual) || !isRecord(expected)) return `${path}: ${show(actual)} vs expected ${show(expected)}`;
    const a = definedKeys(actual);
    const e = definedKeys(expected);
    // Compared as JSON: joined with a separator, keys that hold it could compare equal.
    if (JSON.stringify(a) !== JSON.stringify(e)) {
      return `${path}: keys ${show(a)} vs expected ${show(e)}\n  actual:   ${show(actual)}\n  expected: ${show(expected)}`;
    }
    for (const key of a) {
      const found = firstDifference(actual[key], expected[key], `${path}.${key}`);
      if (found !== null) return found;
    }
    return null;
  }
  if (actual === expected) return null;
  if (typeof actual === 'number' && typeof expected === 'number' && Number.isNaN(actual) && Number.isNaN(expected)) return null;
  return `${path}: ${show(actual)} vs expected ${show(expected)}`;
}

/** True when {@link firstDifference} finds none. */
export function deepEqual(actual: unknown, expected: unknown): boolean {
  return firstDifference(actual, expected) === null;
}

/** Throws a {@link ConformanceError} naming `what` and the first difference. */
export function assertEqual(actual: unknown, expected: unknown, what: string): void {
  const difference = firstDifference(actual, expected);
  if (difference === null) return;
  if (difference.startsWith('$:')) fail(`${what}: differs at ${difference}`);
  fail(`${what}: differs at ${difference}\n  whole actual:   ${show(actual)}\n  whole expected: ${show(expected)}`);
}
