// A TCP request's way through the pipeline, shared by `tunnel` (CONNECT, SOCKS5) and
// `forward` (plain HTTP): admit (not stopping) → decide → refuse, or connect (failover,
// connect/failover.ts) → record. Each kind then says what it does with a refusal or an
// open exit through a `Kind`: one constant object per kind, so the set-up path builds no
// closure per request for it.
//
// Records (proxy/daemon/README.md "Audit records"): an allowed request's decision
// record is written once the client has its answer (its `route` names the way actually
// taken); a connect failure writes it with its close record (`connect_error`).
import type { Duplex } from 'node:stream';
import { auditRecord } from '../audit/record.js';
import { type OpenedExit, openExit } from '../connect/failover.js';
import { whyNotTransferable } from '../relay/handover.js';
import type { CloseReason } from '../relay/index.js';
import { ConnectError, type ForwardOutcome, type ProxyRequest, type Refusal } from '../types.js';
import { type PipelineCore, STOPPING, settled, writeClose } from './core.js';
import { type Decided, decide, fallbackVerdict, type Req, refusal } from './decide.js';
import { closeNote, notHandedOver, type OpenEntry, openEntry, startRelay } from './open-relays.js';

const INTERNAL: Refusal = { reason: 'internal', message: 'internal error' };

/** What a kind of request does with each outcome. */
interface Kind<R extends Req, T> {
  refused(req: R, r: Refusal): T;
  opened(core: PipelineCore, req: R, d: Decided, exit: OpenedExit, started: number): T;
  /** After an unexpected error (logged). */
  failed(req: R): T;
}

/** admit → decide → connect, then the kind's outcome. */
async function admit<R extends Req, T>(core: PipelineCore, req: R, kind: Kind<R, T>): Promise<T> {
  if (core.stopping) return kind.refused(req, STOPPING);
  // In flight until the kind registered its relay: drain never sees a gap.
  core.inflight++;
  try {
    const started = Date.now();
    const d = await decide(core, req, true);
    if (d.decision.action !== 'allow') return kind.refused(req, await refusal(core, d));
    let exit: OpenedExit;
    try {
      exit = await connect(core, d, req, started);
    } catch (err) {
      const e = err as ConnectError;
      return kind.refused(req, { reason: e.reason, message: e.message });
    }
    return kind.opened(core, req, d, exit, started);
  } catch (err) {
    core.log.error(
      `internal error on ${req.target.host}:${req.target.port}: ${(err as Error).stack}`,
    );
    return kind.failed(req);
  } finally {
    core.inflight--;
    settled(core);
  }
}

/**
 * Allowed: connect. The decision record is the caller's to write once the client has
 * its answer; a failure writes it here, with its close record (the decision said allow).
 */
async function connect(
  core: PipelineCore,
  d: Decided,
  req: Req,
  started: number,
): Promise<OpenedExit> {
  try {
    if (d.dnsError) throw d.dnsError;
    const t0 = performance.now();
    const exit = await openExit(
      d.snap,
      {
        target: req.target,
        backends: d.decision.backends,
        protocol: req.protocol,
        addresses: d.addresses,
        signal: core.shutdown.signal,
        fallback: () => fallbackVerdict(d),
      },
      core.backends,
    );
    d.fields.route = exit.route;
    core.metrics?.connected(exit.route, performance.now() - t0);
    if (exit.note) d.fields.reason = `${d.decision.reason}; ${exit.note}`;
    return exit;
  } catch (err) {
    const e =
      err instanceof ConnectError ? err : new ConnectError('internal', (err as Error).message);
    const reason = `${d.decision.reason}; ${e.message}`;
    core.metrics?.connectFailed(e.reason);
    core.audit.write(auditRecord('decision', { ...d.fields, reason }));
    closeUnopened(core, d, started, 'connect_error', reason);
    throw e;
  }
}

/** The close record of an allowed request that never relayed a byte. */
function closeUnopened(
  core: PipelineCore,
  d: Decided,
  started: number,
  closeReason: string,
  reason: string,
): void {
  const durationMs = Date.now() - started;
  writeClose(core, d.fields, { bytesUp: 0, bytesDown: 0, durationMs, closeReason }, reason);
}

/** What an allowed request keeps once open (its context and decision are dropped). */
function entryOf(d: Decided, exit: OpenedExit, whyNot: string | undefined): OpenEntry {
  const { idleTimeoutMs } = d.snap.config;
  const openValues = d.ctx.computedValues();
  return openEntry(d.traceId, d.fields, d.facts, openValues, exit.remoteIp, idleTimeoutMs, whyNot);
}

const TUNNEL: Kind<ProxyRequest, void> = {
  refused: (req, r) => req.reject(r),
  opened(core, req, d, exit, started) {
    let client: Duplex;
    try {
      client = req.accept(exit.bound);
    } catch (err) {
      exit.stream.destroy();
      core.audit.write(auditRecord('decision', d.fields));
      const why = `client gone before the reply: ${(err as Error).message}`;
      closeUnopened(core, d, started, 'client_error', why);
      return;
    }
    // Once the client has its answer: the audit is not on the reply's path.
    core.audit.write(auditRecord('decision', d.fields));
    const whyNot = whyNotTransferable(client, exit.stream) ?? undefined;
    startRelay(core, client, exit.stream, entryOf(d, exit, whyNot));
  },
  failed(req) {
    try {
      req.reject(INTERNAL);
    } catch {
      // The front-end already answered.
    }
  },
};

/** CONNECT and SOCKS5 CONNECT: the client gets its reply, then a relay. */
export function tunnel(core: PipelineCore, req: ProxyRequest): Promise<void> {
  return admit(core, req, TUNNEL);
}

const FORWARD: Kind<Req, ForwardOutcome> = {
  refused: (_req, refusal) => ({ ok: false, refusal }),
  opened(core, _req, d, exit, started) {
    core.audit.write(auditRecord('decision', d.fields));
    const entry = entryOf(d, exit, 'a plain HTTP exchange');
    let closedBy: CloseReason | undefined;
    const handle = {
      close(reason: CloseReason) {
        closedBy ??= reason;
        exit.stream.destroy();
      },
    };
    core.registry.add(handle, entry);
    let finished = false;
    return {
      ok: true,
      upstream: exit.stream,
      finish(stats) {
        if (finished) return;
        finished = true;
        core.registry.delete(handle);
        const closeReason = closedBy ?? stats.closeReason;
        writeClose(
          core,
          d.fields,
          {
            ...stats,
            durationMs: Date.now() - started,
            closeReason: notHandedOver(entry, { closeReason }).closeReason,
          },
          closeNote(entry),
        );
        settled(core);
      },
    };
  },
  failed: () => ({ ok: false, refusal: INTERNAL }),
};

/** Plain HTTP: the front-end forwards one exchange over the exit, then calls finish. */
export function forward(core: PipelineCore, req: Req): Promise<ForwardOutcome> {
  return admit(core, req, FORWARD);
}
