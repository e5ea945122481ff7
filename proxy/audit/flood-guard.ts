// Rate limit for log lines and audit records that a peer can cause at will (refused
// control calls, refused connections, malformed requests): the first `burst`
// occurrences of a kind in each interval are written, the rest are only counted, and
// one summary per kind says how many were left out when the interval ends. So a flood
// costs a counter, never a line per event, and the first occurrences — the ones an
// investigation starts from — are always kept (docs/security.md, "Logs and audit
// records").

export interface FloodGuardOptions {
  /** Occurrences of one kind written per interval (default 10). */
  burst?: number;
  /** Length of an interval (default 10 s). */
  intervalMs?: number;
  /** Kinds tracked at once (default 1,024); beyond, new kinds share one overflow kind. */
  maxKinds?: number;
  /**
   * Called once per interval and kind that had occurrences left out (with the time
   * they span), unless `admit` was given a summary of its own.
   */
  summarise?(kind: string, suppressed: number, intervalMs: number): void;
}

export interface FloodGuard {
  /**
   * true: write this occurrence; false: it was counted for the summary. `summary`
   * (kept with the kind's first occurrence of an interval) writes that summary.
   */
  admit(kind: string, summary?: Summary): boolean;
  /** Occurrences left out since the guard was made (every kind). */
  readonly suppressed: number;
  /** Writes the pending summaries now and forgets every kind (stop). */
  flush(): void;
}

/** The kind that new kinds share once `maxKinds` are tracked. */
export const OVERFLOW_KIND = 'other';

export type Summary = (suppressed: number, intervalMs: number) => void;

interface Window {
  start: number;
  count: number;
  suppressed: number;
  summary: Summary | undefined;
}

export function createFloodGuard(opts: FloodGuardOptions): FloodGuard {
  const burst = opts.burst ?? 10;
  const intervalMs = opts.intervalMs ?? 10_000;
  const maxKinds = opts.maxKinds ?? 1024;
  const windows = new Map<string, Window>();
  let total = 0;
  let timer: NodeJS.Timeout | undefined;

  function summarise(kind: string, w: Window) {
    if (w.suppressed === 0) return;
    const n = w.suppressed;
    w.suppressed = 0;
    // The time the left-out occurrences span: the interval, or less at a flush.
    const spanMs = Math.max(1000, Math.min(intervalMs, Date.now() - w.start));
    try {
      if (w.summary) w.summary(n, spanMs);
      else opts.summarise?.(kind, n, spanMs);
    } catch {
      // a failing logger must not take the caller down
    }
  }

  // One timer for every kind, running only while some kind is suppressing: it ends
  // the intervals that are over (their summaries) and forgets quiet kinds.
  function sweep() {
    timer = undefined;
    const now = Date.now();
    for (const [kind, w] of windows) {
      if (now - w.start < intervalMs) continue;
      summarise(kind, w);
      windows.delete(kind);
    }
    if (windows.size > 0) arm();
  }
  function arm() {
    if (timer !== undefined) return;
    timer = setTimeout(sweep, intervalMs);
    timer.unref();
  }

  return {
    admit(kind, summary) {
      const now = Date.now();
      let w = windows.get(kind);
      if (w === undefined) {
        if (windows.size >= maxKinds && kind !== OVERFLOW_KIND) return this.admit(OVERFLOW_KIND);
        w = {
          start: now,
          count: 0,
          suppressed: 0,
          summary: kind === OVERFLOW_KIND ? undefined : summary,
        };
        windows.set(kind, w);
        arm();
      } else if (now - w.start >= intervalMs) {
        summarise(kind, w);
        w.start = now;
        w.count = 0;
      }
      w.count++;
      if (w.count <= burst) return true;
      w.suppressed++;
      total++;
      return false;
    },
    get suppressed() {
      return total;
    },
    flush() {
      clearTimeout(timer);
      timer = undefined;
      for (const [kind, w] of windows) summarise(kind, w);
      windows.clear();
    },
  };
}
