import { Mutex } from 'async-mutex';

interface Slot {
  mutex: Mutex;
  users: number;
}

/**
 * Named locks taken in ascending key order, so two callers can never wait on each other in a
 * cycle. A lock's slot is dropped when nobody holds or waits for it, so memory stays bounded
 * by what is in flight.
 */
export class KeyedLocks {
  readonly #slots = new Map<string, Slot>();

  /**
   * Takes every key (deduplicated, ascending), resolving with a function that releases them.
   * Keys taken in several calls must each be above every key already held.
   */
  async acquire(keys: readonly string[]): Promise<() => void> {
    const sorted = [...new Set(keys)].sort();
    const releases: Array<() => void> = [];
    for (const key of sorted) releases.push(await this.#take(key));
    return () => {
      for (const release of releases.reverse()) release();
    };
  }

  async #take(key: string): Promise<() => void> {
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = { mutex: new Mutex(), users: 0 };
      this.#slots.set(key, slot);
    }
    slot.users += 1;
    const held = slot;
    const release = await held.mutex.acquire();
    return () => {
      release();
      held.users -= 1;
      if (held.users === 0) this.#slots.delete(key);
    };
  }

  /** Number of keys held or waited for; for tests of boundedness. */
  get size(): number {
    return this.#slots.size;
  }
}
