import { it } from 'vitest';
import { MemoryStore } from 'stock-ledger/memory';
import { conformanceCases } from 'stock-ledger/testing';

for (const c of conformanceCases({
  name: 'memory',
  createStore: () => new MemoryStore(),
  createInterleavedStore: (interleave) => new MemoryStore({ interleave }),
})) {
  it(c.name, c.run, c.timeoutMs);
}
