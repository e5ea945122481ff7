// What the daemon takes from systemd (systemd/ knows no protocol): listening sockets
// passed by name (socket units and the file descriptor store look alike), and the
// notifications around start, reload and stop. Outside systemd every call here is a
// no-op that needs no native addon.
import type net from 'node:net';
import {
  listenFds,
  ready,
  reloading,
  serverFromFd,
  socketFd,
  startWatchdog,
  status,
  stopping,
  storeListeners,
  type Watchdog,
} from '../../systemd/index.js';
import type { Log } from '../audit/logging.js';

export type ListenerSource = 'systemd' | 'fdstore' | 'bound';

export interface Passed {
  proxy: number[];
  control: number[];
}

/** Descriptors systemd passed for us; names we do not serve yet are reported and left alone. */
export function passedSockets(log: Log): Passed {
  const byName = listenFds();
  const out: Passed = { proxy: byName.get('proxy') ?? [], control: byName.get('control') ?? [] };
  for (const [name, fds] of byName) {
    if (name !== 'proxy' && name !== 'control') {
      log.warn(
        `systemd passed ${fds.length} socket(s) named "${name}": not served by this version`,
      );
    }
  }
  return out;
}

/** Adopts a passed listening socket into `server` (checked to be a listener of the right kind). */
export function adopt(
  server: net.Server,
  fd: number,
  kind: 'tcp-listener' | 'unix-listener',
): Promise<net.Server> {
  return serverFromFd(fd, { server, kind });
}

/** Hands sockets we bound ourselves to the store, so that a restart finds them. */
export function storeBound(name: 'proxy' | 'control', servers: net.Server[], log: Log): void {
  try {
    storeListeners(
      name,
      servers.map((s) => socketFd(s)),
    );
  } catch (err) {
    log.warn(
      `cannot store the ${name} socket(s) in systemd's file descriptor store: ${(err as Error).message}`,
    );
  }
}

function safe(log: Log, what: string, f: () => unknown): void {
  try {
    f();
  } catch (err) {
    log.warn(`sd_notify ${what}: ${(err as Error).message}`);
  }
}

export interface Notifier {
  ready(text: string): void;
  reloading(): void;
  status(text: string): void;
  stopping(): void;
  close(): void;
}

export function createNotifier(log: Log): Notifier {
  let watchdog: Watchdog | null = null;
  return {
    ready(text) {
      safe(log, 'READY', () => ready(text));
      watchdog ??= startWatchdog({ onError: (e) => log.warn(`watchdog: ${e.message}`) });
    },
    reloading() {
      safe(log, 'RELOADING', () => reloading('reloading'));
    },
    status(text) {
      safe(log, 'STATUS', () => status(text));
    },
    stopping() {
      safe(log, 'STOPPING', () => stopping('stopping'));
    },
    close() {
      watchdog?.stop();
    },
  };
}
