import type { StockLedger } from '../src/index.js';
import { deepEqual, fail, show } from './assert.js';
import { checkLinearizable, type HistoryEvent, type SequentialSpec } from './linearizability.js';
import type { ReferenceModel } from './model.js';
import { describeOp, runOp, type Op, type Outcome } from './ops.js';

/** One call as the sequential spec sees it: the op and the clock reading it was invoked with. */
export interface Call {
  op: Op;
  at: number;
}

export type CallEvent = HistoryEvent<Call, Outcome>;

/** The reference model as a sequential spec for {@link checkLinearizable}. */
export function modelSpec(initial: ReferenceModel): SequentialSpec<ReferenceModel, Call, Outcome> {
  return {
    initial,
    apply: (state, call) => {
      const next = state.clone();
      const output = next.apply(call.op, call.at);
      return { state: next, output };
    },
    equal: (expected, observed) => deepEqual(observed, expected),
    key: (state) => state.key(),
  };
}

/** Records invocations and responses on one logical clock. */
export class HistoryRecorder {
  #tick = 0;
  readonly events: CallEvent[] = [];
  /** Errors that are not `StockLedgerError`s: always a failure. */
  readonly unexpected: unknown[] = [];

  /**
   * Invokes `op` now (reading `at` synchronously, as the ledger reads its clock) and records
   * the response when it comes.
   */
  invoke(ledger: StockLedger, op: Op, at: number): Promise<void> {
    const invokedAt = (this.#tick += 1);
    return runOp(ledger, op).then(
      (output) => {
        this.events.push({ input: { op, at }, output, invokedAt, respondedAt: (this.#tick += 1) });
      },
      (error: unknown) => {
        this.unexpected.push(error);
      },
    );
  }
}

/** Throws a readable failure unless the history is linearizable from `initial`. */
export function assertLinearizable(events: readonly CallEvent[], initial: ReferenceModel, context: string): void {
  const ordered = [...events].sort((a, b) => a.invokedAt - b.invokedAt);
  const result = checkLinearizable(ordered, modelSpec(initial));
  if (result.ok) return;
  const lines = ordered.map((e, i) => `  #${i} [${e.invokedAt}..${e.respondedAt}] at=${e.input.at} ${describeOp(e.input.op)}\n      -> ${show(e.output)}`);
  const prefix = result.longestPrefix.map((i) => `#${i}`).join(', ');
  fail(
    `${context}: history is ${result.inconclusive ? 'not proven linearizable (search budget exhausted)' : 'NOT linearizable'}.\n` +
      `Longest valid prefix of a sequential order: [${prefix}] (${result.explored} states explored).\n` +
      `Calls, with [invoked..responded] logical times:\n${lines.join('\n')}`,
  );
}
