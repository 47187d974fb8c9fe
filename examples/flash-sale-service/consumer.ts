/**
 * Orders from a queue: a RabbitMQ consumer (amqplib) that deducts each order message with the
 * message's order id as the request id, and acknowledges it only after the ledger answered. A
 * consumer that dies before its ack (a crash, SIGKILL, a lost connection) leaves the message
 * unacknowledged, so RabbitMQ delivers it again; the second delivery is then a replay, never a
 * second sale. Nothing is lost and nothing is applied twice, without any bookkeeping here.
 *
 *   npm run consume -- --amqp amqp://127.0.0.1 --queue orders --store sqlite:flash-sale-service.db
 *
 * Why RabbitMQ: a classic work queue with per-message acknowledgements and redelivery of what a
 * dead consumer held, which is exactly the contract the ledger needs from a broker (at-least-once
 * delivery); it runs here as a plain Debian service. A message is JSON:
 * `{ "orderId": "...", "lines": [{ "sku": "...", "qty": 1 }] }`.
 *
 * Per message: applied, replayed or refused (sold out): ack, the ledger answered for good.
 * `STORE_UNAVAILABLE`: nack with requeue after a pause (the outcome is unknown; a later delivery
 * replays or applies). A message that can never succeed (not JSON, no order id, bad lines, or an
 * order id reused with other lines): reject without requeue, logged.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp, { type Channel, type ConsumeMessage } from 'amqplib';
import { StockLedger, isStockLedgerError, type OrderLine } from 'stock-ledger';
import { openStore } from './stores.js';

export interface ConsumerOptions {
  ledger: StockLedger;
  /** The broker, as an AMQP URL (default amqp://127.0.0.1). */
  url?: string;
  queue: string;
  /** Messages held unacknowledged at once (default 32): the ledger sees that many in flight. */
  prefetch?: number;
  /** Called after each message is settled (for progress output and tests). */
  onSettled?: (event: SettledEvent) => void;
  /**
   * Time each order takes before its deduct, in ms (default 0): the payment or fraud check a real
   * consumer awaits first. The crash test uses it so the kill finds orders in hand.
   */
  workMs?: number;
}

export interface SettledEvent {
  orderId: string | null;
  result: 'applied' | 'replayed' | 'refused' | 'rejected' | 'requeued';
  redelivered: boolean;
}

/** What the consumer handles, counted since it started. */
export type ConsumerCounts = Record<SettledEvent['result'], number>;

export interface RunningConsumer {
  counts: ConsumerCounts;
  /** Stops taking messages, waits for the ones in hand to be settled, closes the connection. */
  stop(): Promise<void>;
}

const UNAVAILABLE_PAUSE_MS = 200;

interface OrderMessage {
  orderId: string;
  lines: OrderLine[];
}

function parseOrder(content: Buffer): OrderMessage | null {
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<OrderMessage>;
    if (typeof value.orderId !== 'string' || value.orderId === '' || !Array.isArray(value.lines)) return null;
    return { orderId: value.orderId, lines: value.lines };
  } catch {
    return null;
  }
}

async function settle(ledger: StockLedger, channel: Channel, message: ConsumeMessage, workMs: number): Promise<SettledEvent> {
  const { redelivered } = message.fields;
  const order = parseOrder(message.content);
  if (order === null) {
    channel.reject(message, false);
    return { orderId: null, result: 'rejected', redelivered };
  }
  if (workMs > 0) await sleep(workMs);
  try {
    const outcome = await ledger.deduct({ requestId: order.orderId, lines: order.lines });
    channel.ack(message);
    return { orderId: order.orderId, result: !outcome.ok ? 'refused' : outcome.replayed ? 'replayed' : 'applied', redelivered };
  } catch (error) {
    if (isStockLedgerError(error) && error.code === 'STORE_UNAVAILABLE') {
      await sleep(UNAVAILABLE_PAUSE_MS);
      channel.nack(message, false, true);
      return { orderId: order.orderId, result: 'requeued', redelivered };
    }
    // INVALID_INPUT, IDEMPOTENCY_CONFLICT: no delivery of this message can ever succeed.
    console.error(`order ${order.orderId}: ${error instanceof Error ? error.message : String(error)}; rejected`);
    channel.reject(message, false);
    return { orderId: order.orderId, result: 'rejected', redelivered };
  }
}

/**
 * Consumes the queue until stopped.
 *
 * @example
 * const consumer = await runConsumer({ ledger, queue: 'orders' });
 * process.on('SIGTERM', () => void consumer.stop());
 */
export async function runConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const connection = await amqp.connect(options.url ?? 'amqp://127.0.0.1');
  const channel = await connection.createChannel();
  await channel.assertQueue(options.queue, { durable: true });
  await channel.prefetch(options.prefetch ?? 32);
  const counts: ConsumerCounts = { applied: 0, replayed: 0, refused: 0, rejected: 0, requeued: 0 };
  const inHand = new Set<Promise<void>>();
  const { consumerTag } = await channel.consume(options.queue, (message) => {
    if (message === null) return;
    const done = settle(options.ledger, channel, message, options.workMs ?? 0).then((event) => {
      counts[event.result] += 1;
      options.onSettled?.(event);
    }).finally(() => inHand.delete(done));
    inHand.add(done);
  }, { noAck: false });
  return {
    counts,
    async stop() {
      await channel.cancel(consumerTag);
      await Promise.all(inHand);
      await connection.close();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      amqp: { type: 'string', default: 'amqp://127.0.0.1' },
      queue: { type: 'string', default: 'orders' },
      store: { type: 'string', default: 'sqlite:flash-sale-service.db' },
      prefetch: { type: 'string', default: '32' },
      'work-ms': { type: 'string', default: '0' },
    },
  });
  const opened = await openStore(values.store);
  const ledger = new StockLedger({ store: opened.store });
  const consumer = await runConsumer({
    ledger, url: values.amqp, queue: values.queue, prefetch: Number(values.prefetch), workMs: Number(values['work-ms']),
    // One line per message, for whoever watches (the crash test reads it).
    onSettled: (event) => console.log(`${event.result} ${event.orderId ?? '-'}${event.redelivered ? ' redelivered' : ''}`),
  });
  console.log(`consuming ${values.queue} on ${values.amqp} into ${opened.label}`);
  const stop = (): void => {
    void consumer.stop().then(() => ledger.close()).then(() => opened.disconnect()).then(() => {
      console.log(`stopped: ${JSON.stringify(consumer.counts)}`);
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
