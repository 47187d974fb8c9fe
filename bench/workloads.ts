/**
 * The workloads of `npm run bench`. Each says what its SKUs start with and what one operation
 * of the load is:
 *
 * - "10k SKUs": a one-line deduct of 1 unit of one of 10,000 well-stocked SKUs;
 * - "hot SKU": a one-line deduct of one SKU with fewer units than buyers, where most deducts end
 *   as INSUFFICIENT_STOCK rejections once it sells out;
 * - "hot SKU, stocked": the same SKU stocked so that every deduct succeeds (the write path under
 *   contention);
 * - "3-line carts": one all-or-none deduct of 1 unit of each of 3 distinct SKUs of the 10,000;
 * - "checkout": reserve 1 unit of each of 1 to 3 distinct SKUs of the 10,000 (a 15-minute TTL),
 *   then commit the reservation (80%) or release it (20%); the pair is one operation.
 */
import type { Runner } from './contenders.js';

/** What one operation of the load does: a deduct of 1 unit of each SKU, or a checkout. */
export type Operation =
  | { kind: 'deduct'; skus: readonly string[] }
  | { kind: 'checkout'; skus: readonly string[]; commit: boolean };

export interface Workload {
  /** Shown in tables and the chart. */
  name: string;
  /** Short name for BENCH_WORKLOADS. */
  id: string;
  skus: readonly string[];
  /** Units each SKU starts with. */
  unitsPerSku: number;
  /** Stock never runs short: the bench fails the run if any operation is rejected. */
  plenty: boolean;
  /** Whether the stores' twins (with a policy, traced) run too: they price a cost against the plain store, on the first two workloads only. */
  twins: boolean;
  /** A fresh, seeded picker of operations, so every contender sees the same sequence. */
  picker(): () => Operation;
}

const SPREAD_SKU_COUNT = 10_000;
/** Plenty: no operation of a 10k-SKUs run is ever short of stock. */
const SPREAD_UNITS_PER_SKU = 1_000_000_000;
/** The stocked hot SKU: far more units than any measurement sells. */
const HOT_STOCKED_UNITS = 1_000_000_000;
const CART_LINES = 3;
/** A checkout reserves 1 to this many lines. */
const CHECKOUT_LINES_MAX = 3;
/** Checkouts in 100 that commit; the others release. */
const CHECKOUT_COMMIT_PERCENT = 80;
/** Longer than any run: no hold of the bench ever expires. */
export const CHECKOUT_TTL_MS = 15 * 60_000;

/** xorshift32: fast, seeded, good enough to spread SKUs evenly. */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

const spreadSkus = (): string[] => Array.from({ length: SPREAD_SKU_COUNT }, (_, i) => `SKU-${String(i).padStart(5, '0')}`);

/** `count` distinct SKUs of `skus`, drawn with `next`; a SKU drawn twice is replaced by the next one along. */
function distinctSkus(skus: readonly string[], next: () => number, count: number): string[] {
  const picked: number[] = [];
  for (let line = 0; line < count; line += 1) {
    let index = next() % skus.length;
    // Bounded: count <= skus.length, so a free index is at most `count` steps along.
    while (picked.includes(index)) index = (index + 1) % skus.length;
    picked.push(index);
  }
  return picked.map((i) => skus[i] as string);
}

export function spreadWorkload(): Workload {
  const skus = spreadSkus();
  const ops: Operation[] = skus.map((sku) => ({ kind: 'deduct', skus: [sku] }));
  return {
    name: '10k SKUs',
    id: 'spread',
    skus,
    unitsPerSku: SPREAD_UNITS_PER_SKU,
    plenty: true,
    twins: true,
    picker() {
      const next = xorshift32(0x5eed);
      return () => ops[next() % ops.length] as Operation;
    },
  };
}

export function hotWorkload(units: number): Workload {
  const op: Operation = { kind: 'deduct', skus: ['HOT-1'] };
  return { name: 'hot SKU', id: 'hot', skus: op.skus, unitsPerSku: units, plenty: false, twins: true, picker: () => () => op };
}

export function hotStockedWorkload(): Workload {
  const op: Operation = { kind: 'deduct', skus: ['HOT-1'] };
  return { name: 'hot SKU, stocked', id: 'stocked', skus: op.skus, unitsPerSku: HOT_STOCKED_UNITS, plenty: true, twins: false, picker: () => () => op };
}

export function cartWorkload(): Workload {
  const skus = spreadSkus();
  return {
    name: '3-line carts',
    id: 'carts',
    skus,
    unitsPerSku: SPREAD_UNITS_PER_SKU,
    plenty: true,
    twins: false,
    picker() {
      const next = xorshift32(0xca27);
      return () => ({ kind: 'deduct', skus: distinctSkus(skus, next, CART_LINES) });
    },
  };
}

export function checkoutWorkload(): Workload {
  const skus = spreadSkus();
  return {
    name: 'checkout',
    id: 'checkout',
    skus,
    unitsPerSku: SPREAD_UNITS_PER_SKU,
    plenty: true,
    twins: false,
    picker() {
      const next = xorshift32(0xc0de);
      return () => {
        const lines = 1 + (next() % CHECKOUT_LINES_MAX);
        return { kind: 'checkout', skus: distinctSkus(skus, next, lines), commit: next() % 100 < CHECKOUT_COMMIT_PERCENT };
      };
    },
  };
}

/** Every workload of a run, in the order they run. */
export function allWorkloads(hotUnits: number): Workload[] {
  return [spreadWorkload(), hotWorkload(hotUnits), hotStockedWorkload(), cartWorkload(), checkoutWorkload()];
}

/**
 * Runs one operation on `runner` under `requestId`: the units it sold (0 for a released
 * checkout), or null when it was short of stock. A checkout's reservation id is its request id.
 */
export async function perform(runner: Runner, requestId: string, op: Operation): Promise<number | null> {
  if (op.kind === 'deduct') return (await runner.deduct(requestId, op.skus)) ? op.skus.length : null;
  if (!(await runner.reserve(requestId, op.skus, CHECKOUT_TTL_MS))) return null;
  await runner.settle(requestId, op.commit);
  return op.commit ? op.skus.length : 0;
}
