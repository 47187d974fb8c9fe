/**
 * The two workloads of `npm run bench`: deducts spread over 10,000 well-stocked SKUs, and a
 * flash sale on one hot SKU with fewer units than buyers, where most deducts end as
 * INSUFFICIENT_STOCK rejections once it sells out.
 */

export interface Workload {
  /** Shown in tables and the chart. */
  name: string;
  skus: readonly string[];
  /** Units each SKU starts with. */
  unitsPerSku: number;
  /** A fresh, seeded SKU picker, so every contender sees the same sequence. */
  picker(): () => string;
}

const SPREAD_SKU_COUNT = 10_000;
/** Plenty: no deduct of a 10k-SKUs run is ever short of stock. */
const SPREAD_UNITS_PER_SKU = 1_000_000_000;

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

export function spreadWorkload(): Workload {
  const skus = Array.from({ length: SPREAD_SKU_COUNT }, (_, i) => `SKU-${String(i).padStart(5, '0')}`);
  return {
    name: '10k SKUs',
    skus,
    unitsPerSku: SPREAD_UNITS_PER_SKU,
    picker() {
      const next = xorshift32(0x5eed);
      return () => skus[next() % skus.length] as string;
    },
  };
}

export function hotWorkload(units: number, name = 'hot SKU'): Workload {
  const sku = 'HOT-1';
  return { name, skus: [sku], unitsPerSku: units, picker: () => () => sku };
}
