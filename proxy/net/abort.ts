// How an aborted lookup or connect is reported. The pipeline aborts when its own
// deadline passes or the client went away: both are reported as a timeout (SOCKS
// 0x06, HTTP 504), which is what a client still listening should be told.
import { ConnectError } from '../types.js';

export function abortError(signal: AbortSignal, what: string): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  const detail = reason instanceof Error && reason.message ? `: ${reason.message}` : '';
  return new ConnectError('timeout', `${what} aborted${detail}`);
}

/**
 * `fn` runs when `signal` aborts; returns the way to stop watching. Every watcher of one
 * signal shares a single listener: the pipeline's shutdown signal is watched by every
 * connection attempt, and an EventTarget listener per attempt was measurable per
 * connection (docs/performance.md).
 */
export function watchAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) {
    // Its 'abort' event is past: run `fn` as if it had just fired.
    let live = true;
    queueMicrotask(() => {
      if (live) fn();
    });
    return () => {
      live = false;
    };
  }
  let set = watchers.get(signal);
  if (set === undefined) {
    const fns = new Set<() => void>();
    set = fns;
    watchers.set(signal, fns);
    signal.addEventListener(
      'abort',
      () => {
        watchers.delete(signal);
        for (const f of fns) f();
      },
      { once: true },
    );
  }
  const s = set;
  s.add(fn);
  return () => {
    s.delete(fn);
  };
}
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * `p`, or a rejection with abortError(signal, what) as soon as `signal` aborts,
 * whichever comes first (`p` carries on for other waiters). The wait is through watchAbort: one listener per signal.
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const stop = watchAbort(signal, () => reject(abortError(signal, what)));
    p.then(
      (v) => {
        stop();
        resolve(v);
      },
      (e) => {
        stop();
        reject(e);
      },
    );
  });
}
