/**
 * Tracing and metrics of ledger operations with OpenTelemetry, on the in-memory store:
 * `npx tsx examples/tracing.ts` (or `npm run tracing`). The ledger publishes every operation
 * on `node:diagnostics_channel`; `stock-ledger/otel` turns that into spans and metrics. Here
 * the SDK's in-memory exporters stand in for a collector.
 */
import { StockLedger } from 'stock-ledger';
import { MemoryStore } from 'stock-ledger/memory';
import { instrumentStockLedger } from 'stock-ledger/otel';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
const stop = instrumentStockLedger({ tracerProvider, meterProvider });

const ledger = new StockLedger({ store: new MemoryStore() });
await ledger.restock({ requestId: 'po-1', sku: 'MUG', qty: 2 });
await ledger.deduct({ requestId: 'order-1', sku: 'MUG', qty: 2 });
await ledger.deduct({ requestId: 'order-1', sku: 'MUG', qty: 2 }); // a retry of the same order: a replay
await ledger.deduct({ requestId: 'order-2', sku: 'MUG', qty: 1 }); // sold out
await ledger.deduct({ requestId: 'order-1', sku: 'MUG', qty: 1 }).catch(() => undefined); // the id reused: thrown
stop();

for (const span of spans.getFinishedSpans()) {
  const a = span.attributes;
  console.log(`span ${span.name}: ${String(a['stock_ledger.request_id'])} -> ${String(a['stock_ledger.outcome'])} (status ${span.status.code === 2 ? 'ERROR' : 'ok'})`);
}
await reader.forceFlush();
const points = metricExporter.getMetrics().flatMap((m) => m.scopeMetrics).flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'stock_ledger.operations')?.dataPoints ?? [];
for (const p of points) console.log(`metric stock_ledger.operations{kind=${String(p.attributes['stock_ledger.kind'])}, outcome=${String(p.attributes['stock_ledger.outcome'])}} = ${String(p.value)}`);
await ledger.close();
await meterProvider.shutdown();
