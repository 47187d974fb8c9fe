import fc from 'fast-check';
import { LIMITS, StockLedger } from '../../src/index.js';
import type { AdjustInput, DeductInput, JsonObject, Line, RestockInput, ReverseInput, StockStore } from '../../src/index.js';
import { assertEqual, show } from './assert.js';
import { checkInvariants } from './invariants.js';
import { ReferenceModel } from './model.js';
import { describeOp, requestIdOf, runOp, skusOf, type WriteOp } from './ops.js';
import { commandsReplayPath, runProperty } from './property.js';

const MAX = LIMITS.quantityMax;

/** A small SKU pool, with odd characters (braces, colon, newline, non-BMP) to catch encoding bugs. */
export const SKU_POOL: readonly string[] = ['A', 'B', 'sku {x}:1\n', 'Ω😀'];
/** A small request id pool, so replays and conflicts happen often. */
export const REQUEST_ID_POOL: readonly string[] = ['o1', 'o2', 'o3', 'id {x}:1\n', 'é😀'];
/** A SKU never written: must read as all zeros. */
const UNTOUCHED_SKU = 'never written';

const META_POOL: readonly JsonObject[] = [
  { order: 'o-1' },
  { by: 'alice', why: ['stocktake', 2], nested: { a: 1, b: null, c: true } },
  { 'odd {x}:1\n': 'é😀', n: -1.5 },
];

interface World {
  model: ReferenceModel;
  now: number;
  /** Every write op sent so far, for replays and conflicting re-sends. */
  sent: WriteOp[];
  /** The ops that were applied (not replays), for the all-or-none check. */
  applied: WriteOp[];
  fresh: number;
}

interface Real {
  ledger: StockLedger;
  clock: { now: number };
}

type IdSpec = { t: 'pool'; i: number } | { t: 'fresh' } | { t: 'used'; k: number };
type OfSpec = IdSpec | { t: 'deduct'; k: number };
type QtySpec = { t: 'n'; n: number } | { t: 'fill' } | { t: 'overfill' } | { t: 'max' } | { t: 'available' } | { t: 'over' };
type VersionSpec = { t: 'none' } | { t: 'current' } | { t: 'stale' } | { t: 'n'; n: number };
type ReverseQtySpec = { t: 'n'; n: number } | { t: 'remaining' } | { t: 'over' };

type WriteSpec =
  | { kind: 'restock'; id: IdSpec; sku: number; qty: QtySpec; meta: number }
  | { kind: 'deduct'; id: IdSpec; lines: Array<{ sku: number; qty: QtySpec }>; shorthand: boolean; meta: number }
  | { kind: 'adjust'; id: IdSpec; sku: number; onHand: { t: 'n'; n: number } | { t: 'current' } | { t: 'max' }; version: VersionSpec; meta: number }
  | {
      kind: 'reverse'; id: IdSpec; of: OfSpec; meta: number;
      /** `taken`: the SKU is picked among those the original took (else from the whole pool). */
      lines: Array<{ sku: number; taken: boolean; qty: ReverseQtySpec }> | null;
    };

type ReplayVariant = 'same' | 'reorder-meta' | 'split-lines' | 'other-form';
type Mutation = 'qty' | 'meta' | 'kind' | 'sku' | 'version';

const pick = <T>(pool: readonly T[], i: number): T => pool[((i % pool.length) + pool.length) % pool.length] as T;

function resolveId(w: World, spec: IdSpec): string {
  if (spec.t === 'pool') return pick(REQUEST_ID_POOL, spec.i);
  if (spec.t === 'fresh') return `n${(w.fresh += 1)}`;
  const used = w.sent[spec.k % Math.max(1, w.sent.length)];
  return used === undefined ? pick(REQUEST_ID_POOL, spec.k) : requestIdOf(used);
}

function resolveOf(w: World, spec: OfSpec): string {
  if (spec.t !== 'deduct') return resolveId(w, spec);
  const deducts = w.model.requestIds().filter((id) => w.model.kindOf(id) === 'deduct');
  return deducts.length === 0 ? pick(REQUEST_ID_POOL, spec.k) : pick(deducts, spec.k);
}

const withMeta = <T extends object>(input: T, meta: number): T & { meta?: JsonObject } =>
  meta < 0 ? input : { ...input, meta: structuredClone(pick(META_POOL, meta)) };

const clampQty = (n: number): number => Math.min(MAX, Math.max(1, n));

