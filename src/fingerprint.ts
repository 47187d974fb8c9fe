import { createHash } from 'node:crypto';
import { LIMITS } from './limits.js';
import type { JsonValue } from './types.js';

/**
 * JSON with object keys sorted (by code unit), so equal values give equal strings whatever the
 * order their keys were written in.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true] }) === '{"a":[true],"b":1}';
 * ```
 */
export function canonicalJson(value: JsonValue): string {
  // Stryker disable next-line ConditionalExpression,StringLiteral: JSON.stringify writes a finite number as String does; this is the fast path
  if (typeof value === 'number') return String(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  // Plain concatenation: this runs on every operation, and map/join allocates more.
  let out: string;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonicalJson(value[i] as JsonValue);
    return `${out}]`;
  }
  const keys = Object.keys(value).sort();
  out = '{';
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i] as string;
    out += `${i === 0 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`;
  }
  return `${out}}`;
}

/**
 * The fingerprint of a normalized payload, given as its canonical JSON (an array, as
 * {@link canonicalJson} writes it): that text when short, else a SHA-256 digest of it.
 * Canonical JSON of an array starts with `[`, so the two forms never collide.
 *
 * @example
 * ```ts
 * fingerprint(canonicalJson(['deduct', [['A', 1]], null])) === '["deduct",[["A",1]],null]';
 * ```
 */
export function fingerprint(text: string): string {
  if (text.length <= LIMITS.fingerprintInlineCharsMax) return text;
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
