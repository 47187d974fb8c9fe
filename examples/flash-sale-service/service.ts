/**
 * A flash-sale service on the ledger (Fastify 5): orders keyed by the `Idempotency-Key` header,
 * carts held, bought or let go, stock reads, the entries feed and the stock events as server-sent
 * events (events.ts), and a live page. The ledger makes every rule hold: the header's key is the request id, so a retried POST
 * is a replay and never a second sale, whatever the network did.
 *
 * Idempotency-Key rules (POST /orders and POST /carts/:id/hold):
 * - missing: 400;
 * - reused with another body (any field): 422, since the body's hash is part of the request;
 * - reused while the first is still running: the second waits for the ledger's atomic step and
 *   gets its outcome as a replay (no 409): the ledger serializes requests with one id;
 * - reused after completion: the original status and body, byte for byte, with
 *   `Idempotent-Replayed: true`;
 * - a sold-out answer (409) is not kept: the ledger records nothing for a refusal, so the same key
 *   sent again is decided again (it may succeed after a restock).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isStockLedgerError, type Applied, type Level, type Rejection, type StockLedger } from 'stock-ledger';
import { positionOf, streamEvents } from './events.js';
import { errorProblem, problem, rejectionProblem, type Problem } from './problem.js';

export interface ServiceOptions {
  ledger: StockLedger;
  /** A cart hold's lifetime when the request names none, in ms (default 10 minutes). */
  holdTtlMs?: number;
  /** How often an events stream looks for new entries once caught up, in ms (default 250). */
  pollMs?: number;
  /** Fastify's logger (default off). */
  logger?: boolean;
}

/** What the live page shows beside the feed: requests the ledger answered, by outcome. */
export interface Counters {
  applied: number;
  replayed: number;
  rejected: number;
  conflicts: number;
}

const LINES_MAX = 100;
const LEVEL_PAGES_MAX = 100;
const PUBLIC = new URL('./public/', import.meta.url);

const LINE_SCHEMA = {
  type: 'object',
  required: ['sku', 'qty'],
  properties: { sku: { type: 'string', minLength: 1, maxLength: 200 }, qty: { type: 'integer', minimum: 1, maximum: 1_000_000 } },
} as const;
const LINES_SCHEMA = { type: 'array', minItems: 1, maxItems: LINES_MAX, items: LINE_SCHEMA } as const;

interface OrderBody {
  lines: Array<{ sku: string; qty: number }>;
  [field: string]: unknown;
}

/** JSON with object keys sorted, so two bodies that mean the same hash the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const bodyHash = (body: unknown): string => createHash('sha256').update(canonical(body)).digest('hex');

/** An order's response body, built from the outcome alone (never from `replayed`), so a replay is the same bytes. */
function orderJson(orderId: string, outcome: Applied): string {
  return JSON.stringify({
    orderId,
    status: 'confirmed',
    lines: outcome.entries.map((e) => ({ sku: e.sku, qty: -e.onHandDelta, seq: e.seq })),
    stock: outcome.levels.map((l) => ({ sku: l.sku, available: l.available })),
  });
}

function holdJson(cartId: string, outcome: Applied & { reservation: { expiresAt: number; lines: Array<{ sku: string; qty: number }> } }): string {
  return JSON.stringify({ cartId, status: 'held', expiresAt: outcome.reservation.expiresAt, lines: outcome.reservation.lines });
}

function cartJson(cartId: string, status: 'committed' | 'released', outcome: Applied): string {
  const moved = outcome.entries.map((e) => ({ sku: e.sku, qty: status === 'committed' ? -e.onHandDelta : -e.reservedDelta }));
  return JSON.stringify({ cartId, status, lines: moved.filter((l) => l.qty !== 0) });
}

function levelJson(level: Level): Record<string, unknown> {
  return { sku: level.sku, onHand: level.onHand, reserved: level.reserved, available: level.available, version: level.version };
}

function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  if (body.status === 503) void reply.header('retry-after', '1');
  return reply.code(body.status).type('application/problem+json').send(JSON.stringify(body));
}

/** The Idempotency-Key header: one non-empty value, or a 400 sent. */
function idempotencyKey(request: FastifyRequest, reply: FastifyReply): string | null {
  const key = request.headers['idempotency-key'];
  if (typeof key === 'string' && key.trim() !== '') return key.trim();
  void sendProblem(reply, problem(400, 'MISSING_IDEMPOTENCY_KEY', `${request.method} ${request.url} needs one Idempotency-Key header`));
  return null;
}

/**
 * Answers an operation: its body (built by `json`) with `status` when applied, the same with
 * `Idempotent-Replayed: true` when replayed, or the refusal as a problem.
 */
function answer<T extends Applied>(
  reply: FastifyReply, counters: Counters, status: number, outcome: T | Rejection, json: (applied: T) => string,
): FastifyReply {
  if (!outcome.ok) {
    counters.rejected += 1;
    return sendProblem(reply, rejectionProblem(outcome));
  }
  if (outcome.replayed) {
    counters.replayed += 1;
    void reply.header('idempotent-replayed', 'true');
  } else {
    counters.applied += 1;
  }
  return reply.code(status).type('application/json; charset=utf-8').send(json(outcome));
}

