// The backend registry: configuration → connectors, plus what the daemon learns at run
// time — dynamic backends' addresses (UpdateDynamicBackend) and each backend's health
// (failures, back-off: the rule is failover.ts's). One registry lives for the daemon's whole life; reloads hand it
// the new configuration (`update`), and each connect uses the snapshot its request
// started with.
//
// A backend is reached by composition (docs/reference/architecture.md, "The one path every
// connection takes"): TCP (Happy Eyeballs) → TLS with our [escaper] identity when
// identity-aware → SOCKS5 or HTTP CONNECT; or an SSH direct-tcpip channel. Without `type`,
// the backend speaks the client's own protocol.
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from '../../common/host-port.js';
import type { BackendHealthInfo } from '../../rpc/control-api.js';
import type {
  BackendConfig,
  Config,
  EscaperConfig,
  HostPort,
  ListenerConfig,
} from '../config/types.js';
import { watchAbort } from '../net/abort.js';
import type { Resolver } from '../net/resolver.js';
import { ConnectError, type ProxyProtocol, type Target } from '../types.js';
import { createDirectConnector, type DirectConnector } from './direct.js';
import { BackendError, BackOff, type BackOffPolicy } from './failover.js';
import { createSshConnector, type SshConnector } from './ssh.js';
import { loadTlsIdentity, type TlsIdentity, tlsWrap } from './tls-identity.js';
import {
  createH2Pool,
  HTTP1_ONLY,
  IDLE_CLOSE_MS,
  isStreamAnswer,
  tlsWrapAlpn,
} from './upstream-h2.js';
import { httpConnect } from './upstream-http.js';
import { isUpstreamReply, socks5Connect } from './upstream-socks5.js';

/** Address of a dynamic backend, as the control plane set it. */
export interface DynamicSpec {
  targetAddress: HostPort;
  identityAware: boolean;
  tlsServerName?: string;
}

/** The parts of a snapshot a connect needs (kept small for tests). */
export interface BackendSnapshot {
  readonly config: Pick<Config, 'connectTimeoutMs' | 'tcpNodelay' | 'escaper' | 'listener'> &
    Partial<Pick<Config, 'idleTimeoutMs'>>;
  readonly backends: ReadonlyMap<string, BackendConfig>;
  readonly services: { readonly resolver: Resolver };
}

export interface BackendConnectOptions {
  /** The client's protocol: what a backend without `type` speaks. */
  protocol: ProxyProtocol;
  signal: AbortSignal;
}

export interface BackendRegistry {
  /** A reload put this configuration in force: forget what no longer exists. */
  update(snap: BackendSnapshot): void;
  /** Throws for an unknown or non-dynamic backend (the control plane checks first). */
  setDynamic(name: string, spec: DynamicSpec): void;
  dynamicSpec(name: string): DynamicSpec | undefined;
  /** Every configured backend's health, in configuration order. */
  health(): BackendHealthInfo[];
  healthOf(name: string): BackendHealthInfo;
  /** In its back-off period: candidates lists skip it. */
  backedOff(name: string): boolean;
  reportFailure(name: string, err: Error): void;
  reportSuccess(name: string): void;
  /** Connects to `target` through backend `name`, within the configured connect-timeout. */
  connect(
    snap: BackendSnapshot,
    name: string,
    target: Target,
    opts: BackendConnectOptions,
  ): Promise<Duplex>;
  close(): void;
}

interface PerConfig {
  tcp: DirectConnector;
  identity?: Promise<TlsIdentity>;
}

