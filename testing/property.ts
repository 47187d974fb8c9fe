import fc from 'fast-check';
import { ConformanceError } from './assert.js';

type Env = Record<string, string | undefined>;

function env(): Env {
  return (globalThis as { process?: { env?: Env } }).process?.env ?? {};
}

/**
 * `{ seed, path }` from `STOCK_LEDGER_SEED` and `STOCK_LEDGER_PATH` when set, to replay a
 * failure printed by {@link runProperty}.
 */
export function replayParameters(): { seed?: number; path?: string } {
  const out: { seed?: number; path?: string } = {};
  const seed = env()['STOCK_LEDGER_SEED'];
  const path = env()['STOCK_LEDGER_PATH'];
  if (seed !== undefined && seed !== '') {
    const n = Number(seed);
    if (!Number.isInteger(n)) throw new ConformanceError(`STOCK_LEDGER_SEED must be an integer, got ${JSON.stringify(seed)}`);
    out.seed = n;
  }
  if (path !== undefined && path !== '') out.path = path;
  return out;
}

/** `replayPath` for `fc.commands`, from `STOCK_LEDGER_REPLAY_PATH` (printed as `replayPath=` in a failure). */
export function commandsReplayPath(): { replayPath?: string } {
  const replayPath = env()['STOCK_LEDGER_REPLAY_PATH'];
  return replayPath === undefined || replayPath === '' ? {} : { replayPath };
}

/**
 * Runs a fast-check property and, when it fails, throws an error naming the case, the seed and
 * the path (and how to replay them), followed by fast-check's own report and counterexample.
 */
export async function runProperty<Ts>(caseName: string, property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(property, { numRuns, ...replayParameters() });
  if (!details.failed) return;
  const report = fc.defaultReportMessage(details) ?? 'property failed';
  const replay =
    `STOCK_LEDGER_SEED=${details.seed}` +
    (details.counterexamplePath === null ? '' : ` STOCK_LEDGER_PATH=${JSON.stringify(details.counterexamplePath)}`);
  throw new ConformanceError(
    `${caseName}: property failed (seed ${details.seed}, path ${JSON.stringify(details.counterexamplePath)}).\n` +
      `Replay with: ${replay} (plus STOCK_LEDGER_REPLAY_PATH=<replayPath below>, if any) and a test-name filter for this case.\n` +
      `${report}\n\nFailure: ${failureText(details.errorInstance)}`,
    { cause: details.errorInstance },
  );
}

/**
 * Seeds for `count` seeded runs that are not fast-check properties (floods, skewed clocks):
 * `STOCK_LEDGER_SEED` alone when it is set, to replay one; else fresh seeds, which each run
 * prints with its failure.
 *
 * @example
 * ```ts
 * for (const seed of runSeeds(3)) await flood(createStore, seed);
 * ```
 */
export function runSeeds(count: number): number[] {
  const { seed } = replayParameters();
  if (seed !== undefined) return [seed];
  // Unseeded on purpose, so every run tries new ones; never unprinted: a failure names its seed.
  return Array.from({ length: count }, () => Math.floor(Math.random() * 2 ** 31));
}

/**
 * The error of a failed seeded run: its seed and how to replay it, then what failed.
 *
 * @example
 * ```ts
 * try { await flood(seed); } catch (error) { throw seededFailure('reservation flood', seed, error); }
 * ```
 */
export function seededFailure(what: string, seed: number, error: unknown): ConformanceError {
  return new ConformanceError(
    `${what} failed, seed ${seed}. Replay with: STOCK_LEDGER_SEED=${seed} and a test-name filter for this case.\n` +
      `Failure: ${failureText(error)}`,
    { cause: error },
  );
}

/** Number of runs for a property: `base * runsScale`, at least 1. */
export function runs(base: number, runsScale: number): number {
  return Math.max(1, Math.round(base * runsScale));
}

function failureText(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}
