// Daemon wiring: configuration → logging → state → pipeline → front-ends → listening
// sockets, then reload and graceful stop. Socket activation, sd_notify and the control
// socket plug in here (systemd/, rpc/) without touching the data path.
import type { Server } from 'node:http';
import net from 'node:net';
import { formatHostPort } from '../../common/host-port.js';
import type { ControlServer } from '../../rpc/server.js';
import { createLogging, type Logging, type LogPreset } from '../audit/logging.js';
import { auditRecord } from '../audit/record.js';
import { ConfigError, formatConfigError, loadConfig } from '../config/index.js';
import { disabledMessage, onTokenDisabled } from '../connect/pkcs11-login.js';
import { installGeoDatabase, openGeoDatabase } from '../context/geoip.js';
import { createSocketTable } from '../context/socket-table.js';
import { createProxyListener } from '../listen/listener.js';
import { createTlsTerminator, readTlsSettings } from '../listen/tls.js';
import { createPipeline, type DataPlane } from '../pipeline/pipeline.js';
import {
  createState,
  type ReloadResult,
  type ReloadTrigger,
  StartupError,
  type State,
} from '../state/state.js';
import { DEFAULT_PROXY_ADDRESS, listenOn, parseBindAddress } from './bind.js';
import type { DaemonControl } from './control.js';
import { fdLimitWarning, watchFds } from './fd-watch.js';
import { createRefusalLog } from './refusal-log.js';
import {
  adopt,
  createNotifier,
  handOver,
  handoverUnavailable,
  type ListenerSource,
  passedSockets,
  resumeRelays,
  storeBound,
} from './systemd.js';

/** SIGTERM/SIGINT: open relays get this long to finish before they are closed. */
export const SHUTDOWN_GRACE_MS = 10_000;
/** Restart hand-over: connections accepted before the stop get this long to finish their
 * handshake and connect, so that they are handed over rather than refused. */
