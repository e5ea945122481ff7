// Answers of the resolver kept for their TTL (docs/security.md, "Name resolution"):
// bounded in entries, least recently used dropped first. A positive entry holds the
// addresses; a negative one (no such name, no address) the error to repeat.
import type { ConnectError } from '../types.js';

interface Entry {
  expiresAt: number;
  addresses?: readonly string[];
  error?: ConnectError;
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The live entry for `key` (now the most recently used), or undefined. */
  get(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) return undefined;
    this.entries.set(key, e);
    return e;
  }

  setAddresses(key: string, addresses: readonly string[], ttlMs: number, now: number): void {
    if (ttlMs > 0) this.put(key, { expiresAt: now + ttlMs, addresses });
  }

  setError(key: string, error: ConnectError, ttlMs: number, now: number): void {
    if (ttlMs > 0) this.put(key, { expiresAt: now + ttlMs, error });
  }

  private put(key: string, e: Entry): void {
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(key, e);
  }
}
