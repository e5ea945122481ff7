// The one path every request takes after its front-end (ARCHITECTURE.md): context →
// ACL → decision record → refusal, or connect → relay → close record. The front-end
// sees only the Pipeline interface; nothing here knows which protocol the client spoke.
//
// Order matters for security: no connection is opened before the ACL allowed the
// request, and when the rules referenced dst.ip the connector is given exactly the
// addresses the ACL saw (never a second DNS answer: DNS-rebinding safe).
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type AclContext, type Decision, evaluate } from '../../acl-lang/index.js';
import type { AuditWriter, Log } from '../audit/logging.js';
import { auditRecord } from '../audit/record.js';
import { type BackendRegistry, createBackendRegistry } from '../connect/backends.js';
import { RequestContext, type RequestFacts } from '../context/request-context.js';
import type { SocketTable } from '../context/socket-table.js';
import { type HandoverRecord, type Json, toJson, whyNotTransferable } from '../relay/handover.js';
import { type CloseReason, type Relay, RelayRegistry, relay } from '../relay/index.js';
import type { Snapshot } from '../state/snapshot.js';
import {
  ConnectError,
  type ForwardOutcome,
  type Pipeline,
  type ProxyRequest,
  type Refusal,
} from '../types.js';
import { decisionFields, requestFields } from './audit-fields.js';
import { type FallbackVerdict, openExit } from './exit.js';
import { refusalFor } from './refusal.js';

type Req = Omit<ProxyRequest, 'accept' | 'reject'>;

export interface PipelineState {
  current(): Snapshot;
  readonly defaultBackend: string | null;
  /** Backend connectors, dynamic addresses and health (absent: a private registry). */
  readonly backends?: BackendRegistry;
}

export interface PipelineOptions {
  state: PipelineState;
  audit: AuditWriter;
  log: Log;
  socketTable: SocketTable;
  now?: () => Date;
  timeZone?: string;
  /** Every refused request (ACL deny or redirect), after its decision record. */
  onDenial?: (d: DenialInfo) => void;
}

/** What a reload needs to re-evaluate an open relay or forward exchange. */
interface OpenEntry {
  ctx: RequestContext;
  /** The attribute values computed when it was opened (never recomputed). */
  openValues: Record<string, ReturnType<AclContext['get']>>;
  /** The address actually connected to: dst.ip for rules that did not ask for it then. */
  remoteIp: string | undefined;
  /** Set when a reload closed it: the close record says why. */
  closedBy?: { decision: Decision };
  /** Restart hand-over (proxy/relay/handover.ts): the record of a relay that can go on in
   * the next process; absent when it cannot, and `whyNot` says why. */
  handover?: (at: { bytesUp: number; bytesDown: number; startedAt: number }) => HandoverRecord;
  whyNot?: string;
  /** Set when a stop closed it instead of handing it over: the close record says why. */
  stopNote?: string;
}

/** close_reason of a relay a restart closed instead of handing it over (TLS, HTTP/2,
 * plain-HTTP exchanges, a peer that does not read): a reviewer can tell them apart from
 * the `shutdown` of a final stop. */
export const NOT_HANDED_OVER = 'not_handed_over';

function notHandedOver<S extends { closeReason: string }>(e: OpenEntry, stats: S): S {
  return e.stopNote !== undefined && stats.closeReason === 'shutdown'
    ? { ...stats, closeReason: NOT_HANDED_OVER }
    : stats;
}

/** A relay detached for the next process (no close record written). */
export interface HandedOver {
  client: Duplex;
  upstream: Duplex;
  record: HandoverRecord;
  /** The hand-over failed after all: reset both sides and write the close record. */
  abandon(why: string): void;
}

export interface DataPlane extends Pipeline {
  /** Re-evaluates every open relay under `next`; closes those no longer allowed. */
  reevaluate(next: Snapshot): Promise<{ checked: number; closed: number }>;
  /** Requests being decided or connected, plus open relays and forward exchanges. */
  readonly active: number;
  /** Refuse new requests from now on (shutdown); open relays go on. */
  stopAccepting(): void;
  /** Resolves true once nothing is active, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Aborts pending connects and closes every relay with `reason`; with `handover`, the
   * close records say that they could not be handed over to the next process, and why. */
  closeAll(reason: CloseReason, handover?: boolean): void;
  /** Requests being decided or connected now (not yet relaying or refused). */
  readonly pending: number;
  /** Restart: detaches every open relay that can go on in another process (plain TCP on
   * both sides), without closing it or writing its close record. */
  detachForHandover(): HandedOver[];
  /** Resumes a relay handed over by the previous process; `unread` are the bytes that
   * process had read but not relayed (already written to the other side by the caller). */
  resume(
    client: Duplex,
    upstream: Duplex,
    record: HandoverRecord,
    unread: { up: number; down: number },
  ): void;
}

