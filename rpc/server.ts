// The control socket's server: Varlink over a unix stream socket the daemon hands in
// (bound by path or received from systemd). Many clients at once; on each connection,
// calls are answered one after another, in order. Every call is checked in this
// order: known interface and method, authorization, parameters, then the method runs.
import type net from 'node:net';
import type { Authorize, PeerCred } from './authorize.js';
import type { ControlBackend } from './control-api.js';
import { backendError, HANDLERS, type HandlerContext, type ServiceInfo } from './handlers.js';
import { validateFields } from './idl.js';
import { loadInterfaces } from './interfaces.js';
import { type PeerCredSource, socketPeerCred } from './peer-cred.js';
import {
  asCall,
  DEFAULT_MAX_MESSAGE_BYTES,
  type Decoded,
  encodeMessage,
  SERVICE_ERRORS,
  splitMethod,
  type VarlinkCall,
  VarlinkDecoder,
  VarlinkError,
  type VarlinkReply,
} from './varlink-codec.js';
import { packageInfo } from './version.js';

export interface ControlServerOptions {
  backend: ControlBackend;
  authorize: Authorize;
  /** Default: SO_PEERCRED through the systemd addon. A throw means "unknown caller". */
  getPeerCred?: PeerCredSource;
  /** Every refused call (the daemon audits it). */
  onRefused?: (call: VarlinkCall, creds: PeerCred | null) => void;
  /** A connection closed at once because its uid, or all non-root callers, hold too many (the daemon logs it, rate-limited). */
  onConnectionRefused?: (uid: number | null, detail: string) => void;
  /** Unexpected failures (a backend bug, a peer-credential error), for the daemon's log. */
  onError?: (err: unknown, call?: VarlinkCall) => void;
  /** GetInfo's answer; defaults from package.json. */
  info?: Partial<ServiceInfo>;
  maxMessageBytes?: number;
  /** Non-root connections beyond this are closed at once (default 256). */
  maxConnections?: number;
  /** Connections of one non-root uid beyond this are closed at once (default 32). */
  maxConnectionsPerUser?: number;
  /** A connection with no traffic for this long is closed (default 5 minutes). */
  idleTimeoutMs?: number;
}

export interface ControlServer {
  /** Serve every connection `server` accepts from now on. */
  attach(server: net.Server): void;
  /** Serve one accepted connection. */
  handleConnection(socket: net.Socket): void;
  /** Close every open connection (the listening servers belong to the caller). */
  close(): void;
  readonly connectionCount: number;
}

/** Parsed calls waiting on a connection before reading pauses (backpressure). */
const MAX_QUEUED = 16;

