/**
 * The closed-loop load generator of `npm run bench`: N workers, each awaiting one operation at a
 * time, for a fixed time. Latencies go into a log-bucketed histogram of fixed size, so a long
 * run on a fast store costs no more memory than a short one.
 */

/** Buckets per doubling: a percentile is off by at most about 1.1%. */
const BUCKETS_PER_OCTAVE = 64;
/** The smallest latency told apart, in ms (1/64 µs); anything below lands in bucket 0. */
const LATENCY_MS_MIN = 2 ** -16;
/** 2^-16 ms to 2^20 ms (about 17 minutes): 36 doublings. */
const OCTAVES = 36;
const BUCKET_COUNT = OCTAVES * BUCKETS_PER_OCTAVE;

/** Counts of latencies in log-spaced buckets: constant memory, percentiles to about 1%. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKET_COUNT);
  #total = 0;

  record(latencyMs: number): void {
    const index = Math.floor(Math.log2(Math.max(latencyMs, LATENCY_MS_MIN) / LATENCY_MS_MIN) * BUCKETS_PER_OCTAVE);
    const bucket = Math.min(index, BUCKET_COUNT - 1);
    this.#counts[bucket] = (this.#counts[bucket] ?? 0) + 1;
    this.#total += 1;
  }

  get count(): number {
    return this.#total;
  }

  /** The latency in ms below which `fraction` of the recorded ones lie (bucket midpoint). */
  percentile(fraction: number): number {
    if (this.#total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(fraction * this.#total));
    let seen = 0;
    for (let index = 0; index < BUCKET_COUNT; index += 1) {
      seen += this.#counts[index] ?? 0;
      if (seen >= rank) return LATENCY_MS_MIN * 2 ** ((index + 0.5) / BUCKETS_PER_OCTAVE);
    }
    return LATENCY_MS_MIN * 2 ** OCTAVES;
  }
}

/** What one measurement gives: throughput, latency, and how the operations ended. */
export interface Measurement {
  inFlight: number;
  /** Completed operations, rejected ones included. */
  ops: number;
  /** Units sold, over all lines of all operations (a one-line deduct sells 1, a released checkout 0). */
  unitsSold: number;
  /** Operations rejected as short of stock. */
  rejected: number;
  elapsedMs: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** ops/s of each slice, to show how steady the machine was. */
  sliceOpsPerSecond: number[];
}

export interface LoadOptions {
  /** Workers, each with one operation in flight. */
  inFlight: number;
  /** Hard cap on operations started over all slices, whatever the clock says. */
  opsMax: number;
  /** Operation `i`: resolves to the units it sold, or null if it was rejected as short of stock; throws on anything else. */
  operation: (i: number) => Promise<number | null>;
}

/**
 * A closed loop on one contender, run in one or more time slices: the bench interleaves the
 * slices of the contenders it compares, so a slow spell of a shared machine hits them alike.
 * Counts, latencies and operation numbers carry on from one slice to the next.
 */
export class LoadSession {
  readonly #options: LoadOptions;
  readonly #histogram = new LatencyHistogram();
  readonly #slices: number[] = [];
  #started = 0;
  #unitsSold = 0;
  #rejected = 0;
  #elapsedMs = 0;

  constructor(options: LoadOptions) {
    this.#options = options;
  }

  /**
   * Runs the workers until `durationMs` has passed: no worker starts an operation after that,
   * and the slice lasts until the last one ends, so the tail is counted.
   */
  async run(durationMs: number): Promise<void> {
    const opsBefore = this.#histogram.count;
    const startedAt = performance.now();
    const deadline = startedAt + durationMs;
    const worker = async (): Promise<void> => {
      while (this.#started < this.#options.opsMax) {
        const opStartedAt = performance.now();
        if (opStartedAt >= deadline) return;
        const units = await this.#options.operation(this.#started++);
        this.#histogram.record(performance.now() - opStartedAt);
        if (units === null) this.#rejected += 1;
        else this.#unitsSold += units;
      }
    };
    await Promise.all(Array.from({ length: this.#options.inFlight }, worker));
    const elapsedMs = performance.now() - startedAt;
    this.#elapsedMs += elapsedMs;
    this.#slices.push(((this.#histogram.count - opsBefore) / elapsedMs) * 1000);
  }

  result(): Measurement {
    const ops = this.#histogram.count;
    return {
      inFlight: this.#options.inFlight,
      ops,
      unitsSold: this.#unitsSold,
      rejected: this.#rejected,
      elapsedMs: this.#elapsedMs,
      opsPerSecond: (ops / this.#elapsedMs) * 1000,
      p50Ms: this.#histogram.percentile(0.5),
      p99Ms: this.#histogram.percentile(0.99),
      sliceOpsPerSecond: [...this.#slices],
    };
  }
}
