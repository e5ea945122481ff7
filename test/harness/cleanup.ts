// Cleanup that happens whatever way a test ends. Every helper that starts something
// registers a stopper here; stoppers run when the test (or suite) that owns them ends,
// when `stopAll()` is called, and, as a last resort, when the test file's process
// exits or is interrupted, so that no server outlives the file that started it.
import process from 'node:process';

/** Anything with node:test's `after`: a TestContext, or a SuiteContext-like object. */
export interface Owner {
  after(fn: () => void | Promise<void>): void;
}

type Stopper = {
  /** Graceful stop (may wait). */
  stop: () => Promise<void>;
  /** Synchronous last-resort kill, used from process 'exit' where nothing can wait. */
  killNow: () => void;
};

const live = new Set<Stopper>();

/**
 * Registers a resource. With an owner it is stopped when the owner ends (pass `t` in a
 * test; in a `before` hook, pass nothing and rely on the file-level fallback or call
 * the returned `stop`). Returns an idempotent stop function.
 */
export function track(
  owner: Owner | undefined,
  stop: () => Promise<void>,
  killNow: () => void = () => {},
): () => Promise<void> {
  let done: Promise<void> | undefined;
  const entry: Stopper = {
    stop: () => {
      done ??= stop().finally(() => live.delete(entry));
      return done;
    },
    killNow,
  };
  live.add(entry);
  if (owner) owner.after(() => entry.stop());
  else stopAtEndOfFile();
  return entry.stop;
}

let fileHooked = false;
/**
 * Without an owner, stop at the end of the test file: a forgotten server would otherwise
 * keep the file's process (and the whole run) waiting forever. Only under node:test —
 * a benchmark using the harness must not grow a test harness of its own.
 */
function stopAtEndOfFile(): void {
  if (fileHooked) return;
  const underTest =
    process.env.NODE_TEST_CONTEXT !== undefined || /\.test\.[cm]?js$/.test(process.argv[1] ?? '');
  if (!underTest) return;
  fileHooked = true;
  // From a fresh async context, node:test attaches the hook to the file's root, not to
  // whichever test happens to be running.
  void import('node:test').then(({ after }) => setImmediate(() => after(() => stopAll())));
}

/** Stops everything still running (use in a file-level `after()` when not using owners). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live].map((e) => e.stop()));
}

let hooked = false;
/** Installs the process-level fallback once. */
export function hookProcessExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const e of live) {
      try {
        e.killNow();
      } catch {
        // best effort: the process is going away anyway
      }
    }
  });
  // Interrupted (Ctrl-C, the test runner's timeout): kill children, then die of the
  // same signal so that the exit status tells what happened. If the code under test
  // handles the signal itself (a daemon's SIGTERM handler tested in-process), the
  // process is not dying: leave everything alone.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      if (process.listenerCount(sig) > 1) return;
      for (const e of live) {
        try {
          e.killNow();
        } catch {
          // best effort
        }
      }
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