export function createControlServer(opts: ControlServerOptions): ControlServer {
  const interfaces = loadInterfaces();
  const pkg = packageInfo();
  const info: ServiceInfo = {
    vendor: 'portail',
    product: 'portail',
    version: pkg.version,
    url: pkg.url,
    ...opts.info,
  };
  const getPeerCred = opts.getPeerCred ?? socketPeerCred;
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxConnections = opts.maxConnections ?? 256;
  const maxConnectionsPerUser = opts.maxConnectionsPerUser ?? 32;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 5 * 60_000;
  const connections = new Set<net.Socket>();
  const report = (err: unknown, call?: VarlinkCall) => {
    try {
      opts.onError?.(err, call);
    } catch {
      // A failing logger must not take the control socket down.
    }
  };
  const refused = (call: VarlinkCall, creds: PeerCred | null) => {
    try {
      opts.onRefused?.(call, creds);
    } catch (e) {
      report(e, call);
    }
  };

  async function dispatch(message: Record<string, unknown>, creds: PeerCred | null) {
    const shape = asCall(message);
    if ('invalid' in shape) {
      return { oneway: false, reply: invalidParameter(shape.invalid) };
    }
    const call = shape;
    const reply = await answer(call, creds).catch((e: unknown) => {
      const err = backendError(e);
      if (err.error.endsWith('.InternalError')) report(e, call);
      return err.toReply();
    });
    return { oneway: call.oneway === true, reply };
  }

  async function answer(call: VarlinkCall, creds: PeerCred | null): Promise<VarlinkReply> {
    const parts = splitMethod(call.method);
    const iface = parts && interfaces.get(parts[0]);
    if (!parts || !iface) {
      return new VarlinkError(SERVICE_ERRORS.InterfaceNotFound, {
        interface: parts?.[0] ?? call.method,
      }).toReply();
    }
    const method = iface.methods.get(parts[1]);
    if (!method) {
      return new VarlinkError(SERVICE_ERRORS.MethodNotFound, { method: call.method }).toReply();
    }
    // Connection upgrades are for protocols other than Varlink; none is offered here.
    if (call.upgrade) return invalidParameter('upgrade');

    let allowed = false;
    try {
      allowed = await opts.authorize(creds, call);
    } catch (e) {
      report(e, call);
    }
    if (!allowed) {
      refused(call, creds);
      return new VarlinkError(`${iface.name}.PermissionDenied`).toReply();
    }

    const params = call.parameters ?? {};
    const bad = validateFields(iface, method.input, params, { strict: true });
    if (bad !== undefined) return invalidParameter(bad);

    const handler = HANDLERS[call.method];
    if (!handler) {
      return new VarlinkError(SERVICE_ERRORS.MethodNotImplemented, {
        method: call.method,
      }).toReply();
    }
    const ctx: HandlerContext = {
      backend: opts.backend,
      creds,
      info,
      interfaces,
      refuse(errorName) {
        refused(call, creds);
        throw new VarlinkError(errorName);
      },
    };
    const out = await handler(ctx, params);
    // The interface definition is the contract: never send a reply that breaks it.
    const wrong = validateFields(iface, method.output, out, { strict: true });
    if (wrong !== undefined) {
      throw new Error(`${call.method} produced an invalid "${wrong}"`);
    }
    return { parameters: out };
  }

  // Non-root connections, in total and per uid: a local user must not be able to
  // exhaust the socket and block root's `portailctl reload`. Root is never refused.
  const perUid = new Map<number, number>();
  let nonRoot = 0;

  function admit(socket: net.Socket, creds: PeerCred | null): boolean {
    const uid = creds?.uid ?? -1;
    if (uid === 0) return true;
    const mine = perUid.get(uid) ?? 0;
    if (nonRoot >= maxConnections || mine >= maxConnectionsPerUser) {
      // A caller's own doing, not a daemon failure: no stack trace, and rate-limited by
      // the daemon (a loop of connects must not flood the log).
      try {
        opts.onConnectionRefused?.(
          uid < 0 ? null : uid,
          `${mine} open for that uid, ${nonRoot} in all`,
        );
      } catch (e) {
        report(e);
      }
      return false;
    }
    nonRoot++;
    perUid.set(uid, mine + 1);
    socket.once('close', () => {
      nonRoot--;
      const n = (perUid.get(uid) ?? 1) - 1;
      if (n > 0) perUid.set(uid, n);
      else perUid.delete(uid);
    });
    return true;
  }

  function handleConnection(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    // Nothing is read before the caller is known and admitted.
    socket.pause();
    void (async () => {
      // SO_PEERCRED is fixed at connect(): read it once, first.
      let creds: PeerCred | null = null;
      try {
        creds = await getPeerCred(socket);
      } catch (e) {
        report(e);
      }
      if (socket.destroyed) return;
      if (!admit(socket, creds)) {
        socket.destroy();
        return;
      }
      serve(socket, creds);
    })();
  }

  function serve(socket: net.Socket, creds: PeerCred | null): void {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.setTimeout(idleTimeoutMs, () => {
      // A call still running (a long reload) is not idleness.
      if (busy) socket.setTimeout(idleTimeoutMs);
      else socket.destroy();
    });

    const decoder = new VarlinkDecoder(maxMessageBytes);
    const queue: Decoded[] = [];
    let busy = false;
    let ended = false;

    const send = async (reply: VarlinkReply) => {
      if (socket.destroyed || !socket.writable) return;
      if (!socket.write(encodeMessage(reply))) {
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
    };

    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        while (queue.length > 0 && !socket.destroyed) {
          const item = queue.shift() as Decoded;
          if (!item.ok) {
            // The stream cannot be resynchronised: answer, then close.
            await send(
              invalidParameter(item.failure.kind === 'oversize' ? 'message-size' : 'message'),
            );
            queue.length = 0;
            socket.end();
            break;
          }
          const { oneway, reply } = await dispatch(item.message, creds);
          if (!oneway) await send(reply);
          if (queue.length < MAX_QUEUED / 2 && socket.isPaused()) socket.resume();
        }
      } catch (e) {
        report(e);
        socket.destroy();
      } finally {
        busy = false;
        if (ended && queue.length === 0 && !socket.destroyed) socket.end();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      for (const d of decoder.push(chunk)) queue.push(d);
      if (queue.length >= MAX_QUEUED) socket.pause();
      void pump();
    });
    socket.resume();
    // A client that half-closes after its last call still gets its answers (when the
    // listening server allows half-open sockets, as bindControlSocket's does).
    socket.on('end', () => {
      ended = true;
      if (!busy && queue.length === 0) socket.end();
    });
  }

  return {
    attach(server) {
      server.on('connection', handleConnection);
    },
    handleConnection,
    close() {
      for (const s of connections) s.destroy();
      connections.clear();
    },
    get connectionCount() {
      return connections.size;
    },
  };
}

function invalidParameter(parameter: string): VarlinkReply {
  return new VarlinkError(SERVICE_ERRORS.InvalidParameter, { parameter }).toReply();
}