const HANDSHAKE_SETTLE_MS = 500;

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
  const socketTable = createSocketTable();
  // Metrics only when configured: prom-client is not loaded otherwise (docs/performance.md
  // "Footprint"). Its sources are read at scrape time, once everything below exists.
  const metricsAt = config.metrics.listen;
  const metricsRoom = metricsAt ? await import('../metrics/index.js') : undefined;
  const metrics = metricsRoom?.createMetrics({
    listener: {
      get byProtocol() {
        return listener.byProtocol;
      },
      get refused() {
        return listener.refused;
      },
      get handshakeTimeouts() {
        return listener.handshakeTimeouts;
      },
    },
    pipeline: {
      get active() {
        return pipeline.active;
      },
    },
    state,
    refusals: {
      get suppressed() {
        return refusals.suppressed;
      },
    },
  });
  const pipeline = createPipeline({
    state,
    audit,
    log,
    socketTable,
    onDenial: (d) => control?.recordDenial(d),
    metrics: metrics?.observer,
  });
  state.onSwap((next) => pipeline.reevaluate(next).then(() => undefined));
  const snap = state.current();
  // Gateway role: [listener] TLS and [geoip]. Unusable files are fatal at start; on a
  // reload they are logged and the previous certificates / database stay in force.
  // Refusals a peer can repeat at will are rate-limited (refusal-log.ts).
  const refusals = createRefusalLog(log, audit);
  const refusedConnection = (c: { ip: string; port: number }, reason: string) =>
    refusals.connection(c, reason);
  let tlsTerminator: ReturnType<typeof createTlsTerminator>;
  try {
    tlsTerminator = createTlsTerminator(readTlsSettings(snap.config.listener), {
      onFailure: refusedConnection,
    });
    if (snap.config.listener.requireTls && !tlsTerminator.enabled)
      throw new Error('[listener] require-tls needs tls-chain and tls-privkey');
    installGeoDatabase(
      snap.config.geoip.database ? await openGeoDatabase(snap.config.geoip.database) : undefined,
    );
  } catch (err) {
    state.close();
    throw new StartupError((err as Error).message);
  }
  state.onSwap((next) => tlsTerminator.update(readTlsSettings(next.config.listener)));
  state.onSwap(async (next) => {
    const db = next.config.geoip.database;
    installGeoDatabase(db ? await openGeoDatabase(db) : undefined);
  });
  const listener = createProxyListener({
    pipeline,
    handshakeTimeoutMs: snap.config.handshakeTimeoutMs,
    maxConnections: snap.config.maxConnections,
    onTls: tlsTerminator.onTls,
    proxyProtocol: () => state.current().config.listener.proxyProtocol,
    requireTls: () => state.current().config.listener.requireTls,
    pacDirect: () => state.current().config.pac.direct,
    onConnectionRefused: refusedConnection,
    onError: (err, where) => log.error(`${where}: ${err.stack ?? err.message}`),
    onRefused: (c) => refusals.overloaded(c, state.current().config.maxConnections),
    onMalformed: (c, protocol, reason) => refusals.malformed(c, protocol, reason),
  });
  // Every key is applied on reload (docs/configuration.md): the listener's limits too.
  state.onSwap((next) =>
    listener.setLimits({
      handshakeTimeoutMs: next.config.handshakeTimeoutMs,
      maxConnections: next.config.maxConnections,
    }),
  );
  state.onSwap((next) => logging.setLevel(next.config.log.level));
  // A token whose PIN was refused is disabled (one C_Login, never one per connection):
  // said once, loudly, in the log and the audit (docs/security.md).
  const stopTokenNews = onTokenDisabled((d) => {
    log.error(disabledMessage(d));
    audit.write(auditRecord('error', { reason: disabledMessage(d) }));
  });
  // Running out of descriptors is silent otherwise (fd-watch.ts).
  const fdWatch = watchFds(log, { busy: () => listener.active + pipeline.active > 0 });
  const warnFdLimit = (maxConnections: number) => {
    const w = fdLimitWarning(maxConnections);
    if (w !== null) log.warn(w);
  };
  warnFdLimit(snap.config.maxConnections);
  state.onSwap((next, prev) => {
    if (next.config.maxConnections !== prev.config.maxConnections)
      warnFdLimit(next.config.maxConnections);
  });

  const servers: net.Server[] = [];
  const addresses: string[] = [];
  const sources = new Map<string, ListenerSource>();
  const newProxyServer = () => {
    // allowHalfOpen: a client's FIN must end only its direction (relay half-close).
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      fdWatch.wake();
      listener.handleSocket(sock);
    });
    server.on('error', (err) => log.error(`listener: ${err.message}`));
    servers.push(server);
    return server;
  };
  let metricsServer: Server | undefined;
  const fail = (err: unknown, prefix = ''): never => {
    for (const s of servers) s.close();
    metricsServer?.close();
    state.close();
    throw new StartupError(`${prefix}${(err as Error).message}`);
  };
  // Listening sockets: from systemd when it passed some, else bound here
  // (docs/reference/systemd.md, "Listening sockets").
  const passed = passedSockets(log);
  try {
    if (passed.proxy.length > 0) {
      for (const fd of passed.proxy) {
        const server = await adopt(newProxyServer(), fd, 'tcp-listener');
        const a = server.address() as net.AddressInfo;
        const address = formatHostPort({ host: a.address, port: a.port });
        addresses.push(address);
        sources.set(address, 'systemd');
      }
    } else {
      for (const b of binds) {
        const address = await listenOn(newProxyServer(), b);
        addresses.push(address);
        sources.set(address, 'bound');
      }
      storeBound('proxy', servers, log);
    }
  } catch (err) {
    fail(err);
  }
  // Relays the previous process handed over (restart): they go on byte-exact.
  const resumed = resumeRelays(passed.relays, pipeline, log);
  if (resumed > 0) metrics?.resumed(resumed);
  // The metrics endpoint, once the proxy listens: an address that cannot be bound is
  // fatal, like the proxy's own (docs/configuration.md "[metrics]").
  let metricsAddress: string | undefined;
  if (metrics && metricsRoom && metricsAt) {
    metricsServer = metricsRoom.createMetricsServer(metrics, (err) =>
      log.error(`metrics: ${err.stack ?? err.message}`),
    );
    metricsServer.on('error', (err) => log.error(`metrics: ${err.message}`));
    try {
      metricsAddress = await listenOn(metricsServer, metricsAt);
    } catch (err) {
      fail(err, '[metrics] listen: ');
    }
  }

  const startedAt = new Date();
  const notifier = createNotifier(log);
  const reload = async (trigger: ReloadTrigger) => {
    notifier.reloading();
    logging.reopen();
    try {
      return await state.reload(trigger);
    } finally {
      notifier.ready(statusLine());
    }
  };
  const controlServers: net.Server[] = [];
  const controlPaths: string[] = [];
  let controlSocket: ControlServer | undefined;
  if (passed.control.length > 0 || opts.bindRpcSocket !== undefined) {
    // The control interface's modules only when there is a control socket
    // (docs/performance.md, "Footprint").
    const [
      { createAuthorizer },
      { bindControlSocket },
      { createControlServer },
      { createControlBackend },
    ] = await Promise.all([
      import('../../rpc/authorize.js'),
      import('../../rpc/bind.js'),
      import('../../rpc/server.js'),
      import('./control.js'),
    ]);
    try {
      if (passed.control.length > 0) {
        for (const fd of passed.control) {
          const server = await adopt(
            net.createServer({ allowHalfOpen: true }),
            fd,
            'unix-listener',
          );
          controlServers.push(server);
          controlPaths.push(String(server.address() ?? `fd ${fd}`));
        }
      } else {
        const path = opts.bindRpcSocket as string;
        controlServers.push(await bindControlSocket(path));
        controlPaths.push(path);
        storeBound('control', controlServers, log);
      }
    } catch (err) {
      for (const s of controlServers) s.close();
      fail(err, 'cannot serve the control socket: ');
    }
    const controlSource: ListenerSource = passed.control.length > 0 ? 'systemd' : 'bound';
    control = createControlBackend({
      state,
      startedAt,
      userName: (uid) => socketTable.userName(uid),
      reload: () => reload('rpc'),
      activeConnections: () => listener.active,
      listeners: () => [
        ...addresses.map((address) => ({
          name: 'proxy',
          address,
          source: sources.get(address) ?? ('bound' as const),
        })),
        ...controlPaths.map((address) => ({ name: 'control', address, source: controlSource })),
      ],
    });
    controlSocket = createControlServer({
      backend: control,
      authorize: createAuthorizer(() => state.current().config.rpc),
      onRefused: (call, creds) => refusals.controlCall(call.method, creds),
      onConnectionRefused: (uid, detail) => refusals.controlConnection(uid, detail),
      onError: (err, call) =>
        log.error(`control${call ? ` ${call.method}` : ''}: ${(err as Error).stack ?? err}`),
    });
    for (const s of controlServers) controlSocket.attach(s);
  }
  state.startWatching();
  const acl = snap.acl
    ? `ACL ${snap.acl.file} (sha256 ${snap.aclHash?.slice(0, 12)})`
    : 'NO VALID ACL: every request is denied';
  log.info(`${acl}; audit records to ${logging.auditDestination}`);
  if (controlPaths.length) log.info(`control socket ${controlPaths.join(', ')}`);
  log.info(`listening on ${addresses.join(', ')}`);
  if (metricsAddress) log.info(`metrics at http://${metricsAddress}/metrics`);
  function statusLine(): string {
    const s = state.current();
    const rules = s.acl ? `ACL ${s.aclHash?.slice(0, 12)}` : 'NO VALID ACL (denying all)';
    const last = state.lastReload;
    const reloadNote = last && !last.ok ? '; last reload FAILED' : '';
    return `serving on ${addresses.join(', ')}; ${rules}; ${listener.active} connections${reloadNote}`;
  }
  notifier.ready(statusLine());
  // Only for a service manager that listens (a no-op otherwise): no idle wakeups.
  const statusTimer = process.env.NOTIFY_SOCKET
    ? setInterval(() => notifier.status(statusLine()), 10_000).unref()
    : undefined;

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
        notifier.stopping();
        clearInterval(statusTimer);
        fdWatch.stop();
        stopTokenNews();
        for (const s of servers) s.close();
        for (const s of controlServers) s.close();
        controlSocket?.close();
        metricsServer?.close();
        metricsServer?.closeAllConnections();
        // A stop under systemd with a file descriptor store may be a restart: plain-TCP
        // relays go to the next process through the store (docs/operations.md); the
        // others are drained below. A final `systemctl stop` closes the stored ones.
        const handoverOff = handoverUnavailable();
        if (handoverOff === null) {
          const deadline = Date.now() + HANDSHAKE_SETTLE_MS;
          while (
            Date.now() < deadline &&
            (pipeline.pending > 0 || listener.active > pipeline.active)
          ) {
            await new Promise((r) => setTimeout(r, 10));
          }
          const detached = pipeline.detachForHandover();
          metrics?.handedOver(detached.length);
          await handOver(detached, log);
        } else if (pipeline.active > 0) {
          log.info(`stopping: open relays are not handed over: ${handoverOff}`);
        }
        pipeline.stopAccepting();
        state.close();
        const open = pipeline.active;
        if (open > 0)
          log.info(`stopping: waiting up to ${grace} ms for ${open} open connection(s)`);
        const drained = await Promise.race([pipeline.drain(grace), cutShort.then(() => false)]);
        if (!drained) {
          pipeline.closeAll('shutdown', handoverOff === null);
          // Close records are written from the relays' close events.
          await pipeline.drain(2000);
        }
        // Every client socket the pipeline does not know about (handshakes, keep-alive).
        listener.closeAll();
        notifier.close();
        refusals.flush();
        log.info('stopped');
        logging.flush();
      })();
      stopping = { done, now: cut };
      return stopping;
    },
  };
}
