// What the daemon takes from systemd (systemd/ knows no protocol): listening sockets
// passed by name (socket units and the file descriptor store look alike), relays handed
// over by the previous process through the store, and the notifications around start,
// reload and stop. Outside systemd every call here is a no-op that needs no native addon.
import { closeSync } from 'node:fs';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import {
  adoptSocket,
  checkSocket,
  detachSockets,
  listenFds,
  type RecoveredConnection,
  ready,
  recoverConnections,
  reloading,
  type StoredConnection,
  serverFromFd,
  socketFd,
  startWatchdog,
  status,
  stopping,
  storeConnections,
  storeListeners,
  type Watchdog,
} from '../../systemd/index.js';
import type { Log } from '../audit/logging.js';
import { relaySocket } from '../net/fast-read.js';
import type { DataPlane, HandedOver } from '../pipeline/pipeline.js';
import { type HandoverRecord, parseHandoverRecord } from '../relay/handover.js';

export type ListenerSource = 'systemd' | 'fdstore' | 'bound';

export interface Passed {
  proxy: number[];
  control: number[];
  /** Established connections the previous process handed over (fd store). */
  relays: RecoveredConnection[];
}

/** Descriptors systemd passed for us; names we do not serve yet are reported and left alone. */
export function passedSockets(log: Log): Passed {
  const byName = listenFds();
  // Takes the conn.* entries out of byName and removes them from the store (FDSTOREREMOVE=1).
  const relays = recoverConnections(byName, {
    onStale: (name, why) => log.warn(`fd store: dropped ${name}: ${why}`),
  });
  // `gateway` sockets are served by the same listener as `proxy`: the gateway role is
  // the `[listener]` TLS settings, which apply to every proxy listener.
  const out: Passed = {
    proxy: [...(byName.get('proxy') ?? []), ...(byName.get('gateway') ?? [])],
    control: byName.get('control') ?? [],
    relays,
  };
  for (const [name, fds] of byName) {
    if (name !== 'proxy' && name !== 'control' && name !== 'gateway') {
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

// ---- Restart hand-over ------------------------------------------------------------

/**
 * Why a stop cannot hand relays over to the next process, or null when it can. systemd
 * 252 does not tell a service whether it has a file descriptor store, so the unit says
 * it: systemd ≥ 254 sets FDSTORE= to FileDescriptorStoreMax=, and the shipped unit sets
 * PORTAIL_FDSTORE_MAX= to the same value for older versions. A RuntimeDirectory= kept
 * across restarts holds the relays' metadata.
 */
export function handoverUnavailable(env: NodeJS.ProcessEnv = process.env): string | null {
  if (!env.NOTIFY_SOCKET) return 'not started by systemd (no NOTIFY_SOCKET)';
  const max = Number(env.FDSTORE ?? env.PORTAIL_FDSTORE_MAX ?? 0);
  if (!(max > 0))
    return 'no file descriptor store (FileDescriptorStoreMax=, FDSTORE= / PORTAIL_FDSTORE_MAX=)';
  if (!env.RUNTIME_DIRECTORY) return 'no RuntimeDirectory= for the relays’ metadata';
  return null;
}

/** How many relays fit in the store: two descriptors each, some room left for listeners. */
function storeCapacity(env: NodeJS.ProcessEnv = process.env): number {
  const max = Number(env.FDSTORE ?? env.PORTAIL_FDSTORE_MAX ?? 0);
  return Math.max(0, Math.floor((max - 16) / 2));
}

/**
 * Stores detached relays for the next process: per relay, stops reading both sockets,
 * takes out what was read but not relayed, waits for its own writes to reach the kernel,
 * then pushes both descriptors (FDSTORE=1, FDNAME=conn.<trace id>.<0|1>) with their
 * record, waits for systemd's confirmation and closes our copies (no FIN: systemd holds
 * another). A relay that cannot be stored is reset and gets its close record. Returns
 * how many were handed over.
 */
export async function handOver(items: HandedOver[], log: Log): Promise<number> {
  const capacity = storeCapacity();
  const entries: StoredConnection[] = [];
  const kept: HandedOver[] = [];
  await Promise.all(
    items.map(async (h, i) => {
      if (i >= capacity) {
        h.abandon(`more relays than the file descriptor store holds (${capacity})`);
        return;
      }
      try {
        // net.Socket.read() starts the handle reading again on sockets made with
        // `onread` (proxy/net/fast-read.ts), and detachSockets() calls read() to take
        // out what was buffered: the kernel's next bytes would then land in this process
        // and be lost. Use the plain stream read(), which only drains the buffer.
        for (const s of [h.client, h.upstream]) {
          (s as { read: (n?: number) => unknown }).read = (n?: number) =>
            Duplex.prototype.read.call(s, n);
        }
        const d = await detachSockets([h.client as net.Socket, h.upstream as net.Socket], 3000);
        entries.push({
          name: h.record.traceId,
          fds: d.map((x) => x.fd),
          meta: {
            record: h.record as unknown as StoredConnection['meta'][string],
            unread: d.map((x) => x.unread.toString('base64')),
          },
        });
        kept.push(h);
      } catch (err) {
        h.abandon((err as Error).message);
      }
    }),
  );
  let confirmed = true;
  if (entries.length > 0) {
    try {
      confirmed = storeConnections(entries);
    } catch (err) {
      confirmed = false;
      log.error(`hand-over: cannot store the relays: ${(err as Error).message}`);
    }
  }
  if (!confirmed) log.warn('hand-over: systemd did not confirm the file descriptor store in time');
  // destroy(), never end(): a FIN would tell the peers the connection is over.
  for (const h of kept) {
    h.client.destroy();
    h.upstream.destroy();
  }
  log.info(`handed over ${kept.length} relay(s) to the next process`, {
    handed_over: kept.length,
    closed: items.length - kept.length,
  });
  return kept.length;
}

/** Resumes the relays the previous process handed over: adopts both sockets, writes the
 * bytes it had read but not relayed, and gives them to the pipeline. */
export function resumeRelays(
  relays: RecoveredConnection[],
  pipeline: Pick<DataPlane, 'resume'>,
  log: Log,
): number {
  let resumed = 0;
  for (const c of relays) {
    const record = parseHandoverRecord(c.meta.record);
    const unread = Array.isArray(c.meta.unread) ? c.meta.unread : [];
    if (typeof record === 'string' || c.fds.length !== 2 || unread.length !== 2) {
      log.warn(
        `fd store: dropped relay ${c.name}: ${typeof record === 'string' ? record : 'bad entry'}`,
      );
      for (const fd of c.fds) closeQuietly(fd);
      continue;
    }
    // Both checked before either is adopted: a net.Socket owns its descriptor, so a
    // failure after adoption must destroy() it rather than close the number again.
    let upstream: Duplex;
    try {
      checkSocket(c.fds[0], 'stream-connection');
      checkSocket(c.fds[1], 'stream-connection');
    } catch (err) {
      log.warn(`fd store: dropped relay ${c.name}: ${(err as Error).message}`);
      for (const fd of c.fds) closeQuietly(fd);
      continue;
    }
    const client = adoptSocket(c.fds[0], { allowHalfOpen: true });
    try {
      // The upstream keeps the relay's fast read path (one reused buffer).
      upstream = relaySocket({ fd: c.fds[1], readable: true, writable: true, allowHalfOpen: true });
    } catch (err) {
      log.warn(`fd store: dropped relay ${c.name}: ${(err as Error).message}`);
      client.destroy();
      closeQuietly(c.fds[1]);
      continue;
    }
    const [fromClient, fromUpstream] = unread.map((b) => Buffer.from(String(b), 'base64'));
    // What the old process read from one side goes to the other side first.
    if (fromClient.length) upstream.write(fromClient);
    if (fromUpstream.length) client.write(fromUpstream);
    pipeline.resume(client, upstream, record as HandoverRecord, {
      up: fromClient.length,
      down: fromUpstream.length,
    });
    resumed++;
  }
  if (relays.length) log.info(`resumed ${resumed} relay(s) handed over by the previous process`);
  return resumed;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
