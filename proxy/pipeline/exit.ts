// Opening the way out for an allowed request (SPEC 5.3): the decision's candidates in
// order — `direct` or a configured backend — each with connect-timeout, backed-off
// backends skipped. When all fail and `fallback-to-direct` is on, the caller's
// re-evaluation with `route.local = true` must allow before a direct connection is
// even attempted; otherwise the client gets the error and nothing goes out directly.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { BackendRegistry } from '../connect/backends.js';
import { DIRECT, describeFailures, tryCandidates } from '../connect/chain.js';
import { connectedAddress } from '../connect/direct.js';
import type { Snapshot } from '../state/snapshot.js';
import { ConnectError, type ProxyProtocol, type Target } from '../types.js';

/** The fallback re-evaluation's answer. */
export interface FallbackVerdict {
  allowed: boolean;
  /** Why (the forced-local decision's reason), for the audit record. */
  reason: string;
  /** Addresses that evaluation allowed (dst.ip rules); undefined = resolve. */
  addresses?: string[];
}

export interface ExitRequest {
  target: Target;
  /** Ordered backend candidates from the decision; empty = direct. */
  backends: readonly string[];
  /** The client's protocol: what a backend without `type` speaks. */
  protocol: ProxyProtocol;
  /** Addresses the ACL checked (dst.ip): connect to those only. */
  addresses?: string[];
  signal: AbortSignal;
  /** fallback-to-direct's re-evaluation of the policies with route.local = true. */
  fallback?: () => FallbackVerdict;
}

export interface OpenedExit {
  stream: Duplex;
  /** For the protocol's success reply. */
  bound: { address: string; port: number };
  /** The peer actually connected to when direct (re-evaluation on reload sees it as dst.ip). */
  remoteIp: string | undefined;
  /** The backend actually used (`direct` for a direct exit), for the audit `route`. */
  route: string;
  /** What happened on the way (failed candidates, fallback), for the audit `reason`. */
  note?: string;
}

async function direct(
  snap: Snapshot,
  target: Target,
  addresses: string[] | undefined,
  signal: AbortSignal,
) {
  const sock: net.Socket = await snap.services.direct.connect(target, { signal, addresses });
  return sock;
}

function opened(stream: Duplex, route: string, note?: string): OpenedExit {
  const sock = stream instanceof net.Socket ? stream : undefined;
  const out: OpenedExit = {
    stream,
    bound: { address: sock?.localAddress ?? '0.0.0.0', port: sock?.localPort ?? 0 },
    remoteIp: route === DIRECT && sock ? connectedAddress(sock) : undefined,
    route,
  };
  if (note) out.note = note;
  return out;
}

export function openExit(
  snap: Snapshot,
  req: ExitRequest,
  registry: BackendRegistry,
): Promise<OpenedExit> {
  // No route and no default backend: the common case needs no candidate loop (and no
  // async layer: the connect starts in this call).
  if (req.backends.length === 0)
    return snap.services.direct
      .connect(req.target, { signal: req.signal, addresses: req.addresses })
      .then(openedDirect);
  return throughCandidates(snap, req, registry);
}

const openedDirect = (sock: net.Socket) => opened(sock, DIRECT);

async function throughCandidates(
  snap: Snapshot,
  req: ExitRequest,
  registry: BackendRegistry,
): Promise<OpenedExit> {
  const candidates = req.backends;
  const outcome = await tryCandidates(
    candidates,
    (name) =>
      name === DIRECT
        ? direct(snap, req.target, req.addresses, req.signal)
        : registry.connect(snap, name, req.target, { protocol: req.protocol, signal: req.signal }),
    registry,
    req.signal,
  );
  if (outcome.ok) {
    const note =
      outcome.failures.length || outcome.skipped.length
        ? `via ${outcome.backend} after: ${describeFailures(outcome)}`
        : undefined;
    return opened(outcome.value, outcome.backend, note);
  }
  const last = outcome.failures.at(-1)?.error;
  const onlyDirect = candidates.every((c) => c === DIRECT);
  if (onlyDirect && last) throw last;
  const what = describeFailures(outcome);
  const triedDirect = outcome.failures.some((f) => f.backend === DIRECT);
  if (snap.config.fallbackToDirect && !triedDirect && req.fallback && !req.signal.aborted) {
    const verdict = req.fallback();
    if (verdict.allowed) {
      try {
        const sock = await direct(snap, req.target, verdict.addresses, req.signal);
        return opened(sock, DIRECT, `fallback-to-direct (${verdict.reason}) after: ${what}`);
      } catch (err) {
        const e = err instanceof ConnectError ? err : new ConnectError('internal', String(err));
        throw new ConnectError(e.reason, `${what}; fallback-to-direct: ${e.message}`);
      }
    }
    throw new ConnectError(
      last?.reason ?? 'unreachable',
      `${what}; fallback-to-direct refused by the ACL (${verdict.reason})`,
    );
  }
  throw new ConnectError(last?.reason ?? 'unreachable', what || 'no backend could be tried');
}
