/**
 * The Redis store on a Redis Cluster of three masters (spawned by the harness) through an
 * ioredis `Cluster` client: every key of a ledger shares one hash tag, so each script runs on
 * the one node that owns the ledger's slot. Shown here: the retry storm, an all-or-none
 * multi-line deduct with SKUs full of braces and colons, the keys' slot and the node holding
 * them, two ledgers on two different masters, and the whole conformance suite.
 */
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { StockLedger, type DeductInput } from 'stock-ledger';
import { RedisStore, ledgerKeys } from 'stock-ledger/redis';
import { checkInvariants, conformanceCases, readAllEntries } from 'stock-ledger/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type RedisCluster } from './support/redis-cluster.js';
import { describeRedis, rawCommand, type RedisServer } from './support/redis-server.js';

let prefixes = 0;
/** A fresh prefix per ledger (and per conformance store). */
const uniquePrefix = (name: string): string => `cluster-${name}-${randomUUID().slice(0, 8)}-${(prefixes += 1)}`;

/** The slot of `key`, as the server computes it. */
async function keySlot(node: RedisServer, key: string): Promise<number> {
  return Number(await rawCommand(node, ['CLUSTER', 'KEYSLOT', key]));
}

/**
 * The master that owns `key`'s slot, found by asking every node: the owner answers `EXISTS`,
 * every other node answers MOVED to the owner.
 */
async function ownerOf(nodes: readonly RedisServer[], key: string): Promise<{ owner: RedisServer; exists: number }> {
  const answers = await Promise.all(nodes.map((node) => rawCommand(node, ['EXISTS', key]).then(
    (reply) => ({ node, reply }),
    (error: unknown) => ({ node, error: error instanceof Error ? error.message : String(error) }),
  )));
  const owners = answers.filter((a): a is { node: RedisServer; reply: number } => 'reply' in a);
  expect(owners, `exactly one node owns ${key}`).toHaveLength(1);
  const [answer] = owners;
  if (answer === undefined) throw new Error(`no owner of ${key}`);
  for (const a of answers) {
    if ('error' in a) expect(a.error).toMatch(new RegExp(`^MOVED \\d+ ${answer.node.host}:${answer.node.port}$`));
  }
  return { owner: answer.node, exists: answer.reply };
}