/** Turns an abstract write into a concrete op, reading the model for "current" values. */
function resolveWrite(w: World, spec: WriteSpec): WriteOp {
  const m = w.model;
  switch (spec.kind) {
    case 'restock': {
      const sku = pick(SKU_POOL, spec.sku);
      const onHand = m.level(sku).onHand;
      const q = spec.qty;
      const qty = q.t === 'n' ? q.n : q.t === 'fill' ? clampQty(MAX - onHand) : q.t === 'overfill' ? clampQty(MAX - onHand + 1) : MAX;
      const input: RestockInput = withMeta({ requestId: resolveId(w, spec.id), sku, qty }, spec.meta);
      return { kind: 'restock', input };
    }
    case 'deduct': {
      const requestId = resolveId(w, spec.id);
      const lines: Line[] = spec.lines.map(({ sku: i, qty: q }) => {
        const sku = pick(SKU_POOL, i);
        const available = m.level(sku).available;
        const qty = q.t === 'n' ? q.n : q.t === 'available' ? clampQty(available) : q.t === 'over' ? clampQty(available + 1) : MAX;
        return { sku, qty };
      });
      const first = lines[0] as Line;
      const input: DeductInput = spec.shorthand && lines.length === 1
        ? withMeta({ requestId, sku: first.sku, qty: first.qty }, spec.meta)
        : withMeta({ requestId, lines }, spec.meta);
      return { kind: 'deduct', input };
    }
    case 'adjust': {
      const sku = pick(SKU_POOL, spec.sku);
      const level = m.level(sku);
      const onHand = spec.onHand.t === 'n' ? spec.onHand.n : spec.onHand.t === 'current' ? level.onHand : MAX;
      const v = spec.version;
      const base = { requestId: resolveId(w, spec.id), sku, onHand };
      const input: AdjustInput = withMeta(
        v.t === 'none' ? base : {
          ...base,
          expectedVersion: v.t === 'n' ? v.n : v.t === 'current' ? level.version : level.version > 0 ? level.version - 1 : level.version + 1,
        },
        spec.meta,
      );
      return { kind: 'adjust', input };
    }
    case 'reverse': {
      const requestId = resolveId(w, spec.id);
      const of = resolveOf(w, spec.of);
      const base = { requestId, of };
      if (spec.lines === null) return { kind: 'reverse', input: withMeta(base, spec.meta) };
      const taken = m.request(of)?.entries.map((e) => e.sku) ?? [];
      const lines = spec.lines.map(({ sku: i, taken: fromTaken, qty: q }) => {
        const sku = fromTaken && taken.length > 0 ? pick(taken, i) : pick(SKU_POOL, i);
        const left = m.reversible(of, sku);
        return { sku, qty: q.t === 'n' ? q.n : q.t === 'remaining' ? clampQty(left) : clampQty(left + 1) };
      });
      const input: ReverseInput = withMeta({ ...base, lines }, spec.meta);
      return { kind: 'reverse', input };
    }
  }
}

/** Same keys and values, object keys in reverse order (must not change the fingerprint). */
function reorderKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reorderKeys) as T;
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).reverse()) out[key] = reorderKeys((value as Record<string, unknown>)[key]);
    return out as T;
  }
  return value;
}

/** Lines said another way with the same merged meaning: reversed, and the first line split in two. */
function splitLines(lines: readonly Line[]): Line[] {
  const out: Line[] = [];
  for (const line of [...lines].reverse()) {
    if (out.length === 0 && line.qty >= 2) out.push({ sku: line.sku, qty: 1 }, { sku: line.sku, qty: line.qty - 1 });
    else out.push({ ...line });
  }
  return out;
}

/** The same request, written differently but normalizing to the same payload. */
function replayOf(op: WriteOp, variant: ReplayVariant): WriteOp {
  const copy = structuredClone(op);
  switch (variant) {
    case 'same':
      return copy;
    case 'reorder-meta':
      if (copy.input.meta !== undefined) copy.input.meta = reorderKeys(copy.input.meta);
      return copy;
    case 'split-lines':
      if (copy.kind === 'deduct' && 'lines' in copy.input) return { kind: 'deduct', input: { ...copy.input, lines: splitLines(copy.input.lines) } };
      if (copy.kind === 'reverse' && copy.input.lines !== undefined) return { kind: 'reverse', input: { ...copy.input, lines: splitLines(copy.input.lines) } };
      return copy;
    case 'other-form': {
      if (copy.kind !== 'deduct') return copy;
      const { meta, requestId } = copy.input;
      const base = meta === undefined ? { requestId } : { requestId, meta };
      if (!('lines' in copy.input)) return { kind: 'deduct', input: { ...base, lines: [{ sku: copy.input.sku, qty: copy.input.qty }] } };
      const [only, ...rest] = copy.input.lines;
      if (only === undefined || rest.length > 0) return copy;
      return { kind: 'deduct', input: { ...base, sku: only.sku, qty: only.qty } };
    }
  }
}