/**
 * The service, not listening yet: call `listen`, or `inject` in tests. Closing it ends the
 * event streams and waits for requests in flight; it does not close the ledger.
 *
 * @example
 * const app = buildService({ ledger });
 * await app.listen({ port: 3000 });
 */
export function buildService(options: ServiceOptions): FastifyInstance {
  const { ledger } = options;
  const holdTtlMs = options.holdTtlMs ?? 600_000;
  const pollMs = options.pollMs ?? 250;
  const counters: Counters = { applied: 0, replayed: 0, rejected: 0, conflicts: 0 };
  const app = Fastify({ logger: options.logger ?? false });
  const streams = new Set<AbortController>();

  app.decorate('counters', counters);
  app.setErrorHandler((error: Error & { validation?: unknown; statusCode?: number }, _request, reply) => {
    if (error.validation !== undefined) return sendProblem(reply, problem(400, 'INVALID_INPUT', error.message));
    if (isStockLedgerError(error) && error.code === 'IDEMPOTENCY_CONFLICT') counters.conflicts += 1;
    if (!isStockLedgerError(error) && error.statusCode !== undefined && error.statusCode < 500) {
      return sendProblem(reply, problem(error.statusCode, 'INVALID_INPUT', error.message));
    }
    return sendProblem(reply, errorProblem(error));
  });
  // Closing: event streams never end by themselves, so end them first; and every answer sent
  // from then on says `connection: close`, so a keep-alive connection whose request was in
  // flight closes once answered instead of holding the close until its idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    for (const stream of streams) stream.abort();
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) void reply.header('connection', 'close');
    return payload;
  });

  app.post<{ Body: OrderBody }>('/orders', { schema: { body: { type: 'object', required: ['lines'], properties: { lines: LINES_SCHEMA } } } },
    async (request, reply) => {
      const key = idempotencyKey(request, reply);
      if (key === null) return reply;
      const outcome = await ledger.deduct({ requestId: key, lines: request.body.lines, meta: { bodySha256: bodyHash(request.body) } });
      return answer(reply, counters, 201, outcome, (applied) => orderJson(key, applied));
    });

  app.post<{ Params: { id: string }; Body: { lines: OrderBody['lines']; ttlMs?: number } }>('/carts/:id/hold', {
    schema: { body: { type: 'object', required: ['lines'], properties: { lines: LINES_SCHEMA, ttlMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 } } } },
  }, async (request, reply) => {
    const { id } = request.params;
    const outcome = await ledger.reserve({ requestId: id, lines: request.body.lines, ttlMs: request.body.ttlMs ?? holdTtlMs });
    return answer(reply, counters, 201, outcome, (applied) => holdJson(id, applied));
  });

  app.post<{ Params: { id: string }; Body: { lines?: OrderBody['lines'] } | undefined }>('/carts/:id/commit', {
    schema: { body: { type: ['object', 'null'], properties: { lines: LINES_SCHEMA } } },
  }, async (request, reply) => {
    const { id } = request.params;
    const lines = request.body?.lines;
    const outcome = await ledger.commit(lines === undefined ? { reservationId: id } : { reservationId: id, lines });
    return answer(reply, counters, 200, outcome, (applied) => cartJson(id, 'committed', applied));
  });

  app.post<{ Params: { id: string } }>('/carts/:id/release', async (request, reply) => {
    const { id } = request.params;
    const outcome = await ledger.release({ reservationId: id });
    return answer(reply, counters, 200, outcome, (applied) => cartJson(id, 'released', applied));
  });

  app.get<{ Params: { sku: string } }>('/stock/:sku', async (request) => levelJson(await ledger.stock(request.params.sku)));

  app.get<{ Querystring: { below?: number } }>('/stock', {
    schema: { querystring: { type: 'object', properties: { below: { type: 'integer' } } } },
  }, async (request) => {
    const { below } = request.query;
    const levels: Array<Record<string, unknown>> = [];
    let after: string | null = null;
    for (let page = 0; page < LEVEL_PAGES_MAX; page += 1) {
      const query = { limit: 1000, ...(after === null ? {} : { after }), ...(below === undefined ? {} : { availableAtMost: below - 1 }) };
      const found = await ledger.levels(query);
      levels.push(...found.levels.map(levelJson));
      after = found.next;
      if (after === null) break;
    }
    return { levels };
  });

  app.get<{ Querystring: { after?: number } }>('/events', {
    schema: { querystring: { type: 'object', properties: { after: { type: 'integer', minimum: 0 } } } },
  }, (request, reply) => {
    const lastId = request.headers['last-event-id'];
    const from = positionOf(typeof lastId === 'string' ? lastId : request.query.after?.toString());
    const stop = new AbortController();
    streams.add(stop);
    request.raw.on('close', () => stop.abort());
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const write = (block: string): void => void reply.raw.write(block);
    void streamEvents({ ledger, from, pollMs, signal: stop.signal, write, stats: () => JSON.stringify(counters) })
      .catch((error: unknown) => app.log.error(error))
      .finally(() => {
        streams.delete(stop);
        reply.raw.end();
      });
  });

  const page = (file: string, type: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.type(type).send(readFileSync(new URL(file, PUBLIC)));
  app.get('/', page('index.html', 'text/html; charset=utf-8'));
  app.get('/app.js', page('app.js', 'text/javascript; charset=utf-8'));

  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Requests the ledger answered, by outcome (the live page's counters). */
    counters: Counters;
  }
}
