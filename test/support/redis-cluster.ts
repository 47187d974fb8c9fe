/**
 * A Redis Cluster of three masters on loopback ports, built by the harness without redis-cli:
 * each node gets one third of the slots (CLUSTER ADDSLOTSRANGE), the first node meets the other
 * two, and the cluster is ready when every node reports `cluster_state:ok` and knows all three.
 * The Redis store keeps every key of a ledger under one hash tag, so these tests show it runs
 * on a cluster.
 */
import { infoField, rawCommand, redisTarget, spawnRedis, waitUntil, type RedisServer } from './redis-server.js';

/** Slot ranges of the three masters (16384 slots, split as redis-cli does). */
const SLOT_RANGES = [
  [0, 5460],
  [5461, 10922],
  [10923, 16383],
] as const;
const CLUSTER_READY_WAIT_MS = 10_000;

/** A running cluster; see {@link startCluster}. */
export interface RedisCluster {
  /** The three masters, in slot order; each can be killed and restarted like any spawned server. */
  readonly nodes: readonly RedisServer[];
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

async function clusterReady(node: RedisServer, nodeCount: number): Promise<boolean> {
  const info = await rawCommand(node, ['CLUSTER', 'INFO']);
  return infoField(info, 'cluster_state') === 'ok' && infoField(info, 'cluster_known_nodes') === String(nodeCount);
}

async function joinCluster(nodes: readonly RedisServer[]): Promise<void> {
  for (const [index, [first, last]] of SLOT_RANGES.entries()) {
    const node = nodes[index];
    if (node === undefined) throw new Error(`no node for slots ${first}-${last}`);
    await rawCommand(node, ['CLUSTER', 'ADDSLOTSRANGE', first, last]);
  }
  const [seed, ...others] = nodes;
  if (seed === undefined) throw new Error('no nodes');
  for (const other of others) {
    await rawCommand(seed, ['CLUSTER', 'MEET', other.host, other.port, other.busPort ?? other.port + 10_000]);
  }
  for (const node of nodes) {
    await waitUntil(`cluster_state:ok on ${node.port}`, () => clusterReady(node, nodes.length), CLUSTER_READY_WAIT_MS);
  }
}

/**
 * Starts three cluster-enabled `redis-server` masters, each on its own free ports and in its own
 * temporary directory, and joins them into one cluster covering all 16384 slots. Needs
 * `redis-server` on PATH (guard with `describeRedis(name, body, { needsSpawn: true })`).
 *
 * @example
 * const cluster = await startCluster();
 * const client = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })));
 * // ... afterAll: await client.quit(); await cluster.stop();
 */
export async function startCluster(): Promise<RedisCluster> {
  if (redisTarget().kind !== 'spawn') throw new Error('startCluster needs redis-server on PATH');
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < SLOT_RANGES.length; i += 1) nodes.push(await spawnRedis({ cluster: true }));
    await joinCluster(nodes);
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, stop };
}
