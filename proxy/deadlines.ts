// Timeouts without a timer each (connect-timeout per attempt, handshake-timeout per
// client connection): deadlines with the same duration share one interval that checks
// them 8 times per period (the relay's idle check works the same way). One fires
// between `ms` and `ms` + 1/8 of it after it was set — "the timeout and a little" — and
// the common case, cancelled long before, costs a Map insertion and removal.

const STEPS = 8;

interface Group {
  timer: NodeJS.Timeout;
  pending: Map<() => void, number>;
}
const groups = new Map<number, Group>();

/** Calls `onExpire` once `ms` have passed (within +1/8), unless the returned function is called first. */
export function addDeadline(ms: number, onExpire: () => void): () => void {
  let g = groups.get(ms);
  if (g === undefined) {
    const pending = new Map<() => void, number>();
    const timer = setInterval(
      () => {
        const now = performance.now();
        for (const [fn, at] of pending) {
          if (now < at) continue;
          pending.delete(fn);
          // One connection's failure must not end the process, nor skip the others' deadlines.
          try {
            fn();
          } catch (err) {
            process.emitWarning(`deadline callback failed: ${(err as Error)?.stack ?? err}`);
          }
        }
        if (pending.size === 0) {
          clearInterval(timer);
          groups.delete(ms);
        }
      },
      Math.max(10, Math.floor(ms / STEPS)),
    );
    timer.unref();
    g = { timer, pending };
    groups.set(ms, g);
  }
  const pending = g.pending;
  // A function of its own: the same callback may be registered twice.
  const entry = () => onExpire();
  pending.set(entry, performance.now() + ms);
  return () => {
    pending.delete(entry);
  };
}
