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
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  const parts = keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key] as JsonValue)}`);
  return `{${parts.join(',')}}`;
}

/**
 * The fingerprint of a normalized payload: its canonical JSON when short, else a SHA-256
 * digest of it. Canonical JSON starts with `[`, so the two forms never collide.
 *
 * @example
 * ```ts
 * fingerprint(['deduct', [['A', 1]], null]) === '["deduct",[["A",1]],null]';
 * ```
 */
export function fingerprint(payload: JsonValue[]): string {
  const text = canonicalJson(payload);
  if (text.length <= LIMITS.fingerprintInlineCharsMax) return text;
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
