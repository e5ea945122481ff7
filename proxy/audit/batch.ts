// Audit records are written in small batches: a `decision` goes out at once (with any
// record waiting before it, in order), so that a denial is on record by the time the
// client reads it; a `close` waits up to `delayMs` for company. A connection then costs
// one write system call instead of two. What a crash can lose is the close records of
// the last `delayMs`: every batch is delivered at exit (process 'exit', graceful stop)
// and when it grows past `maxItems`.

export interface Batcher<T> {
  /** Queues `item`: delivered within `delayMs`. */
  push(item: T): void;
  /** Delivers `item` now, after everything queued before it. */
  pushNow(item: T): void;
  /** Delivers what is pending now (exit, rotation, tests). */
  flush(): void;
}

export interface BatchOptions {
  /** Longest time a record waits. */
  delayMs: number;
  /** Deliver at once past this many pending records. */
  maxItems: number;
}

export const AUDIT_BATCH: BatchOptions = { delayMs: 10, maxItems: 256 };

const atExitHooks = new Set<() => void>();

/** Runs `fn` when the process exits (after a crash too); returns the way to cancel it. */
export function atExit(fn: () => void): () => void {
  if (atExitHooks.size === 0) process.once('exit', runExitHooks);
  atExitHooks.add(fn);
  return () => atExitHooks.delete(fn);
}

function runExitHooks(): void {
  for (const fn of atExitHooks) {
    try {
      fn();
    } catch {
      // nothing more can be done at exit
    }
  }
  atExitHooks.clear();
}

/** `deliver` receives the pending items in order; it must not throw (it is wrapped). */
export function createBatcher<T>(
  deliver: (items: T[]) => void,
  opts: BatchOptions = AUDIT_BATCH,
): Batcher<T> {
  let items: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (items.length === 0) return;
    const out = items;
    items = [];
    try {
      deliver(out);
    } catch {
      // the sink reports its own errors; a batch must never take the proxy down
    }
  };
  const b: Batcher<T> = {
    push(item) {
      items.push(item);
      if (items.length >= opts.maxItems) flush();
      else if (timer === undefined) {
        timer = setTimeout(flush, opts.delayMs);
        // Pending records never keep a stopping process alive: the owner's atExit hook delivers them.
        timer.unref();
      }
    },
    pushNow(item) {
      items.push(item);
      flush();
    },
    flush,
  };
  return b;
}
