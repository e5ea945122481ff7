// Daemon wiring: configuration → logging → state → pipeline → front-ends → listening
// sockets, then reload and graceful stop. Socket activation, sd_notify and the control
// socket plug in here (systemd/, rpc/) without touching the data path.
import net from 'node:net';
import { createAuthorizer } from '../../rpc/authorize.js';
import { bindControlSocket } from '../../rpc/bind.js';
import { type ControlServer, createControlServer } from '../../rpc/server.js';
import { createLogging, type Logging, type LogPreset } from '../audit/logging.js';
import { auditRecord } from '../audit/record.js';
import { ConfigError, formatConfigError, loadConfig } from '../config/index.js';
import { createSocketTable } from '../context/socket-table.js';
import { createProxyListener } from '../listen/listener.js';
import { createPipeline, type DataPlane } from '../pipeline/pipeline.js';
import {
  createState,
  type ReloadResult,
  type ReloadTrigger,
  StartupError,
  type State,
} from '../state/state.js';
import { DEFAULT_PROXY_ADDRESS, listenOn, parseBindAddress } from './bind.js';
import { createControlBackend, type DaemonControl } from './control.js';

/** SIGTERM/SIGINT: open relays get this long to finish before they are closed. */
export const SHUTDOWN_GRACE_MS = 10_000;

export interface DaemonOptions {
  config: string;
  bindProxyAddress: string[];
  bindRpcSocket?: string;
  logPreset: LogPreset;
  shutdownGraceMs?: number;
}

export interface RunningDaemon {
  /** Actual listening addresses (HOST:PORT, IPv6 in brackets). */
  readonly addresses: string[];
  readonly state: State;
  readonly pipeline: DataPlane;
  readonly logging: Logging;
  readonly startedAt: Date;
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  /**
   * Stops accepting, waits up to the grace period for open relays, closes the rest.
   * `now()` on the returned handle cuts the wait short (a second signal).
   */
  stop(): { done: Promise<void>; now(): void };
}

export { StartupError };

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  // Logging depends on the configuration ([log]); a bad configuration is fatal and is
  // reported before any logging exists.
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig(opts.config);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(formatConfigError(err));
    throw new StartupError(`${opts.config}: ${(err as Error).message}`);
  }
  const binds = (
    opts.bindProxyAddress.length ? opts.bindProxyAddress : [DEFAULT_PROXY_ADDRESS]
  ).map((a) => {
    try {
      return parseBindAddress(a);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
  });
  let logging: Logging;
  try {
    logging = createLogging({
      preset: opts.logPreset,
      audit: config.log.audit,
      level: config.log.level,
    });
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  const { log, audit } = logging;
  const state = await createState({ configPath: opts.config, log, audit });
  let control: DaemonControl | undefined;
  const pipeline = createPipeline({
    state,
    audit,
    log,
    socketTable: createSocketTable(),
    onDenial: (d) => control?.recordDenial(d),
  });
  state.onSwap((next) => pipeline.reevaluate(next).then(() => undefined));
  const snap = state.current();
  const listener = createProxyListener({
    pipeline,
    handshakeTimeoutMs: snap.config.handshakeTimeoutMs,
    maxConnections: snap.config.maxConnections,
    onError: (err, where) => log.error(`${where}: ${err.stack ?? err.message}`),
    onRefused: (c) =>
      log.warn(
        `max-connections (${snap.config.maxConnections}) reached: refused ${c.ip}:${c.port}`,
      ),
  });

  // Every client socket, whatever its stage (handshake, keep-alive, relay), so that a
  // stop can end the ones the pipeline does not know about.
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  const addresses: string[] = [];
  try {
    for (const b of binds) {
      // allowHalfOpen: a client's FIN must end only its direction (relay half-close).
      const server = net.createServer({ allowHalfOpen: true }, (sock) => {
        sockets.add(sock);
        sock.once('close', () => sockets.delete(sock));
        listener.handleSocket(sock);
      });
      server.on('error', (err) => log.error(`listener: ${err.message}`));
      servers.push(server);
      addresses.push(await listenOn(server, b));
    }
  } catch (err) {
    for (const s of servers) s.close();
    state.close();
    throw new StartupError((err as Error).message);
  }
  const startedAt = new Date();
  const reload = (trigger: ReloadTrigger) => {
    logging.reopen();
    return state.reload(trigger);
  };
  let controlServer: net.Server | undefined;
  let controlSocket: ControlServer | undefined;
  if (opts.bindRpcSocket !== undefined) {
    const path = opts.bindRpcSocket;
    control = createControlBackend({
      state,
      startedAt,
      reload: () => reload('rpc'),
      activeConnections: () => listener.active,
      listeners: () => [
        ...addresses.map((address) => ({ name: 'proxy', address, source: 'bound' as const })),
        { name: 'control', address: path, source: 'bound' as const },
      ],
    });
    try {
      controlServer = await bindControlSocket(path);
    } catch (err) {
      for (const s of servers) s.close();
      state.close();
      throw new StartupError(`cannot serve the control socket ${path}: ${(err as Error).message}`);
    }
    controlSocket = createControlServer({
      backend: control,
      authorize: createAuthorizer(() => state.current().config.rpc),
      onRefused: (call, creds) =>
        audit.write(
          auditRecord('error', {
            reason: `control: ${call.method} refused (PermissionDenied)`,
            uid: creds?.uid ?? null,
            caller_gid: creds?.gid ?? null,
            caller_pid: creds?.pid ?? null,
          }),
        ),
      onError: (err, call) =>
        log.error(`control${call ? ` ${call.method}` : ''}: ${(err as Error).stack ?? err}`),
    });
    controlSocket.attach(controlServer);
  }
  state.startWatching();
  const acl = snap.acl
    ? `ACL ${snap.acl.file} (sha256 ${snap.aclHash?.slice(0, 12)})`
    : 'NO VALID ACL: every request is denied';
  log.info(`${acl}; audit records to ${logging.auditDestination}`);
  log.info(`listening on ${addresses.join(', ')}`);

  let stopping: { done: Promise<void>; now(): void } | null = null;

  return {
    addresses,
    state,
    pipeline,
    logging,
    startedAt,
    reload,
    stop() {
      if (stopping) return stopping;
      let cut!: () => void;
      const cutShort = new Promise<void>((r) => {
        cut = r;
      });
      const grace = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
      const done = (async () => {
        for (const s of servers) s.close();
        controlServer?.close();
        controlSocket?.close();
        pipeline.stopAccepting();
        state.close();
        const open = pipeline.active;
        if (open > 0)
          log.info(`stopping: waiting up to ${grace} ms for ${open} open connection(s)`);
        const drained = await Promise.race([pipeline.drain(grace), cutShort.then(() => false)]);
        if (!drained) {
          pipeline.closeAll('shutdown');
          // Close records are written from the relays' close events.
          await pipeline.drain(2000);
        }
        listener.closeAll();
        for (const s of sockets) s.destroy();
        log.info('stopped');
        logging.flush();
      })();
      stopping = { done, now: cut };
      return stopping;
    },
  };
}
