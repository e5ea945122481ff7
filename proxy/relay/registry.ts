// Open relays (and plain-HTTP forward exchanges), so that a reload can re-evaluate
// each one and a shutdown can drain them. The registry knows no protocol and no
// policy: each entry carries an opaque `meta` the pipeline understands.
import type { CloseReason, DetachedRelay } from './relay.js';

export interface Closable {
  close(reason: CloseReason): void;
  /** Relays have it (hand-over to the next process); plain-HTTP exchanges do not. */
  detach?(): DetachedRelay;
}

export class RelayRegistry<M> {
  private readonly entries = new Map<Closable, M>();
  private emptyWaiters: Array<() => void> = [];

  get size(): number {
    return this.entries.size;
  }

  has(item: Closable): boolean {
    return this.entries.has(item);
  }

  add(item: Closable, meta: M): void {
    this.entries.set(item, meta);
  }

  delete(item: Closable): void {
    if (!this.entries.delete(item)) return;
    if (this.entries.size === 0) {
      const waiters = this.emptyWaiters;
      this.emptyWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** A copy: entries may close (and leave) while the caller iterates. */
  list(): Array<[Closable, M]> {
    return [...this.entries];
  }

  /**
   * Hand-over: detaches `item` (no close, no close record, see relay.ts) and drops its
   * entry. Returns undefined, leaving the entry, when it cannot be detached.
   */
  detach(item: Closable): { relay: DetachedRelay; meta: M } | undefined {
    const meta = this.entries.get(item);
    if (meta === undefined || typeof item.detach !== 'function') return undefined;
    let relay: DetachedRelay;
    try {
      relay = item.detach();
    } catch {
      return undefined; // Already closing: its close record follows as usual.
    }
    this.delete(item);
    return { relay, meta };
  }

  /** Detaches every relay that can be; plain-HTTP exchanges and closing relays stay. */
  detachAll(): Array<{ relay: DetachedRelay; meta: M }> {
    const out: Array<{ relay: DetachedRelay; meta: M }> = [];
    for (const item of [...this.entries.keys()]) {
      const d = this.detach(item);
      if (d) out.push(d);
    }
    return out;
  }

  closeAll(reason: CloseReason): void {
    for (const item of [...this.entries.keys()]) item.close(reason);
  }

  /** Resolves true once empty, false if `timeoutMs` passed first. */
  whenEmpty(timeoutMs: number): Promise<boolean> {
    if (this.entries.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.emptyWaiters = this.emptyWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.emptyWaiters.push(done);
    });
  }
}