const bump = (n: number): number => (n < MAX ? n + 1 : n - 1);

/** The same request id with a changed payload: a conflict if that id was applied. */
function mutate(op: WriteOp, mutation: Mutation): WriteOp {
  const copy = structuredClone(op);
  const { requestId, meta } = copy.input;
  const firstSku = skusOf(copy)[0] ?? pick(SKU_POOL, 0);
  switch (mutation) {
    case 'meta':
      copy.input.meta = { ...(meta ?? {}), changed: true };
      return copy;
    case 'kind':
      if (copy.kind === 'deduct') return { kind: 'restock', input: { requestId, sku: firstSku, qty: 1 } };
      return { kind: 'deduct', input: { requestId, sku: firstSku, qty: 1 } };
    case 'version':
      if (copy.kind === 'adjust') {
        if (copy.input.expectedVersion === undefined) copy.input.expectedVersion = 0;
        else delete copy.input.expectedVersion;
        return copy;
      }
      return mutate(copy, 'qty');
    case 'qty':
    case 'sku': {
      const other = (sku: string): string => pick(SKU_POOL, SKU_POOL.indexOf(sku) + 1);
      switch (copy.kind) {
        case 'restock':
        case 'adjust':
          if (mutation === 'sku') copy.input.sku = other(copy.input.sku);
          else if (copy.kind === 'restock') copy.input.qty = bump(copy.input.qty);
          else copy.input.onHand = bump(copy.input.onHand);
          return copy;
        case 'deduct': {
          const lines = 'lines' in copy.input ? copy.input.lines : [{ sku: copy.input.sku, qty: copy.input.qty }];
          const [first, ...rest] = lines;
          if (first === undefined) return copy;
          const changed = mutation === 'sku' ? { sku: other(first.sku), qty: first.qty } : { sku: first.sku, qty: bump(first.qty) };
          return { kind: 'deduct', input: { ...(meta === undefined ? {} : { meta }), requestId, lines: [changed, ...rest] } };
        }
        case 'reverse': {
          const [first, ...rest] = copy.input.lines ?? [];
          const changed = first === undefined
            ? { sku: firstSku, qty: 1 }
            : mutation === 'sku' ? { sku: other(first.sku), qty: first.qty } : { sku: first.sku, qty: bump(first.qty) };
          copy.input.lines = [changed, ...rest];
          return copy;
        }
      }
    }
  }
}

/** Sends one write to both sides and compares the outcome, then every level. */
async function exchange(w: World, r: Real, op: WriteOp, dtMs: number): Promise<void> {
  w.now += dtMs;
  r.clock.now = w.now;
  const expected = w.model.apply(op, w.now);
  const actual = await runOp(r.ledger, op);
  w.sent.push(op);
  if ('ok' in actual && actual.ok && 'replayed' in actual && !actual.replayed) w.applied.push(op);
  assertEqual(actual, expected, `outcome of ${describeOp(op)} at ${w.now}`);
  await compareLevels(w, r, `after ${describeOp(op)}`);
}

async function compareLevels(w: World, r: Real, when: string): Promise<void> {
  const skus = [...SKU_POOL, UNTOUCHED_SKU, pick(SKU_POOL, 0)];
  const actual = await r.ledger.stocks(skus);
  assertEqual(actual, skus.map((sku) => w.model.level(sku)), `levels ${when}`);
}

abstract class Step implements fc.AsyncCommand<World, Real> {
  protected last: string | null = null;
  check(): boolean {
    return true;
  }
  abstract run(w: World, r: Real): Promise<void>;
  abstract describe(): string;
  toString(): string {
    return this.last ?? this.describe();
  }
}

class WriteStep extends Step {
  constructor(readonly spec: WriteSpec, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const op = resolveWrite(w, this.spec);
    this.last = describeOp(op);
    await exchange(w, r, op, this.dtMs);
  }
  describe(): string {
    return `write ${show(this.spec)}`;
  }
}

class ReplayStep extends Step {
  constructor(readonly k: number, readonly variant: ReplayVariant, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const original = w.sent[this.k % Math.max(1, w.sent.length)];
    if (original === undefined) return;
    const op = replayOf(original, this.variant);
    this.last = `replay(${this.variant}) ${describeOp(op)}`;
    await exchange(w, r, op, this.dtMs);
  }
  describe(): string {
    return `replay #${this.k} ${this.variant}`;
  }
}

