// File descriptors: when the process runs out, the kernel's accept queue is drained by
// libuv without a word (it accepts and closes connections to stay responsive) and
// outbound connects fail with EMFILE. Nothing would tell the operator; this watch does:
// it compares the open descriptors with the soft RLIMIT_NOFILE every few seconds and
// warns once when usage crosses 90 %, again when it is exhausted, and says when it is
// back to normal (docs/security.md, "Client connections and handshakes"). With no
// connection open and usage normal, nothing can change until one opens: the watch then
// sleeps until `wake()` (an idle daemon never wakes up: docs/performance.md, "Footprint").
import { readdirSync, readFileSync } from 'node:fs';
import type { Log } from '../audit/logging.js';

export interface FdUsage {
  open: number;
  /** Soft limit (RLIMIT_NOFILE); Infinity when unlimited or unknown. */
  limit: number;
}

let lastLimit = Number.POSITIVE_INFINITY;

/** This process's open descriptors and soft limit, from /proc; null where /proc is absent. */
export function fdUsage(): FdUsage | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    lastLimit = m === null || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
    return { open: readdirSync('/proc/self/fd').length, limit: lastLimit };
  } catch (err) {
    // Reading /proc needs a descriptor too: failing for want of one is the answer.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') return { open: lastLimit, limit: lastLimit };
    return null;
  }
}

/**
 * Each open client connection may hold two descriptors (client and exit); a warning at
 * start when max-connections cannot be honoured under the current limit.
 */
export function fdLimitWarning(maxConnections: number, usage = fdUsage()): string | null {
  if (usage === null || !Number.isFinite(usage.limit)) return null;
  const needed = 2 * maxConnections + 64;
  if (needed <= usage.limit) return null;
  return (
    `max-connections = ${maxConnections} may need ~${needed} file descriptors, but the ` +
    `limit is ${usage.limit}: connections beyond it are dropped by the kernel. Raise the ` +
    `limit (LimitNOFILE= in the unit) or lower max-connections`
  );
}

type Level = 'ok' | 'high' | 'exhausted';

export interface FdWatch {
  /** Checks now (also done every `intervalMs`). */
  check(): void;
  /** A connection opened: checks resume if they slept (`busy`). */
  wake(): void;
  stop(): void;
}

export function watchFds(
  log: Log,
  opts: {
    intervalMs?: number;
    usage?: () => FdUsage | null;
    /** Whether connections are open; when given, checks sleep while it is false and usage is normal. */
    busy?: () => boolean;
  } = {},
): FdWatch {
  const usage = opts.usage ?? fdUsage;
  let level: Level = 'ok';
  const check = () => {
    const u = usage();
    if (u === null || !Number.isFinite(u.limit)) return;
    // A few descriptors are always spare in libuv's reserve: "exhausted" is close to it.
    const next: Level =
      u.open >= u.limit - 2 ? 'exhausted' : u.open >= 0.9 * u.limit ? 'high' : 'ok';
    if (next === level) return;
    const prev = level;
    level = next;
    const figures = `${u.open} of ${u.limit} file descriptors open`;
    if (next === 'exhausted')
      log.error(
        `out of file descriptors (${figures}): new connections are dropped by the kernel and connects fail with EMFILE; raise LimitNOFILE= or lower max-connections`,
      );
    else if (next === 'high' && prev === 'ok')
      log.warn(`file descriptors nearly exhausted: ${figures}`);
    else if (next === 'high')
      log.warn(`file descriptors no longer exhausted, still high: ${figures}`);
    else log.info(`file descriptors back to normal: ${figures}`);
  };
  const { busy } = opts;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () => {
    check();
    if (busy !== undefined && level === 'ok' && !busy()) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const wake = () => {
    if (timer !== undefined || stopped) return;
    timer = setInterval(tick, opts.intervalMs ?? 2000);
    timer.unref();
  };
  wake();
  return {
    check,
    wake,
    stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
    },
  };
}
