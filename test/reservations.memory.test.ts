import { it } from 'vitest';
import { MemoryStore } from 'stock-ledger/memory';
import { reservationRaceCases } from './conformance/reservation-races.js';

for (const c of reservationRaceCases('memory', () => new MemoryStore())) it(c.name, c.run, c.timeoutMs);
for (const c of reservationRaceCases('memory+interleave', () => new MemoryStore({ interleave: () => new Promise((r) => setImmediate(r)) }))) {
  it(c.name, c.run, c.timeoutMs);
}
