/**
 * Compares two strings by Unicode code point, which is also the order of their UTF-8 bytes:
 * the order SQLite (and Redis, and PostgreSQL with `COLLATE "C"`) keep text in. It differs from
 * JavaScript's default order only where a character above U+FFFF (a surrogate pair in UTF-16)
 * meets one from U+E000 to U+FFFF. Stores use it wherever the order of stored rows is
 * observable, so every store walks them alike.
 *
 * @example
 * ```ts
 * compareCodePoints('😀', 'ｘ') > 0; // while '😀' < 'ｘ' in JavaScript's default order
 * ```
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Stryker disable next-line EqualityOperator: at the first differing unit of two well-formed strings a lone 0xdfff never meets a non-surrogate (it follows a shared high surrogate, so the other unit is a low one too)
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    // Stryker disable next-line EqualityOperator: as above, for the other string
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    // A surrogate stands for a code point above U+FFFF: above any single unit it differs from.
    if (xSurrogate !== ySurrogate) return xSurrogate ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * JavaScript's default string order (by UTF-16 code unit), as a comparator: the order of
 * `levels` in results and of merged lines.
 *
 * @example
 * ```ts
 * ['b', 'a'].sort(byCodeUnits); // ['a', 'b']
 * ```
 */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
