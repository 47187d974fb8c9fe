/**
 * A small Wing-Gong linearizability checker (Wing & Gong 1993, with the memoization of Lowe's
 * and Horn & Kroening's variants): is there one sequential order of the calls that respects
 * real time (a call that returned before another was invoked comes first) and in which the
 * sequential spec gives every call the answer it really got?
 */

/** One completed call: its input, what it returned, and when it was invoked and returned. */
export interface HistoryEvent<I, O> {
  input: I;
  output: O;
  /** Logical time of the invocation; any increasing counter works. */
  invokedAt: number;
  /** Logical time of the response, on the same clock; greater than `invokedAt`. */
  respondedAt: number;
}

/** A sequential specification. `apply` must not change `state`: it returns a new one. */
export interface SequentialSpec<S, I, O> {
  initial: S;
  apply(state: S, input: I): { state: S; output: O };
  /** Whether the spec's answer matches the observed one. */
  equal(expected: O, observed: O): boolean;
  /** Text equal for equal states; enables memoization (strongly advised). */
  key?(state: S): string;
}

export type LinearizabilityResult =
  | { ok: true; /** Indexes into the history, in a valid sequential order. */ order: number[] }
  | {
      ok: false;
      /** True when the search budget ran out before an answer (treat as a failure to prove). */
      inconclusive: boolean;
      /** The longest prefix of a valid order found, as indexes into the history. */
      longestPrefix: number[];
      explored: number;
    };

/** Histories above this size are refused: the search is exponential. */
export const HISTORY_EVENTS_MAX = 30;

/**
 * Checks a complete history against a sequential spec. Keep histories small (up to about
 * 10 calls); the search explores at most `stepsMax` states.
 *
 * @example
 * ```ts
 * const result = checkLinearizable(history, { initial: 0, apply: (n, d: number) => ({ state: n + d, output: n + d }), equal: (a, b) => a === b });
 * if (!result.ok) throw new Error('not linearizable');
 * ```
 */
export function checkLinearizable<S, I, O>(
  history: ReadonlyArray<HistoryEvent<I, O>>,
  spec: SequentialSpec<S, I, O>,
  options: { stepsMax?: number } = {},
): LinearizabilityResult {
  const count = history.length;
  if (count > HISTORY_EVENTS_MAX) throw new RangeError(`history of ${count} events is above ${HISTORY_EVENTS_MAX}`);
  for (const event of history) {
    if (!(event.respondedAt > event.invokedAt)) throw new RangeError(`event responded at ${event.respondedAt}, not after its invocation at ${event.invokedAt}`);
  }
  const stepsMax = options.stepsMax ?? 200_000;
  const visited = new Set<string>();
  const order: number[] = [];
  let longestPrefix: number[] = [];
  let explored = 0;
  let exhausted = false;

  const search = (done: number, state: S): boolean => {
    if (order.length === count) return true;
    // The earliest response among pending calls: only calls invoked before it may go next.
    let earliestResponse = Infinity;
    for (let i = 0; i < count; i += 1) {
      if ((done & (1 << i)) === 0) earliestResponse = Math.min(earliestResponse, (history[i] as HistoryEvent<I, O>).respondedAt);
    }
    for (let i = 0; i < count; i += 1) {
      if ((done & (1 << i)) !== 0) continue;
      const event = history[i] as HistoryEvent<I, O>;
      if (event.invokedAt > earliestResponse) continue;
      explored += 1;
      if (explored > stepsMax) {
        exhausted = true;
        return false;
      }
      const next = spec.apply(state, event.input);
      if (!spec.equal(next.output, event.output)) continue;
      const nextDone = done | (1 << i);
      if (spec.key !== undefined) {
        const memo = `${nextDone}|${spec.key(next.state)}`;
        if (visited.has(memo)) continue;
        visited.add(memo);
      }
      order.push(i);
      if (order.length > longestPrefix.length) longestPrefix = [...order];
      if (search(nextDone, next.state)) return true;
      order.pop();
      if (exhausted) return false;
    }
    return false;
  };

  if (search(0, spec.initial)) return { ok: true, order: [...order] };
  return { ok: false, inconclusive: exhausted, longestPrefix, explored };
}
