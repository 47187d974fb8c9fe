/**
 * `stock-ledger/otel`: OpenTelemetry spans and metrics for every ledger operation, from the
 * ledger's `node:diagnostics_channel` publications (`OPERATION_CHANNEL`). `@opentelemetry/api`
 * is an optional peer dependency: install it (and an SDK) to use this subpath; the ledger itself
 * never loads it.
 *
 * @example
 * ```ts
 * import { instrumentStockLedger } from 'stock-ledger/otel';
 * const stop = instrumentStockLedger(); // the global tracer and meter providers
 * // ... later
 * stop();
 * ```
 * @packageDocumentation
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { SpanKind, SpanStatusCode, metrics, trace, type Attributes, type MeterProvider, type Span, type TracerProvider } from '@opentelemetry/api';
import { OPERATION_CHANNEL, type OperationTrace } from '../src/index.js';

/** Options of {@link instrumentStockLedger}: the providers to use (the global ones when left out). */
export interface InstrumentOptions {
  tracerProvider?: TracerProvider;
  meterProvider?: MeterProvider;
}

/** The instrumentation scope name spans and metrics are reported under. */
export const INSTRUMENTATION_NAME = 'stock-ledger';

/**
 * Subscribes to the ledger's operation channel: one span per operation (`stock-ledger <kind>`,
 * attributes `stock_ledger.kind`, `.request_id`, `.reservation_id`, `.skus`, `.store`,
 * `.joined`, `.attempts`, `.outcome`, `.replayed`), status ERROR when it threw; a counter
 * `stock_ledger.operations` and a histogram `stock_ledger.operation.duration` (ms), both by
 * kind, store and outcome (`applied`, `replayed`, a rejection code, or an error code).
 * Returns the function that unsubscribes.
 */
export function instrumentStockLedger(options: InstrumentOptions = {}): () => void {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
  const count = meter.createCounter('stock_ledger.operations', { description: 'Ledger operations, by kind, store and outcome' });
  const duration = meter.createHistogram('stock_ledger.operation.duration', { description: 'Time of a ledger operation, retries included', unit: 'ms' });
  const open = new WeakMap<OperationTrace, { span: Span; startedMs: number }>();
  const finish = (t: OperationTrace, error: unknown): void => {
    const o = open.get(t);
    if (o === undefined) return;
    open.delete(t);
    const outcome = outcomeOf(t);
    o.span.setAttributes({ 'stock_ledger.attempts': t.attempts, 'stock_ledger.outcome': outcome, 'stock_ledger.replayed': t.replayed === true });
    if (error !== undefined) {
      o.span.recordException(error instanceof Error ? error : String(error));
      o.span.setStatus({ code: SpanStatusCode.ERROR, message: t.code ?? 'error' });
    }
    o.span.end();
    const by: Attributes = { 'stock_ledger.kind': t.kind, 'stock_ledger.store': t.store, 'stock_ledger.outcome': outcome };
    count.add(1, by);
    duration.record(performance.now() - o.startedMs, by);
  };
  const handlers = {
    start: (t: OperationTrace) => {
      const span = tracer.startSpan(`stock-ledger ${t.kind}`, { kind: SpanKind.INTERNAL, attributes: startAttributes(t) });
      open.set(t, { span, startedMs: performance.now() });
    },
    // Operations are async: the channel publishes asyncEnd for every one, after error when it threw.
    asyncEnd: (t: OperationTrace) => finish(t, t.error),
  };
  const channel = tracingChannel<unknown, OperationTrace>(OPERATION_CHANNEL);
  channel.subscribe(handlers as never);
  return () => channel.unsubscribe(handlers as never);
}

function startAttributes(t: OperationTrace): Attributes {
  const attributes: Attributes = { 'stock_ledger.kind': t.kind, 'stock_ledger.skus': t.skus, 'stock_ledger.store': t.store, 'stock_ledger.joined': t.joined };
  if (t.requestId !== null) attributes['stock_ledger.request_id'] = t.requestId;
  if (t.reservationId !== null) attributes['stock_ledger.reservation_id'] = t.reservationId;
  return attributes;
}

/** `applied`, `replayed`, or the rejection's or error's code. */
function outcomeOf(t: OperationTrace): string {
  if (t.ok === true) return t.replayed === true ? 'replayed' : 'applied';
  return t.code ?? 'error';
}
