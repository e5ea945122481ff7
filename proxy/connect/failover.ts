// Failover: how an allowed request finds its way out (docs/backends.md "Candidates and
// failover" and "When every backend fails: fallback-to-direct").
//
// - Candidates are the decision's backends, in order; the name `direct` is the direct
//   exit at its position. No candidate: the direct exit, without any loop.
// - Each attempt has its own connect-timeout (the connector enforces it); the first
//   success is used, and `route` names it.
// - Back-off: a backend that failed through its own fault (unreachable, TLS, nonsense)
//   is skipped for 5 s, then 10, 20, 40 and at most 60 s while it keeps failing; one
//   success resets it. A backend that answered that the destination failed is not at
//   fault and is not backed off. When every candidate is backed off they are all tried
//   anyway: refusing without a single attempt would only make an outage last longer.
// - Every candidate failed: with `fallback-to-direct` on and `direct` not among those
//   tried, the caller's re-evaluation of the ACL with route.local = true must allow
//   before a direct connection is even attempted (to the addresses that evaluation
//   allowed when the rules look at dst.ip). Otherwise the client gets the error of the
//   last attempt and nothing goes out directly.
// - Shutting down (the signal) stops the loop and counts against no backend.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { BackendHealthInfo } from '../../rpc/control-api.js';
import type { Config } from '../config/types.js';
import { ConnectError, type ProxyProtocol, type Target } from '../types.js';
import type { BackendRegistry, BackendSnapshot } from './backends.js';
import { connectedAddress, type DirectConnector } from './direct.js';

/** The reserved candidate name for the direct exit. */
export const DIRECT = 'direct';

// ---- Back-off -----------------------------------------------------------------------

export interface BackOffPolicy {
  initialMs: number;
  maxMs: number;
}

/** 5 s after the first failure, doubling up to 60 s; reset by a success. */
export const DEFAULT_BACKOFF: BackOffPolicy = { initialMs: 5000, maxMs: 60_000 };

/**
 * A failed attempt through a backend. `backendFault` = the backend itself could not be
 * reached or spoke nonsense (it is backed off); false = the backend answered that the
 * destination failed (it is healthy: one unreachable destination must not take a
 * backend away from everyone).
 */
export class BackendError extends ConnectError {
  constructor(
    reason: ConnectError['reason'],
    message: string,
    readonly backend: string,
    readonly backendFault: boolean,
  ) {
    super(reason, message);
  }
}

interface HealthState {
  failures: number;
  lastError?: string;
  lastFailureAt?: number;
  lastSuccessAt?: number;
  retryAt?: number;
}

/** Each backend's failures and back-off period (the registry's health, by name). */
export class BackOff {
  private readonly states = new Map<string, HealthState>();
  private readonly policy: BackOffPolicy;
  private readonly now: () => number;

  constructor(policy: BackOffPolicy = DEFAULT_BACKOFF, now: () => number = Date.now) {
    this.policy = policy;
    this.now = now;
  }

  /** In its back-off period: candidate lists skip it. */
  backedOff(name: string): boolean {
    const r = this.states.get(name)?.retryAt;
    return r !== undefined && r > this.now();
  }

  reportFailure(name: string, err: Error): void {
    const h = this.stateOf(name);
    h.lastError = err.message;
    if (err instanceof BackendError && !err.backendFault) return;
    h.failures++;
    h.lastFailureAt = this.now();
    const { initialMs, maxMs } = this.policy;
    const wait = Math.min(initialMs * 2 ** Math.min(h.failures - 1, 30), maxMs);
    h.retryAt = this.now() + wait;
  }

  reportSuccess(name: string): void {
    const h = this.stateOf(name);
    h.failures = 0;
    h.retryAt = undefined;
    h.lastSuccessAt = this.now();
  }

  /** A fresh start (a dynamic backend's new address). */
  forget(name: string): void {
    this.states.delete(name);
  }

  /** A reload: forget backends no longer configured. */
  keepOnly(names: { has(name: string): boolean }): void {
    for (const n of [...this.states.keys()]) if (!names.has(n)) this.states.delete(n);
  }

  view(name: string): BackendHealthInfo {
    const h = this.states.get(name) ?? { failures: 0 };
    const t = this.now();
    const out: BackendHealthInfo = {
      name,
      healthy: !(h.retryAt !== undefined && h.retryAt > t),
      consecutiveFailures: h.failures,
    };
    if (h.lastError !== undefined) out.lastError = h.lastError;
    if (h.lastFailureAt !== undefined) out.lastFailureAt = new Date(h.lastFailureAt);
    if (h.lastSuccessAt !== undefined) out.lastSuccessAt = new Date(h.lastSuccessAt);
    if (h.retryAt !== undefined && h.retryAt > t) out.retryAt = new Date(h.retryAt);
    return out;
  }

