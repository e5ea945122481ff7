// sd_notify: state changes, watchdog keep-alives and file descriptor store operations
// sent to the service manager on $NOTIFY_SOCKET. Everything is a no-op (returns false)
// when NOTIFY_SOCKET is unset, i.e. when not started by systemd with Type=notify.
import { addon } from './addon.js';

export type NotifyState = Record<string, string | number | bigint>;

export interface NotifyOptions {
  /** Defaults to process.env.NOTIFY_SOCKET, read at each call. */
  socketPath?: string;
}

const KEY = /^[A-Z][A-Z0-9_]*$/;
// systemd's fdname_is_valid(): printable ASCII without ':' (the LISTEN_FDNAMES separator).
const FDNAME = /^[\x20-\x39\x3b-\x7e]{1,255}$/;

export function notifySocket(opts?: NotifyOptions): string | undefined {
  const path = opts?.socketPath ?? process.env.NOTIFY_SOCKET;
  if (!path) return undefined;
  if (!path.startsWith('/') && !path.startsWith('@')) {
    // systemd ≥ 253 may hand an AF_VSOCK address ("vsock:…") to VMs; we only serve hosts.
    throw new Error(`unsupported NOTIFY_SOCKET address: ${path}`);
  }
  return path;
}

/** Formats a notify message. Newlines inside values are replaced by spaces so that a
 * STATUS built from an error text can never inject another assignment (READY=1…). */
export function formatNotify(state: NotifyState): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(state)) {
    if (!KEY.test(key)) throw new TypeError(`invalid sd_notify key: ${JSON.stringify(key)}`);
    lines.push(`${key}=${String(value).replace(/[\r\n]+/g, ' ')}`);
  }
  if (lines.length === 0) throw new TypeError('empty sd_notify message');
  return `${lines.join('\n')}\n`;
}

/** Sends `state` (and optional fds, e.g. with FDSTORE=1) to the service manager.
 * Returns false when not under systemd; throws the system error when sending fails. */
export function notify(state: NotifyState, fds: number[] = [], opts?: NotifyOptions): boolean {
  const path = notifySocket(opts);
  if (!path) return false;
  addon().sdNotify(path, formatNotify(state), fds);
  return true;
}

function withStatus(state: NotifyState, status?: string): NotifyState {
  return status === undefined ? state : { ...state, STATUS: status };
}

/** CLOCK_MONOTONIC in µs, as systemd wants with RELOADING=1 (process.hrtime is
 * CLOCK_MONOTONIC on Linux). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export const ready = (status?: string, opts?: NotifyOptions) =>
  notify(withStatus({ READY: 1 }, status), [], opts);

/** Before a reload; send ready() when the new configuration is in force (or rejected).
 * MONOTONIC_USEC is required by Type=notify-reload (systemd ≥ 253), ignored by 252. */
export const reloading = (status?: string, opts?: NotifyOptions) =>
  notify(withStatus({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec() }, status), [], opts);

export const stopping = (status?: string, opts?: NotifyOptions) =>
  notify(withStatus({ STOPPING: 1 }, status), [], opts);

export const status = (text: string, opts?: NotifyOptions) => notify({ STATUS: text }, [], opts);

export function checkFdName(name: string): string {
  if (!FDNAME.test(name))
    throw new TypeError(`invalid file descriptor name: ${JSON.stringify(name)}`);
  return name;
}

/** FDSTORE=1: systemd keeps a copy of `fds` (needs FileDescriptorStoreMax= > 0) and
 * passes them back to the next process of the service with LISTEN_FDNAMES=name. */
export function fdStore(name: string, fds: number[], opts?: NotifyOptions): boolean {
  if (fds.length === 0) return false;
  return notify({ FDSTORE: 1, FDNAME: checkFdName(name) }, fds, opts);
}

/** FDSTOREREMOVE=1: systemd closes every stored fd named `name`. */
export function fdStoreRemove(name: string, opts?: NotifyOptions): boolean {
  return notify({ FDSTOREREMOVE: 1, FDNAME: checkFdName(name) }, [], opts);
}

/** Waits (blocking, at most timeoutMs) until systemd has processed every message sent
 * before: use it before exiting after fdStore(), or the messages may be dropped once
 * the process is gone. true = confirmed; false = timed out (or not under systemd). */
export function barrier(timeoutMs = 5000, opts?: NotifyOptions): boolean {
  const path = notifySocket(opts);
  if (!path) return false;
  return addon().notifyBarrier(path, timeoutMs);
}

export interface Watchdog {
  /** Interval between keep-alives, in ms (half of WATCHDOG_USEC). */
  intervalMs: number;
  stop(): void;
}

export interface WatchdogOptions extends NotifyOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Called when a keep-alive cannot be sent (the timer goes on). */
  onError?: (err: Error) => void;
  /** Delete WATCHDOG_USEC/WATCHDOG_PID so that children do not believe they are
   * watched (default true). */
  unsetEnvironment?: boolean;
}

/** Starts WATCHDOG=1 keep-alives at half of $WATCHDOG_USEC when the watchdog is enabled
 * for this process (WATCHDOG_PID, when set, must be our pid); null otherwise. The timer
 * is unref'd: it never keeps the process alive, and it only fires while the event loop
 * turns, which is what the watchdog is meant to check. */
export function startWatchdog(opts: WatchdogOptions = {}): Watchdog | null {
  const env = opts.env ?? process.env;
  const usecText = env.WATCHDOG_USEC;
  const pidText = env.WATCHDOG_PID;
  if (opts.unsetEnvironment ?? true) {
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
  }
  if (!usecText || !/^[0-9]+$/.test(usecText)) return null;
  if (pidText !== undefined && pidText !== String(opts.pid ?? process.pid)) return null;
  const usec = Number(usecText);
  if (!(usec > 0)) return null;
  const intervalMs = Math.max(1, Math.floor(usec / 2000));
  const ping = () => {
    try {
      notify({ WATCHDOG: 1 }, [], opts);
    } catch (err) {
      opts.onError?.(err as Error);
    }
  };
  ping();
  const timer = setInterval(ping, intervalMs);
  timer.unref();
  return { intervalMs, stop: () => clearInterval(timer) };
}
