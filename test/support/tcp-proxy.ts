/**
 * A loopback TCP proxy between a Redis client and a Redis server, for the lost-reply fault:
 * the command reaches Redis and is applied, but the reply never reaches the client, which times
 * out and must retry with the same request id.
 *
 * Replies are a byte stream, so the proxy does not try to find where one reply ends. While
 * `dropReplies` is on it discards every byte from the server; afterwards the connections must be
 * cut, because the client still waits for the lost reply and would pair the next reply with it.
 * {@link TcpProxy.loseReplies} does the whole sequence.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const HOST = '127.0.0.1';
const DROP_WAIT_MS = 2_000;
const POLL_MS = 5;

/** Options of {@link startProxy}. */
export interface TcpProxyOptions {
  targetPort: number;
  /** Default 127.0.0.1. */
  targetHost?: string;
}

/** A running proxy; see {@link startProxy}. */
export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** While true, bytes from the server are discarded instead of forwarded to the client. */
  dropReplies: boolean;
  /** Bytes discarded so far; above zero means the server did answer (so it did apply the command). */
  readonly droppedBytes: number;
  /** Client connections currently open through the proxy. */
  readonly connections: number;
  /**
   * What clients sent, per connection (numbered from 1 in the order they were accepted), as
   * RESP commands: each an array of its arguments. Kept for every connection of the proxy.
   */
  sentCommands(): Map<number, string[][]>;
  /** Destroys every current connection pair; new connections are accepted as before. */
  cutAll(): void;
  /**
   * Runs `send` with replies dropped, waits until it settled and a reply was actually dropped,
   * then cuts every connection and forwards replies again. Returns how `send` settled (usually a
   * client timeout). Throws when no reply came back from the server within 2 s.
   */
  loseReplies<T>(send: () => Promise<T>): Promise<PromiseSettledResult<Awaited<T>>>;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
}

/**
 * The commands in a client's byte stream (RESP arrays of bulk strings, as clients send them);
 * a command cut off at the end of the stream is left out.
 *
 * @example
 * respCommands(Buffer.from('*1\r\n$4\r\nPING\r\n')); // [['PING']]
 */
export function respCommands(stream: Buffer): string[][] {
  const commands: string[][] = [];
  let at = 0;
  const line = (): string | null => {
    const end = stream.indexOf('\r\n', at);
    if (end < 0) return null;
    const text = stream.toString('latin1', at, end);
    at = end + 2;
    return text;
  };
  // Bounded: every pass consumes at least one line of a finite stream.
  while (at < stream.length) {
    const head = line();
    if (head === null || !head.startsWith('*')) break;
    const args: string[] = [];
    for (let n = Number(head.slice(1)); n > 0; n -= 1) {
      const size = line();
      if (size === null || !size.startsWith('$')) return commands;
      const length = Number(size.slice(1));
      if (at + length + 2 > stream.length) return commands;
      args.push(stream.toString('utf8', at, at + length));
      at += length + 2;
    }
    commands.push(args);
  }
  return commands;
}

class LoopbackProxy implements TcpProxy {
  readonly host = HOST;
  dropReplies = false;
  droppedBytes = 0;
  private readonly pairs = new Set<Pair>();
  private readonly sent = new Map<number, Buffer[]>();
  private accepted = 0;
  private readonly listener = createServer((client) => this.accept(client));
  private readonly target: { host: string; port: number };
  port = 0;

  constructor(options: TcpProxyOptions) {
    this.target = { host: options.targetHost ?? HOST, port: options.targetPort };
  }

  get connections(): number {
    return this.pairs.size;
  }

  listen(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(0, HOST, () => {
        const address = this.listener.address();
        this.port = typeof address === 'object' && address !== null ? address.port : 0;
        resolve();
      });
    });
  }

  private accept(client: Socket): void {
    const server = createConnection(this.target);
    const pair: Pair = { client, server };
    this.pairs.add(pair);
    const end = (): void => this.cut(pair);
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    const chunks: Buffer[] = [];
    this.sent.set((this.accepted += 1), chunks);
    client.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (this.dropReplies) this.droppedBytes += chunk.length;
      else client.write(chunk);
    });
  }

  private cut(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.server.destroy();
  }

  sentCommands(): Map<number, string[][]> {
    return new Map([...this.sent].map(([id, chunks]) => [id, respCommands(Buffer.concat(chunks))]));
  }

  cutAll(): void {
    for (const pair of [...this.pairs]) this.cut(pair);
  }

  async loseReplies<T>(send: () => Promise<T>): Promise<PromiseSettledResult<Awaited<T>>> {
    const before = this.droppedBytes;
    this.dropReplies = true;
    try {
      const [settled] = await Promise.allSettled([send()]);
      const deadline = Date.now() + DROP_WAIT_MS;
      while (this.droppedBytes === before && Date.now() < deadline) await sleep(POLL_MS);
      if (this.droppedBytes === before) throw new Error(`no reply from the server to drop within ${DROP_WAIT_MS} ms`);
      return settled;
    } finally {
      this.cutAll();
      this.dropReplies = false;
    }
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }
}

/**
 * Starts a proxy on a free loopback port that forwards to `targetPort`.
 *
 * @example
 * const proxy = await startProxy({ targetPort: server.port });
 * const client = new Redis({ port: proxy.port, commandTimeout: 200, autoResendUnfulfilledCommands: false });
 * const lost = await proxy.loseReplies(() => client.incr('k')); // { status: 'rejected', reason: Command timed out }
 * await client.incr('k'); // the retry goes through the new connection
 */
export async function startProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const proxy = new LoopbackProxy(options);
  await proxy.listen();
  return proxy;
}