const NO_NAMES: ReadonlySet<string> = new Set();
/** Looked up for every denial, whatever the rules referenced. */
const WHO: ReadonlySet<string> = new Set(['client.uid', 'client.user']);

/** A denial, for `portailctl why` (the explanation is what the explain ACL lets the user see). */
export interface DenialInfo {
  time: Date;
  uid: number | null;
  user?: string;
  process?: string;
  host: string;
  port: number;
  protocol?: string;
  policy: string | null;
  reason: string;
  explanation: string;
  traceId: string;
}

export function createPipeline(opts: PipelineOptions): DataPlane {
  const { state, audit, log, socketTable } = opts;
  const now = opts.now ?? (() => new Date());
  const registry = new RelayRegistry<OpenEntry>();
  const shutdown = new AbortController();
  const backends = state.backends ?? createBackendRegistry();
  let inflight = 0;
  let stopping = false;
  let idleWaiters: Array<() => void> = [];

  const settled = () => {
    if (inflight === 0 && registry.size === 0 && idleWaiters.length) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  interface Decided {
    snap: Snapshot;
    ctx: RequestContext;
    decision: Decision;
    traceId: string;
    fields: ReturnType<typeof requestFields> & ReturnType<typeof decisionFields>;
    /** Where to connect when allowed (undefined = let the connector resolve). */
    addresses?: string[];
    /** Set instead of `addresses` when the ACL needed dst.ip and DNS failed. */
    dnsError?: ConnectError;
  }

  /**
   * Context, ACL, decision record. The only place a request is judged. `deferAllow`:
   * an allowed request's record is written once the exit is open (its `route` then
   * names the backend actually used).
   */
  async function decide(req: Req, deferAllow = false): Promise<Decided> {
    const snap = state.current();
    const traceId = randomUUID().replaceAll('-', '');
    const facts: RequestFacts = {
      target: req.target,
      protocol: req.protocol,
      cmd: req.cmd,
      client: req.client,
    };
    if (req.http) facts.http = req.http;
    if (req.cert) facts.cert = req.cert;
    const ctx = new RequestContext(facts, {
      resolver: snap.services.resolver,
      socketTable,
      now,
      timeZone: opts.timeZone,
    });
    const names = snap.acl?.attributes ?? NO_NAMES;
    await ctx.prepare(names, shutdown.signal);
    const t0 = process.hrtime.bigint();
    let decision = evaluate(snap.acl, ctx, { defaultBackend: state.defaultBackend });
    const evalUs = Number((process.hrtime.bigint() - t0) / 1000n);
    const out: Decided = {
      snap,
      ctx,
      decision,
      traceId,
      fields: { ...requestFields(req, ctx, traceId), ...decisionFields(decision, evalUs) },
    };
    if (names.has('dst.ip')) {
      const addrs = ctx.resolvedAddresses;
      if (addrs === undefined) {
        out.dnsError = ctx.dnsError ?? new ConnectError('dns', `cannot resolve ${req.target.host}`);
      } else if (decision.action === 'allow' && addrs.length > 1) {
        // The ACL judged the first address; a connector falling back to another one
        // must not reach an address the rules would refuse (e.g. a rebinding answer
        // mixing a public and a private address).
        out.addresses = addrs.filter(
          (ip, i) =>
            i === 0 ||
            evaluate(snap.acl, ctx.withDstIp(ip), { defaultBackend: state.defaultBackend })
              .action === 'allow',
        );
      } else {
        out.addresses = addrs;
      }
    }
    if (decision.action !== 'allow' && out.dnsError && decision.missing.includes('dst.ip')) {
      // Denied only because the name does not resolve: say so, it is the real cause.
      decision = { ...decision, reason: `${decision.reason}; ${out.dnsError.message}` };
      out.decision = decision;
      out.fields.reason = decision.reason;
    }
    if (decision.action !== 'allow') {
      // Who was refused matters to the reviewer and to `portailctl why`; a denial is
      // rare and already final, so the socket-table lookup costs no allowed request.
      await ctx.prepare(WHO, shutdown.signal);
      Object.assign(out.fields, requestFields(req, ctx, traceId));
    }
    if (!(deferAllow && decision.action === 'allow')) {
      audit.write(auditRecord('decision', out.fields));
    }
    return out;
  }

  /** fallback-to-direct: the policies again with route.local = true (SPEC 5.3). */
  function fallbackVerdict(d: Decided): FallbackVerdict {
    const acl = d.snap.acl;
    const local = evaluate(acl, d.ctx, { forceLocal: true });
    if (local.action !== 'allow') return { allowed: false, reason: local.reason };
    const verdict: FallbackVerdict = { allowed: true, reason: local.reason };
    if (d.addresses !== undefined) {
      const all = d.ctx.resolvedAddresses ?? d.addresses;
      verdict.addresses = all.filter(
        (ip, i) =>
          i === 0 || evaluate(acl, d.ctx.withDstIp(ip), { forceLocal: true }).action === 'allow',
      );
    }
    return verdict;
  }

  /** The client's answer (redacted by the explain ACL); also reported to onDenial. */
  async function refusal(d: Decided): Promise<Refusal> {
    const r: Refusal =
      d.dnsError && d.decision.missing.includes('dst.ip')
        ? { reason: d.dnsError.reason, message: d.dnsError.message }
        : await refusalFor(d.decision, d.ctx, d.snap.acl !== null, {
            configured: d.snap.config.explainAclRulesPath !== undefined,
            acl: d.snap.explainAcl,
          });
    if (opts.onDenial) {
      const f = d.fields;
      try {
        opts.onDenial({
          time: new Date(),
          uid: f.uid ?? null,
          user: f.user ?? undefined,
          process: f.process ?? undefined,
          host: String(f.host),
          port: Number(f.port),
          protocol: f.protocol ?? undefined,
          policy: d.decision.policy,
          reason: d.decision.reason,
          explanation:
            r.redirect && !r.message.includes(r.redirect)
              ? `${r.message} (${r.redirect})`
              : r.message,
          traceId: d.traceId,
        });
      } catch (err) {
        log.error(`onDenial: ${(err as Error).message}`);
      }
    }
    return r;
  }

  function closeRecord(
    d: Decided,
    stats: { bytesUp: number; bytesDown: number; durationMs: number; closeReason: string },
    reason?: string,
  ) {
    audit.write(
      auditRecord('close', {
        ...d.fields,
        ...(reason !== undefined ? { reason } : {}),
        bytes_up: stats.bytesUp,
        bytes_down: stats.bytesDown,
        duration_ms: stats.durationMs,
        close_reason: stats.closeReason,
      }),
    );
  }

  /** Allowed: connect. A failure still gets its close record (the decision said allow). */
  async function connect(d: Decided, req: Req, started: number) {
    try {
      if (d.dnsError) throw d.dnsError;
      const exit = await openExit(
        d.snap,
        {
          target: req.target,
          backends: d.decision.backends,
          protocol: req.protocol,
          addresses: d.addresses,
          signal: shutdown.signal,
          fallback: () => fallbackVerdict(d),
        },
        backends,
      );
      // The decision record names the way actually taken.
      d.fields.route = exit.route;
      if (exit.note) d.fields.reason = `${d.decision.reason}; ${exit.note}`;
      audit.write(auditRecord('decision', d.fields));
      return exit;
    } catch (err) {
      const e =
        err instanceof ConnectError ? err : new ConnectError('internal', (err as Error).message);
      audit.write(
        auditRecord('decision', { ...d.fields, reason: `${d.decision.reason}; ${e.message}` }),
      );
      closeRecord(
        d,
        {
          bytesUp: 0,
          bytesDown: 0,
          durationMs: Date.now() - started,
          closeReason: 'connect_error',
        },
        `${d.decision.reason}; ${e.message}`,
      );
      throw e;
    }
  }

  const stoppingRefusal: Refusal = { reason: 'overloaded', message: 'portail is shutting down' };

  async function tunnel(req: ProxyRequest): Promise<void> {
    if (stopping) return req.reject(stoppingRefusal);
    inflight++;
    try {
      const started = Date.now();
      const d = await decide(req, true);
      if (d.decision.action !== 'allow') return req.reject(await refusal(d));
      let exit: Awaited<ReturnType<typeof openExit>>;
      try {
        exit = await connect(d, req, started);
      } catch (err) {
        const e = err as ConnectError;
        return req.reject({ reason: e.reason, message: e.message });
      }
      let client: Duplex;
      try {
        client = req.accept(exit.bound);
      } catch (err) {
        exit.stream.destroy();
        const why = `client gone before the reply: ${(err as Error).message}`;
        closeRecord(
          d,
          {
            bytesUp: 0,
            bytesDown: 0,
            durationMs: Date.now() - started,
            closeReason: 'client_error',
          },
          why,
        );
        return;
      }
      const entry: OpenEntry = {
        ctx: d.ctx,
        openValues: d.ctx.snapshot(),
        remoteIp: exit.remoteIp,
      };
      const whyNot = whyNotTransferable(client, exit.stream);
      if (whyNot === null) {
        entry.handover = (at) => ({
          v: 1,
          traceId: d.traceId,
          ...at,
          idleTimeoutMs: d.snap.config.idleTimeoutMs,
          fields: toJson(d.fields) as { [k: string]: Json },
          facts: toJson({
            target: req.target,
            protocol: req.protocol,
            cmd: req.cmd,
            client: req.client,
            cert: req.cert,
          }) as { [k: string]: Json },
          openValues: toJson(entry.openValues) as { [k: string]: Json },
          remoteIp: entry.remoteIp ?? null,
        });
      } else entry.whyNot = whyNot;
      let r: Relay | undefined;
      let gone = false;
      r = relay(client, exit.stream, {
        idleTimeoutMs: d.snap.config.idleTimeoutMs,
        onClose(stats) {
          gone = true;
          if (r) registry.delete(r);
          const newReason = entry.closedBy
            ? `after reload: ${entry.closedBy.decision.reason}`
            : entry.stopNote;
          closeRecord(d, notHandedOver(entry, stats), newReason);
          settled();
        },
      });
      if (!gone) registry.add(r, entry);
    } catch (err) {
      log.error(`internal error on ${req.target.host}:${req.target.port}: ${(err as Error).stack}`);
      try {
        req.reject({ reason: 'internal', message: 'internal error' });
      } catch {
        // The front-end already answered.
      }
    } finally {
      inflight--;
      settled();
    }
  }

  async function forward(req: Req): Promise<ForwardOutcome> {
    if (stopping) return { ok: false, refusal: stoppingRefusal };
    inflight++;
    try {
      const started = Date.now();
      const d = await decide(req, true);
      if (d.decision.action !== 'allow') return { ok: false, refusal: await refusal(d) };
      let exit: Awaited<ReturnType<typeof openExit>>;
      try {
        exit = await connect(d, req, started);
      } catch (err) {
        const e = err as ConnectError;
        return { ok: false, refusal: { reason: e.reason, message: e.message } };
      }
      const entry: OpenEntry = {
        ctx: d.ctx,
        openValues: d.ctx.snapshot(),
        remoteIp: exit.remoteIp,
        whyNot: 'a plain HTTP exchange',
      };
      let closedBy: CloseReason | undefined;
      const handle = {
        close(reason: CloseReason) {
          closedBy ??= reason;
          exit.stream.destroy();
        },
      };
      registry.add(handle, entry);
      let finished = false;
      return {
        ok: true,
        upstream: exit.stream,
        finish(stats) {
          if (finished) return;
          finished = true;
          registry.delete(handle);
          const newReason = entry.closedBy
            ? `after reload: ${entry.closedBy.decision.reason}`
            : entry.stopNote;
          closeRecord(
            d,
            {
              ...stats,
              durationMs: Date.now() - started,
              closeReason: notHandedOver(entry, { closeReason: closedBy ?? stats.closeReason })
                .closeReason,
            },
            newReason,
          );
          settled();
        },
      };
    } catch (err) {
      log.error(`internal error on ${req.target.host}:${req.target.port}: ${(err as Error).stack}`);
      return { ok: false, refusal: { reason: 'internal', message: 'internal error' } };
    } finally {
      inflight--;
      settled();
    }
  }

  async function allowDatagram(req: Req): Promise<boolean> {
    if (stopping) return false;
    try {
      const d = await decide(req);
      if (d.decision.action !== 'allow') {
        await refusal(d);
        return false;
      }
      // Datagrams only have the direct exit.
      return (
        d.decision.action === 'allow' &&
        d.dnsError === undefined &&
        d.decision.backends.every((b) => b === 'direct')
      );
    } catch (err) {
      log.error(`internal error on datagram to ${req.target.host}: ${(err as Error).message}`);
      return false;
    }
  }

  async function reevaluate(next: Snapshot) {
    const entries = registry.list();
    const names = new Set(next.acl?.attributes ?? NO_NAMES);
    // dst.ip is the address actually connected to, never a new DNS answer.
    names.delete('dst.ip');
    let closed = 0;
    await Promise.all(
      entries.map(async ([item, e]) => {
        await e.ctx.prepare(names);
        const frozen = RequestContext.fromSnapshot(e.openValues as never, {
          now,
          timeZone: opts.timeZone,
        });
        const view: AclContext = {
          get(name) {
            const v = frozen.get(name);
            if (v !== undefined) return v;
            if (name === 'dst.ip') return e.remoteIp;
            return e.ctx.get(name);
          },
        };
        const decision = evaluate(next.acl, view, { defaultBackend: state.defaultBackend });
        if (decision.action !== 'allow') {
          e.closedBy = { decision };
          item.close('policy_changed');
          closed++;
        }
      }),
    );
    if (closed) log.info(`reload closed ${closed} of ${entries.length} open relays now denied`);
    return { checked: entries.length, closed };
  }

  return {
    tunnel,
    forward,
    allowDatagram,
    reevaluate,
    get active() {
      return inflight + registry.size;
    },
    stopAccepting() {
      stopping = true;
    },
    drain(timeoutMs) {
      if (inflight === 0 && registry.size === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          idleWaiters = idleWaiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs);
        idleWaiters.push(done);
      });
    },
    closeAll(reason, handover) {
      shutdown.abort(new ConnectError('internal', 'portail is shutting down'));
      if (handover) {
        for (const [, e] of registry.list())
          e.stopNote ??= `cannot be handed over to the next process: ${e.whyNot ?? 'still connecting'}`;
      }
      registry.closeAll(reason);
    },
    get pending() {
      return inflight;
    },
    detachForHandover() {
      const out: HandedOver[] = [];
      for (const [item, e] of registry.list()) {
        if (!e.handover) continue;
        const got = registry.detach(item);
        if (!got) continue;
        const { client, upstream, bytesUp, bytesDown, startedAt } = got.relay;
        const record = e.handover({ bytesUp, bytesDown, startedAt });
        out.push({
          client,
          upstream,
          record,
          abandon(why) {
            for (const s of [client, upstream]) {
              const sock = s as Duplex & { resetAndDestroy?: () => void };
              if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
              else s.destroy();
            }
            audit.write(
              auditRecord('close', {
                ...record.fields,
                reason: `hand-over to the next process failed: ${why}`,
                bytes_up: bytesUp,
                bytes_down: bytesDown,
                duration_ms: Date.now() - startedAt,
                close_reason: NOT_HANDED_OVER,
              }),
            );
          },
        });
      }
      settled();
      return out;
    },
    resume(client, upstream, rec, unread) {
      const ctx = new RequestContext(rec.facts as unknown as RequestFacts, {
        resolver: state.current().services.resolver,
        socketTable,
        now,
        timeZone: opts.timeZone,
      });
      const entry: OpenEntry = {
        ctx,
        openValues: rec.openValues as OpenEntry['openValues'],
        remoteIp: rec.remoteIp ?? undefined,
      };
      // It may be handed over again at the next restart.
      entry.handover = (at) => ({ ...rec, ...at });
      let r: Relay | undefined;
      let gone = false;
      r = relay(client, upstream, {
        idleTimeoutMs: rec.idleTimeoutMs,
        initial: {
          bytesUp: rec.bytesUp + unread.up,
          bytesDown: rec.bytesDown + unread.down,
          startedAt: rec.startedAt,
        },
        traceId: rec.traceId,
        onClose(stats) {
          gone = true;
          if (r) registry.delete(r);
          const reason = entry.closedBy
            ? `after reload: ${entry.closedBy.decision.reason}`
            : entry.stopNote;
          audit.write(
            auditRecord('close', {
              ...rec.fields,
              ...(reason !== undefined ? { reason } : {}),
              bytes_up: stats.bytesUp,
              bytes_down: stats.bytesDown,
              duration_ms: stats.durationMs,
              close_reason: notHandedOver(entry, stats).closeReason,
            }),
          );
          settled();
        },
      });
      if (!gone) registry.add(r, entry);
    },
  };
}