class ConflictStep extends Step {
  constructor(readonly k: number, readonly mutation: Mutation, readonly dtMs: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const original = w.sent[this.k % Math.max(1, w.sent.length)];
    if (original === undefined) return;
    const op = mutate(original, this.mutation);
    this.last = `changed(${this.mutation}) ${describeOp(op)}`;
    await exchange(w, r, op, this.dtMs);
  }
  describe(): string {
    return `changed payload of #${this.k} (${this.mutation})`;
  }
}

class EntriesStep extends Step {
  constructor(readonly after: { t: 'n'; n: number } | { t: 'end'; plus: number }, readonly sku: number | null, readonly limit: number) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const all = w.model.entries();
    const after = this.after.t === 'n' ? this.after.n : all.length + this.after.plus;
    const sku = this.sku === null ? null : pick(SKU_POOL, this.sku);
    const query = sku === null ? { after, limit: this.limit } : { after, sku, limit: this.limit };
    this.last = `entries(${show(query)})`;
    const page = await r.ledger.entries(query);
    const expected = all.filter((e) => e.seq > after && (sku === null || e.sku === sku)).slice(0, this.limit);
    const last = expected[expected.length - 1];
    assertEqual(page, { entries: expected, next: last === undefined ? null : last.seq }, this.last);
  }
  describe(): string {
    return `entries ${show([this.after, this.sku, this.limit])}`;
  }
}

class RequestStep extends Step {
  constructor(readonly id: IdSpec) {
    super();
  }
  async run(w: World, r: Real): Promise<void> {
    const requestId = this.id.t === 'fresh' ? `n${w.fresh + 1}` : resolveId(w, this.id);
    this.last = `request(${show(requestId)})`;
    assertEqual(await r.ledger.request(requestId), w.model.request(requestId), this.last);
  }
  describe(): string {
    return `request ${show(this.id)}`;
  }
}

const weighted = <T>(...items: Array<[number, fc.Arbitrary<T>]>): fc.Arbitrary<T> =>
  fc.oneof(...items.map(([weight, arbitrary]) => ({ weight, arbitrary })));

const skuIndex = fc.nat({ max: SKU_POOL.length - 1 });
const metaIndex = weighted<number>([4, fc.constant(-1)], [2, fc.nat({ max: META_POOL.length - 1 })]);
const dtMs = weighted<number>([1, fc.constant(0)], [3, fc.integer({ min: 1, max: 1000 })]);
const idSpec = weighted<IdSpec>(
  [5, fc.constant({ t: 'fresh' as const })],
  [2, fc.nat({ max: REQUEST_ID_POOL.length - 1 }).map((i) => ({ t: 'pool' as const, i }))],
  [1, fc.nat({ max: 60 }).map((k) => ({ t: 'used' as const, k }))],
);
const smallQty = (max: number): fc.Arbitrary<{ t: 'n'; n: number }> => fc.integer({ min: 1, max }).map((n) => ({ t: 'n' as const, n }));
const restockQty = weighted<QtySpec>(
  [8, smallQty(40)],
  [1, fc.constantFrom<QtySpec>({ t: 'fill' }, { t: 'overfill' }, { t: 'max' })],
);
const lineQty = weighted<QtySpec>(
  [8, smallQty(4)],
  [2, fc.constantFrom<QtySpec>({ t: 'available' }, { t: 'over' })],
  [1, fc.constant<QtySpec>({ t: 'max' })],
);

const writeSpec: fc.Arbitrary<WriteSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('restock' as const), id: idSpec, sku: skuIndex, qty: restockQty, meta: metaIndex }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('deduct' as const), id: idSpec, meta: metaIndex, shorthand: fc.boolean(),
      lines: weighted(
        [3, fc.array(fc.record({ sku: skuIndex, qty: lineQty }), { minLength: 1, maxLength: 2 })],
        [1, fc.array(fc.record({ sku: skuIndex, qty: lineQty }), { minLength: 3, maxLength: 5 })],
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const), id: idSpec, sku: skuIndex, meta: metaIndex,
      onHand: weighted<{ t: 'n'; n: number } | { t: 'current' } | { t: 'max' }>(
        [6, fc.nat({ max: 30 }).map((n) => ({ t: 'n' as const, n }))],
        [2, fc.constant({ t: 'current' as const })],
        [1, fc.constant({ t: 'max' as const })],
      ),
      version: weighted<VersionSpec>(
        [3, fc.constant({ t: 'none' as const })],
        [3, fc.constant({ t: 'current' as const })],
        [2, fc.constant({ t: 'stale' as const })],
        [1, fc.nat({ max: 5 }).map((n) => ({ t: 'n' as const, n }))],
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('reverse' as const), id: idSpec, meta: metaIndex,
      of: weighted<OfSpec>([6, fc.nat({ max: 20 }).map((k) => ({ t: 'deduct' as const, k }))], [1, idSpec]),
      lines: fc.option(
        fc.array(
          fc.record({
            sku: skuIndex,
            taken: weighted<boolean>([4, fc.constant(true)], [1, fc.constant(false)]),
            qty: weighted<ReverseQtySpec>([2, smallQty(2)], [3, fc.constant({ t: 'remaining' as const })], [1, fc.constant({ t: 'over' as const })]),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        { nil: null, freq: 2 },
      ),
    }),
  },
);