describeRedis(
  'Redis store on a three-master cluster (ioredis Cluster)',
  () => {
    let cluster: RedisCluster;
    let client: Cluster;
    beforeAll(async () => {
      cluster = await startCluster();
      client = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })));
      client.on('error', () => {});
    });
    afterAll(async () => {
      await client?.quit();
      await cluster?.stop();
    });

    const ledgerFor = (prefix: string): StockLedger => new StockLedger({ store: new RedisStore({ client, prefix }) });

    it('the retry storm (the conformance case): 2,000 buyers x 1-3 sends for 100 units, exactly 100 sold', async () => {
      const cases = conformanceCases({ name: 'redis cluster', createStore: () => new RedisStore({ client, prefix: uniquePrefix('storm') }) });
      const storm = cases.find((c) => c.name.includes('retry storm'));
      expect(storm, 'the conformance suite has a retry storm').toBeDefined();
      await storm?.run();
    });

    it('a multi-line deduct over odd SKUs applies all lines or none', async () => {
      const ledger = ledgerFor(uniquePrefix('lines'));
      const skus = ['{', '}', '{x}', 'a:b', 'with space', 'new\nline', '🍐 emoji', '{shop-1}:levels'];
      for (const [i, sku] of skus.entries()) await ledger.restockOrThrow({ requestId: `po-${i}`, sku, qty: 5 });

      const all: DeductInput = { requestId: 'order-all', lines: skus.map((sku, i) => ({ sku, qty: 1 + (i % 3) })) };
      const applied = await ledger.deductOrThrow(all);
      expect(applied.entries.map((e) => e.sku)).toEqual([...skus].sort());
      for (const [i, sku] of skus.entries()) expect(await ledger.stock(sku)).toMatchObject({ onHand: 5 - (1 + (i % 3)), version: 2 });

      // One line short ('{' has 4 left): nothing moves, nothing is recorded.
      const before = await readAllEntries(ledger);
      const none = await ledger.deduct({ requestId: 'order-none', lines: skus.map((sku) => ({ sku, qty: sku === '{' ? 5 : 1 })) });
      expect(none).toEqual({ ok: false, code: 'INSUFFICIENT_STOCK', sku: '{', requested: 5, available: 4 });
      expect(await readAllEntries(ledger)).toEqual(before);
      expect(await ledger.request('order-none')).toBeNull();
      expect(await ledger.deduct(all)).toEqual({ ...applied, replayed: true });
      await checkInvariants(ledger, { operations: [{ requestId: 'order-all', skus }] });
    });

    it('every key of a ledger is in one slot, held by the node that owns it', async () => {
      const prefix = uniquePrefix('slot');
      const ledger = ledgerFor(prefix);
      // Touch every key: levels, seq, entries, by-sku, skus, requests, reversed, reservations, holds, buyers.
      await ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 });
      await ledger.deductOrThrow({ requestId: 'order-1', sku: 'A', qty: 2, buyer: 'ann' });
      await ledger.reverseOrThrow({ requestId: 'refund-1', of: 'order-1', lines: [{ sku: 'A', qty: 1 }] });
      await ledger.reserveOrThrow({ requestId: 'cart-1', lines: [{ sku: 'A', qty: 3 }], ttlMs: 600_000 });

      const [node] = cluster.nodes;
      if (node === undefined) throw new Error('no node');
      expect(ledgerKeys(prefix)).toHaveLength(12);
      // by-sku names no set of its own since layout 2: SKU A's entry index is by-sku:A.
      const keys = ledgerKeys(prefix).map((key) => (key.endsWith(':by-sku') ? `${key}:A` : key));
      const slots = await Promise.all(keys.map((key) => keySlot(node, key)));
      expect(new Set(slots).size, `slots ${JSON.stringify(slots)}`).toBe(1);
      expect(slots[0]).toBe(await keySlot(node, prefix));

      const { owner } = await ownerOf(cluster.nodes, keys[0] as string);
      expect(await rawCommand(owner, ['EXISTS', ...keys])).toBe(keys.length);
      for (const key of keys) expect((await ownerOf(cluster.nodes, key)).owner).toBe(owner);
      expect(await rawCommand(owner, ['CLUSTER', 'COUNTKEYSINSLOT', slots[0] as number])).toBeGreaterThanOrEqual(keys.length);
    });

    it('two ledgers whose slots are on different masters both work, independently', async () => {
      const [node] = cluster.nodes;
      if (node === undefined) throw new Error('no node');
      // Prefixes until two land on different masters (bounded: a third of slots per master).
      const chosen: Array<{ prefix: string; owner: RedisServer }> = [];
      for (let i = 0; i < 50 && chosen.length < 2; i += 1) {
        const prefix = uniquePrefix(`two-${i}`);
        const { owner } = await ownerOf(cluster.nodes, (ledgerKeys(prefix)[0]) as string);
        if (chosen.every((c) => c.owner !== owner)) chosen.push({ prefix, owner });
      }
      expect(chosen).toHaveLength(2);
      const [one, two] = chosen.map((c) => ({ ...c, ledger: ledgerFor(c.prefix) }));
      if (one === undefined || two === undefined) throw new Error('two ledgers expected');

      await Promise.all([
        one.ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 10 }),
        two.ledger.restockOrThrow({ requestId: 'po-1', sku: 'A', qty: 20 }),
      ]);
      // The same request ids in both ledgers are two different requests.
      const orders = Array.from({ length: 15 }, (_, i) => ({ requestId: `order-${i}`, sku: 'A', qty: 1 }));
      const [r1, r2] = await Promise.all([one, two].map((x) => Promise.all(orders.map((o) => x.ledger.deduct(o)))));
      expect(r1?.filter((r) => r.ok)).toHaveLength(10);
      expect(r2?.filter((r) => r.ok)).toHaveLength(15);
      expect(await one.ledger.stock('A')).toMatchObject({ onHand: 0, version: 11 });
      expect(await two.ledger.stock('A')).toMatchObject({ onHand: 5, version: 16 });
      for (const x of [one, two]) {
        expect(await rawCommand(x.owner, ['EXISTS', ...ledgerKeys(x.prefix)])).toBeGreaterThanOrEqual(5);
        await checkInvariants(x.ledger);
      }
    });

    // The whole conformance suite over the cluster client, each store on its own prefix, batched:
    // the batch script by EVALSHA runs here (a Cluster client always uses EVALSHA).
    for (const c of conformanceCases({ name: 'redis cluster (ioredis)', createStore: () => new RedisStore({ client, prefix: uniquePrefix('conf'), batch: true }) })) {
      it(c.name, c.run, c.timeoutMs);
    }
  },
  { needsSpawn: true },
);