  private stateOf(name: string): HealthState {
    let h = this.states.get(name);
    if (!h) {
      h = { failures: 0 };
      this.states.set(name, h);
    }
    return h;
  }
}

// ---- The candidate loop -------------------------------------------------------------

export interface Attempt {
  backend: string;
  error: ConnectError;
}

export type ChainOutcome<T> =
  | { ok: true; value: T; backend: string; failures: Attempt[]; skipped: string[] }
  | { ok: false; failures: Attempt[]; skipped: string[] };

/** Candidates in order, backed-off ones skipped (unless all are); no ACL here. */
export async function tryCandidates<T>(
  candidates: readonly string[],
  open: (name: string) => Promise<T>,
  health: Pick<BackendRegistry, 'backedOff' | 'reportFailure' | 'reportSuccess'>,
  signal?: AbortSignal,
): Promise<ChainOutcome<T>> {
  const skipped = candidates.filter((c) => c !== DIRECT && health.backedOff(c));
  const order =
    skipped.length === candidates.length
      ? candidates
      : candidates.filter((c) => !skipped.includes(c));
  const failures: Attempt[] = [];
  for (const name of order) {
    if (signal?.aborted) break;
    try {
      const value = await open(name);
      if (name !== DIRECT) health.reportSuccess(name);
      return {
        ok: true,
        value,
        backend: name,
        failures,
        skipped: skipped.filter((s) => order.includes(s) === false),
      };
    } catch (err) {
      const e =
        err instanceof ConnectError ? err : new ConnectError('internal', (err as Error).message);
      // Shutting down is nobody's fault.
      if (name !== DIRECT && !signal?.aborted) health.reportFailure(name, e);
      failures.push({ backend: name, error: e });
    }
  }
  return { ok: false, failures, skipped: skipped.filter((s) => !order.includes(s)) };
}

/** One line for the audit record and the client: every attempt and why it failed. */
export function describeFailures(o: { failures: Attempt[]; skipped: string[] }): string {
  const parts = o.failures.map((f) => f.error.message);
  if (o.skipped.length) parts.push(`skipped (backing off): ${o.skipped.join(', ')}`);
  return parts.join('; ');
}

// ---- The way out, with fallback-to-direct -------------------------------------------

/** The fallback re-evaluation's answer (the ACL with route.local = true). */
export interface FallbackVerdict {
  allowed: boolean;
  /** Why (the forced-local decision's reason), for the audit record. */
  reason: string;
  /** Addresses that evaluation allowed (dst.ip rules); undefined = resolve. */
  addresses?: string[];
}

/** The parts of a snapshot opening an exit needs (a state Snapshot is one). */
export interface ExitSnapshot extends BackendSnapshot {
  readonly config: BackendSnapshot['config'] & Pick<Config, 'fallbackToDirect'>;
  readonly services: BackendSnapshot['services'] & { readonly direct: DirectConnector };
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

function direct(
  snap: ExitSnapshot,
  target: Target,
  addresses: string[] | undefined,
  signal: AbortSignal,
): Promise<net.Socket> {
  return snap.services.direct.connect(target, { signal, addresses });
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

/** Opens the way out of an allowed request: its candidates, then fallback-to-direct. */
export function openExit(
  snap: ExitSnapshot,
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
  snap: ExitSnapshot,
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
  if (snap.config.fallbackToDirect && !triedDirect && req.fallback && !req.signal.aborted)
    return fallbackToDirect(snap, req, req.fallback(), what, last);
  throw new ConnectError(last?.reason ?? 'unreachable', what || 'no backend could be tried');
}

/** Every candidate failed: out directly only if the route.local re-evaluation allows. */
async function fallbackToDirect(
  snap: ExitSnapshot,
  req: ExitRequest,
  verdict: FallbackVerdict,
  what: string,
  last: ConnectError | undefined,
): Promise<OpenedExit> {
  if (!verdict.allowed)
    throw new ConnectError(
      last?.reason ?? 'unreachable',
      `${what}; fallback-to-direct refused by the ACL (${verdict.reason})`,
    );
  try {
    const sock = await direct(snap, req.target, verdict.addresses, req.signal);
    return opened(sock, DIRECT, `fallback-to-direct (${verdict.reason}) after: ${what}`);
  } catch (err) {
    const e = err instanceof ConnectError ? err : new ConnectError('internal', String(err));
    throw new ConnectError(e.reason, `${what}; fallback-to-direct: ${e.message}`);
  }
}