const steps: Array<fc.Arbitrary<fc.AsyncCommand<World, Real>>> = [
  writeSpec.chain((spec) => dtMs.map((dt) => new WriteStep(spec, dt))),
  writeSpec.chain((spec) => dtMs.map((dt) => new WriteStep(spec, dt))),
  writeSpec.chain((spec) => dtMs.map((dt) => new WriteStep(spec, dt))),
  fc.tuple(fc.nat({ max: 60 }), fc.constantFrom<ReplayVariant>('same', 'reorder-meta', 'split-lines', 'other-form'), dtMs)
    .map(([k, variant, dt]) => new ReplayStep(k, variant, dt)),
  fc.tuple(fc.nat({ max: 60 }), fc.constantFrom<Mutation>('qty', 'meta', 'kind', 'sku', 'version'), dtMs)
    .map(([k, mutation, dt]) => new ConflictStep(k, mutation, dt)),
  fc.tuple(
    weighted<{ t: 'n'; n: number } | { t: 'end'; plus: number }>(
      [3, fc.nat({ max: 8 }).map((n) => ({ t: 'n' as const, n }))],
      [1, fc.integer({ min: -1, max: 3 }).map((plus) => ({ t: 'end' as const, plus: Math.max(plus, 0) }))],
    ),
    fc.option(skuIndex, { nil: null }),
    weighted<number>([3, fc.integer({ min: 1, max: 4 })], [1, fc.constant(LIMITS.entriesPageMax)]),
  ).map(([after, sku, limit]) => new EntriesStep(after, sku, limit)),
  idSpec.map((id) => new RequestStep(id)),
];

/**
 * Model-based differential test: random command sequences against the store and the
 * {@link ReferenceModel}; every outcome and every level must be the model's. At the end the
 * whole entry feed and every request record must be the model's, and the invariants hold.
 */
export async function differentialProperty(
  caseName: string,
  createStore: () => StockStore | Promise<StockStore>,
  numRuns: number,
): Promise<void> {
  const initialStock = fc.array(fc.nat({ max: 60 }), { minLength: SKU_POOL.length, maxLength: SKU_POOL.length });
  const commands = fc.commands(steps, { maxCommands: 60, size: 'large', ...commandsReplayPath() });
  const property = fc.asyncProperty(initialStock, commands, async (initial, commands) => {
    const clock = { now: 1_000_000 };
    const ledger = new StockLedger({ store: await createStore(), clock: () => clock.now });
    const world: World = { model: new ReferenceModel(), now: clock.now, sent: [], applied: [], fresh: 0 };
    try {
      for (const [i, qty] of initial.entries()) {
        if (qty > 0) await exchange(world, { ledger, clock }, { kind: 'restock', input: { requestId: `initial-${i}`, sku: pick(SKU_POOL, i), qty } }, 0);
      }
      await fc.asyncModelRun(() => ({ model: world, real: { ledger, clock } }), commands);
      await finalComparison(world, ledger);
    } finally {
      await ledger.close();
    }
  });
  await runProperty(caseName, property, numRuns);
}

async function finalComparison(w: World, ledger: StockLedger): Promise<void> {
  const { entries } = await checkInvariants(ledger, {
    operations: w.applied.map((op) => ({ requestId: requestIdOf(op), skus: skusOf(op) })),
  });
  assertEqual(entries, w.model.entries(), 'the whole entry feed');
  const ids = new Set([...REQUEST_ID_POOL, ...w.sent.map(requestIdOf)]);
  for (const id of ids) assertEqual(await ledger.request(id), w.model.request(id), `request(${show(id)})`);
}