export function createBackendRegistry(
  opts: { backOff?: BackOffPolicy; now?: () => number } = {},
): BackendRegistry {
  const backOff = new BackOff(opts.backOff, opts.now);
  const dynamic = new Map<string, DynamicSpec>();
  const ssh = new Map<string, { key: string; conn: SshConnector }>();
  const perConfig = new WeakMap<object, PerConfig>();
  // Identity-aware HTTP backends that pick h2: one pooled TLS connection per backend.
  const h2 = createH2Pool();
  let names: string[] = [];

  function services(snap: BackendSnapshot): PerConfig {
    const key = snap.config;
    let s = perConfig.get(key);
    if (!s) {
      // Backends are reached without `outgoing-address`: that one is for direct exits.
      s = {
        tcp: createDirectConnector({
          resolver: snap.services.resolver,
          connectTimeoutMs: snap.config.connectTimeoutMs,
          tcpNoDelay: snap.config.tcpNodelay,
        }),
      };
      perConfig.set(key, s);
    }
    return s;
  }

  function identity(snap: BackendSnapshot, escaper: EscaperConfig, listener: ListenerConfig) {
    const s = services(snap);
    s.identity ??= loadTlsIdentity(escaper, listener);
    // A failed load (unreadable file since the check) is retried on the next request.
    s.identity.catch(() => {
      s.identity = undefined;
    });
    return s.identity;
  }

  function sshConnector(b: BackendConfig, connectTimeoutMs: number): SshConnector {
    const key = JSON.stringify([b, connectTimeoutMs]);
    const cur = ssh.get(b.name);
    if (cur && cur.key === key) return cur.conn;
    cur?.conn.close();
    const conn = createSshConnector(b, { connectTimeoutMs });
    ssh.set(b.name, { key, conn });
    return conn;
  }

  async function through(
    snap: BackendSnapshot,
    b: BackendConfig,
    spec: DynamicSpec,
    target: Target,
    o: BackendConnectOptions,
    signal: AbortSignal,
  ): Promise<Duplex> {
    const name = b.name;
    const label = `${name} (${formatHostPort(spec.targetAddress)})`;
    const fault = (e: unknown, backendFault: boolean) => {
      if (e instanceof BackendError) return e;
      const ce = e instanceof ConnectError ? e : new ConnectError('internal', (e as Error).message);
      const msg = ce.message.includes(name) ? ce.message : `backend ${label}: ${ce.message}`;
      return new BackendError(ce.reason, msg, name, backendFault);
    };
    if (b.type === 'ssh') {
      const conf = b.dynamic ? { ...b, targetAddress: spec.targetAddress } : b;
      try {
        // The bastion's name goes through [dns] resolvers like a direct exit's (but
        // without outgoing-address, which is for direct exits only).
        return await sshConnector(conf, snap.config.connectTimeoutMs).connect(
          target,
          signal,
          (addr, sig) => services(snap).tcp.connect(addr, { signal: sig }),
        );
      } catch (e) {
        // The SSH connector does not say which side failed: count it against the bastion.
        throw fault(e, true);
      }
    }
    const kind = b.type ?? (o.protocol === 'socks5' ? 'socks5' : 'http');
    const serverName = spec.tlsServerName ?? spec.targetAddress.host;
    // HTTP backends behind TLS are offered h2 (ALPN) and pooled when they take it;
    // `http2 = false` offers only http/1.1 (a true HTTP/1.1 tunnel per connection).
    const pooled = kind === 'http' && spec.identityAware && b.http2 !== false;
    const http1Only = kind === 'http' && spec.identityAware && b.http2 === false;
    const dial = async (sig: AbortSignal) => {
      let stream: Duplex | undefined;
      try {
        stream = await services(snap).tcp.connect(
          { host: spec.targetAddress.host, port: spec.targetAddress.port },
          { signal: sig },
        );
        if (spec.identityAware) {
          // TLS writes whole records; Nagle would only delay the handshake and CONNECT.
          (stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
          const id = await identity(snap, snap.config.escaper, snap.config.listener);
          const opts = { serverName, signal: sig, label };
          stream = pooled
            ? await tlsWrapAlpn(stream, id, opts)
            : await tlsWrap(stream, id, http1Only ? { ...opts, alpn: HTTP1_ONLY } : opts);
        }
        return stream;
      } catch (e) {
        stream?.destroy();
        throw fault(e, true);
      }
    };
    // The upstream answered about the destination (SOCKS reply code, HTTP status, a
    // reset HTTP/2 stream), or the destination was slow: the backend itself is fine.
    const protocolFault = (e: unknown) => {
      const ce = e instanceof ConnectError ? e : new ConnectError('internal', String(e));
      const upstreamAnswered =
        isUpstreamReply(ce) ||
        isStreamAnswer(ce) ||
        / answered \d{3}/.test(ce.message) ||
        ce.reason === 'timeout';
      return fault(ce, !upstreamAnswered);
    };
    let stream: Duplex;
    if (pooled) {
      try {
        const via = await h2.open({
          name,
          // A reload (maybe a renewed certificate) or a new address: a new session.
          key: `${JSON.stringify(spec)}\0${snap.config.connectTimeoutMs}`,
          generation: snap.config,
          host: serverName,
          dial: (sig) => dial(sig) as Promise<TLSSocket>,
          target,
          proxy: label,
          signal,
          // An idle pooled connection goes after 30 s, or idle-timeout when shorter; a
          // probing PING must come back within connect-timeout.
          idleCloseMs: Math.min(IDLE_CLOSE_MS, snap.config.idleTimeoutMs || IDLE_CLOSE_MS),
          pingTimeoutMs: snap.config.connectTimeoutMs,
        });
        if ('tunnel' in via) return via.tunnel;
        stream = via.http1;
      } catch (e) {
        throw protocolFault(e);
      }
    } else {
      stream = await dial(signal);
    }
    try {
      if (kind === 'socks5') {
        return await socks5Connect(stream, target, {
          proxy: label,
          signal,
          timeoutMs: snap.config.connectTimeoutMs,
        });
      }
      return await httpConnect(stream, target, { proxy: label, signal });
    } catch (e) {
      stream.destroy();
      throw protocolFault(e);
    }
  }

  const api: BackendRegistry = {
    update(snap) {
      names = [...snap.backends.keys()];
      for (const n of [...dynamic.keys()]) {
        if (!snap.backends.get(n)?.dynamic) dynamic.delete(n);
      }
      backOff.keepOnly(snap.backends);
      // Sessions made for another configuration finish their tunnels, take no new ones.
      h2.retire((_name, generation) => generation === snap.config);
      for (const [n, s] of [...ssh]) {
        const b = snap.backends.get(n);
        if (!b || JSON.stringify([b, snap.config.connectTimeoutMs]) !== s.key) {
          s.conn.close();
          ssh.delete(n);
        }
      }
    },
    setDynamic(name, spec) {
      dynamic.set(name, { ...spec });
      // A new address deserves a fresh start.
      backOff.forget(name);
    },
    dynamicSpec: (name) => dynamic.get(name),
    health: () => names.map((n) => backOff.view(n)),
    healthOf: (name) => backOff.view(name),
    // The back-off (failover.ts) says when a backend is skipped and for how long.
    backedOff: (name) => backOff.backedOff(name),
    reportFailure: (name, err) => backOff.reportFailure(name, err),
    reportSuccess: (name) => backOff.reportSuccess(name),
    async connect(snap, name, target, o) {
      const b = snap.backends.get(name);
      if (!b) throw new BackendError('internal', `unknown backend ${name}`, name, false);
      const spec: DynamicSpec | undefined = b.dynamic
        ? dynamic.get(name)
        : b.targetAddress && {
            targetAddress: b.targetAddress,
            identityAware: b.identityAware,
            ...(b.tlsServerName !== undefined ? { tlsServerName: b.tlsServerName } : {}),
          };
      if (!spec) {
        throw new BackendError(
          'unreachable',
          `dynamic backend ${name} has no address yet (set it with update-dynamic-backend)`,
          name,
          true,
        );
      }
      // One deadline for the whole attempt: TCP, TLS and the proxy's answer.
      const ms = snap.config.connectTimeoutMs;
      const ac = new AbortController();
      const timer = setTimeout(
        () =>
          ac.abort(new ConnectError('timeout', `backend ${name}: no connection within ${ms} ms`)),
        ms,
      );
      // o.signal is the pipeline's, shared by every request: one listener on it for all
      // attempts (abort.ts), not one each (MaxListenersExceededWarning past 10).
      if (o.signal.aborted) ac.abort(o.signal.reason);
      const unwatch = watchAbort(o.signal, () => ac.abort(o.signal.reason));
      try {
        return await through(snap, b, spec, target, o, ac.signal);
      } finally {
        clearTimeout(timer);
        unwatch();
      }
    },
    close() {
      h2.close();
      for (const s of ssh.values()) s.conn.close();
      ssh.clear();
    },
  };
  return api;
}
