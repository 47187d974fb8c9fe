/**
 * The in-memory store: `import { MemoryStore } from 'stock-ledger/memory'`.
 * @packageDocumentation
 */
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
