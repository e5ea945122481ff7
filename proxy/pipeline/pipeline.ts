// The one path every request takes after its front-end (ARCHITECTURE.md): context →
// ACL → decision record → refusal, or connect → relay → close record. The front-end
// sees only the Pipeline interface; nothing here knows which protocol the client spoke.
//
// Order matters for security: no connection is opened before the ACL allowed the
// request, and when the rules referenced dst.ip the connector is given exactly the
// addresses the ACL saw (never a second DNS answer: DNS-rebinding safe).
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type AclContext, type Decision, evaluate } from '../../acl-lang/index.js';
import type { AuditWriter, Log } from '../audit/logging.js';
import { type AuditRecord, auditRecord, formatEndpoint } from '../audit/record.js';
import { type BackendRegistry, createBackendRegistry } from '../connect/backends.js';
import { datagramExit } from '../connect/datagram-exit.js';
import { RequestContext, type RequestFacts } from '../context/request-context.js';
import type { SocketTable } from '../context/socket-table.js';
import { type HandoverRecord, type Json, toJson, whyNotTransferable } from '../relay/handover.js';
import {
  type CloseReason,
  type Relay,
  type RelayOptions,
  RelayRegistry,
  relay,
} from '../relay/index.js';
import type { Snapshot } from '../state/snapshot.js';
import {
  type AssociationHandle,
  ConnectError,
  type DatagramSession,
  type ForwardOutcome,
  type Pipeline,
  type ProxyRequest,
  type Refusal,
} from '../types.js';
import { decisionRecordFields, requestFields } from './audit-fields.js';
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

/**
 * What an open relay or forward exchange keeps: enough to write its close record, to
 * re-evaluate it on reload and to hand it over at a restart — plain data only, since
 * thousands of idle relays each keep one (the request's context, decision and closures
 * are dropped once the relay starts).
 */
interface OpenEntry {
  traceId: string;
  /** The decision record's fields: the close record repeats them. */
  fields: Partial<AuditRecord>;
  /** The request as the front-end gave it (a context is rebuilt from it on reload). */
  facts: RequestFacts;
  /** The attribute values computed (I/O, clock) when it was opened, never recomputed; the
   * others are read again from `facts` on reload (they are the same). */
  openValues: Readonly<Record<string, ReturnType<AclContext['get']>>>;
  /** The address actually connected to: dst.ip for rules that did not ask for it then. */
  remoteIp: string | undefined;
  idleTimeoutMs: number;
  /** Why it cannot be handed over to the next process (undefined: it can). */
  whyNot?: string;
  /** The record it came with from the previous process (it may be handed over again). */
  resumed?: HandoverRecord;
  /** Set when a reload closed it: the close record says why. */
  closedBy?: { decision: Decision };
  /** Set when a stop closed it instead of handing it over: the close record says why. */
  stopNote?: string;
  /** A SOCKS5 UDP association (re-evaluated destination by destination). */
  association?: AssociationHandle;
}

/** 32 hex digits, shared by a request's decision and close records. */
function newTraceId(): string {
  // 16 random bytes from a pool refilled every 256 ids (randomUUID's own pool, without
  // its dashes to strip).
  if (traceOffset + 16 > tracePool.length) {
    tracePool = randomBytes(4096);
    traceOffset = 0;
  }
  const id = tracePool.toString('hex', traceOffset, traceOffset + 16);
  traceOffset += 16;
  return id;
}
let tracePool = Buffer.alloc(0);
let traceOffset = 0;

/** Restart hand-over (proxy/relay/handover.ts): the record of a relay that goes on in the next process. */
function handoverRecord(
  e: OpenEntry,
  at: { bytesUp: number; bytesDown: number; startedAt: number },
): HandoverRecord {
  if (e.resumed) return { ...e.resumed, ...at };
  const { target, protocol, cmd, client, cert } = e.facts;
  return {
    v: 1,
    traceId: e.traceId,
    ...at,
    idleTimeoutMs: e.idleTimeoutMs,
    fields: toJson(e.fields) as { [k: string]: Json },
    facts: toJson({ target, protocol, cmd, client, cert }) as { [k: string]: Json },
    openValues: toJson(e.openValues) as { [k: string]: Json },
    remoteIp: e.remoteIp ?? null,
  };
}

/** Who closed an entry early, for its close record's reason. */
function closeNote(e: OpenEntry): string | undefined {
  return e.closedBy ? `after reload: ${e.closedBy.decision.reason}` : e.stopNote;
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
/** Open relays re-evaluated per turn of the event loop after a reload (~3 ms). */
const REEVALUATE_SLICE = 256;
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
    facts: RequestFacts;
    ctx: RequestContext;
    decision: Decision;
    traceId: string;
    fields: Partial<AuditRecord>;
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
    const traceId = newTraceId();
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
    // Most rule sets need no I/O: then there is nothing to wait for.
    const preparing = ctx.prepare(names, shutdown.signal);
    if (preparing !== undefined) await preparing;
    const t0 = performance.now();
    let decision = evaluate(snap.acl, ctx, { defaultBackend: state.defaultBackend });
    const evalUs = Math.round((performance.now() - t0) * 1000);
    const out: Decided = {
      snap,
      facts,
      ctx,
      decision,
      traceId,
      fields: decisionRecordFields(req, ctx, traceId, decision, evalUs),
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
    fields: Partial<AuditRecord>,
    stats: { bytesUp: number; bytesDown: number; durationMs: number; closeReason: string },
    reason?: string,
  ) {
    // Built by assignment: one copy of the decision's fields per relay, no spreads.
    const r = auditRecord('close', fields);
    if (reason !== undefined) r.reason = reason;
    r.bytes_up = stats.bytesUp;
    r.bytes_down = stats.bytesDown;
    r.duration_ms = stats.durationMs;
    r.close_reason = stats.closeReason;
    audit.write(r);
  }

  /**
   * Allowed: connect. The decision record is the caller's to write once the client has
   * its answer (its `route` names the way actually taken); a failure writes it here,
   * with its close record (the decision said allow).
   */
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
      d.fields.route = exit.route;
      if (exit.note) d.fields.reason = `${d.decision.reason}; ${exit.note}`;
      return exit;
    } catch (err) {
      const e =
        err instanceof ConnectError ? err : new ConnectError('internal', (err as Error).message);
      audit.write(
        auditRecord('decision', { ...d.fields, reason: `${d.decision.reason}; ${e.message}` }),
      );
      closeRecord(
        d.fields,
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

  /** The relay of an allowed request (or of one handed over by the previous process). */
  function startRelay(
    client: Duplex,
    upstream: Duplex,
    entry: OpenEntry,
    initial?: { bytesUp: number; bytesDown: number; startedAt: number },
  ): void {
    let r: Relay | undefined;
    let gone = false;
    const opts: RelayOptions = {
      idleTimeoutMs: entry.idleTimeoutMs,
      onClose(stats) {
        gone = true;
        if (r) registry.delete(r);
        closeRecord(entry.fields, notHandedOver(entry, stats), closeNote(entry));
        settled();
      },
    };
    if (initial) opts.initial = initial;
    if (entry.resumed) opts.traceId = entry.resumed.traceId;
    r = relay(client, upstream, opts);
    if (!gone) registry.add(r, entry);
  }

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
        audit.write(auditRecord('decision', d.fields));
        const why = `client gone before the reply: ${(err as Error).message}`;
        closeRecord(
          d.fields,
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
      // Once the client has its answer: the audit is not on the reply's path.
      audit.write(auditRecord('decision', d.fields));
      const entry: OpenEntry = {
        traceId: d.traceId,
        fields: d.fields,
        facts: d.facts,
        openValues: d.ctx.computedValues(),
        remoteIp: exit.remoteIp,
        idleTimeoutMs: d.snap.config.idleTimeoutMs,
      };
      const whyNot = whyNotTransferable(client, exit.stream);
      if (whyNot !== null) entry.whyNot = whyNot;
      startRelay(client, exit.stream, entry);
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
      audit.write(auditRecord('decision', d.fields));
      const entry: OpenEntry = {
        traceId: d.traceId,
        fields: d.fields,
        facts: d.facts,
        openValues: d.ctx.computedValues(),
        remoteIp: exit.remoteIp,
        idleTimeoutMs: d.snap.config.idleTimeoutMs,
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
          closeRecord(
            d.fields,
            {
              ...stats,
              durationMs: Date.now() - started,
              closeReason: notHandedOver(entry, { closeReason: closedBy ?? stats.closeReason })
                .closeReason,
            },
            closeNote(entry),
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

  /**
   * SOCKS5 UDP ASSOCIATE. The association gets a decision record of its own (allowed:
   * each destination is then decided by the ACL) whose trace id its close record
   * carries; it is registered like a relay (shutdown closes it, a reload makes it
   * decide its destinations again). Datagrams only have the direct exit
   * (connect/datagram-exit.ts says when a decision naming backends may use it).
   */
  function associate(req: Req, handle: AssociationHandle): DatagramSession | Refusal {
    if (stopping) return stoppingRefusal;
    const snap = state.current();
    const started = Date.now();
    const traceId = newTraceId();
    const { target, protocol, cmd, client, cert } = req;
    const facts: RequestFacts = { target, protocol, cmd, client };
    if (cert) facts.cert = cert;
    const fields: Partial<AuditRecord> = {
      trace_id: traceId,
      protocol,
      client: formatEndpoint(client.ip, client.port),
      host: target.host,
      port: target.port,
      action: 'allow',
      route: 'direct',
      reason: 'UDP association opened: each destination is decided by the ACL',
    };
    audit.write(auditRecord('decision', fields));
    const entry: OpenEntry = {
      traceId,
      fields,
      facts,
      openValues: {},
      remoteIp: undefined,
      idleTimeoutMs: snap.config.idleTimeoutMs,
      whyNot: 'a UDP association',
      association: handle,
    };
    const item = { close: (reason: CloseReason) => handle.close(reason) };
    registry.add(item, entry);
    let ended = false;
    const { outgoingAddress, publicAddress } = snap.config;
    return {
      idleTimeoutMs: snap.config.idleTimeoutMs,
      ...(outgoingAddress !== undefined ? { outgoingAddress } : {}),
      ...(publicAddress !== undefined ? { publicAddress } : {}),
      async decide(dest) {
        if (stopping || ended) return { send: false };
        try {
          const d = await decide({ ...req, target: dest }, true);
          if (d.decision.action !== 'allow') {
            await refusal(d);
            return { send: false };
          }
          if (d.dnsError) {
            audit.write(
              auditRecord('decision', {
                ...d.fields,
                reason: `${d.decision.reason}; ${d.dnsError.message}: datagrams dropped`,
              }),
            );
            return { send: false };
          }
          const exit = datagramExit(d.decision.backends, {
            fallbackToDirect: d.snap.config.fallbackToDirect,
            reevaluate: () => fallbackVerdict(d),
          });
          if (exit.direct) d.fields.route = 'direct';
          if (exit.note) d.fields.reason = `${d.decision.reason}; ${exit.note}`;
          audit.write(auditRecord('decision', d.fields));
          if (!exit.direct) return { send: false };
          const addresses = exit.addresses ?? d.addresses;
          return addresses ? { send: true, addresses } : { send: true };
        } catch (err) {
          log.error(`internal error on datagram to ${dest.host}: ${(err as Error).message}`);
          return { send: false };
        }
      },
      resolve: (host) => snap.services.resolver.lookup(host),
      undeliverable(dest, why) {
        log.warn(
          `UDP association ${traceId}: datagrams to ${formatEndpoint(dest.host, dest.port)} dropped: ${why}`,
        );
      },
      closed(stats) {
        if (ended) return;
        ended = true;
        registry.delete(item);
        closeRecord(
          fields,
          {
            bytesUp: stats.bytesUp,
            bytesDown: stats.bytesDown,
            durationMs: Math.max(stats.durationMs, Date.now() - started),
            closeReason: notHandedOver(entry, { closeReason: stats.closeReason }).closeReason,
          },
          closeNote(entry),
        );
        settled();
      },
    };
  }

  async function reevaluate(next: Snapshot) {
    const entries = registry.list();
    const names = new Set(next.acl?.attributes ?? NO_NAMES);
    // dst.ip is the address actually connected to, never a new DNS answer.
    names.delete('dst.ip');
    let closed = 0;
    const check = async ([item, e]: (typeof entries)[number]) => {
      // An association decides each destination again, under the new rules.
      if (e.association) {
        e.association.forgetDecisions();
        return;
      }
      // A fresh context from the request's facts computes what the new rules need
      // and the old ones did not (client.uid, …); what was computed then stays.
      const ctx = new RequestContext(e.facts, {
        resolver: next.services.resolver,
        socketTable,
        now,
        timeZone: opts.timeZone,
      });
      await ctx.prepare(names);
      const frozen = RequestContext.fromSnapshot(e.openValues as never, {
        now,
        timeZone: opts.timeZone,
      });
      const view: AclContext = {
        get(name) {
          const v = frozen.get(name);
          if (v !== undefined) return v;
          if (name === 'dst.ip') return e.remoteIp;
          return ctx.get(name);
        },
      };
      const decision = evaluate(next.acl, view, { defaultBackend: state.defaultBackend });
      // Gone meanwhile (closed, or detached for the next process): not ours to close.
      if (decision.action !== 'allow' && registry.has(item)) {
        e.closedBy = { decision };
        item.close('policy_changed');
        closed++;
      }
    };
    // In slices, yielding between them: ~13 µs per relay, so 9,000 relays checked in one
    // go stalled every other relay for ~120 ms. Reloads are serialised (state.ts): no
    // newer rules can be swapped in while this runs.
    for (let i = 0; i < entries.length; i += REEVALUATE_SLICE) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      await Promise.all(entries.slice(i, i + REEVALUATE_SLICE).map(check));
    }
    if (closed) log.info(`reload closed ${closed} of ${entries.length} open relays now denied`);
    return { checked: entries.length, closed };
  }

  return {
    tunnel,
    forward,
    associate,
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
          e.stopNote ??= `cannot be handed over to the next process: ${e.whyNot ?? 'its hand-over failed'}`;
      }
      registry.closeAll(reason);
    },
    get pending() {
      return inflight;
    },
    detachForHandover() {
      const out: HandedOver[] = [];
      for (const [item, e] of registry.list()) {
        if (e.whyNot !== undefined) continue;
        const got = registry.detach(item);
        if (!got) continue;
        const { client, upstream, bytesUp, bytesDown, startedAt } = got.relay;
        const record = handoverRecord(e, { bytesUp, bytesDown, startedAt });
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
      const entry: OpenEntry = {
        traceId: rec.traceId,
        fields: rec.fields as Partial<AuditRecord>,
        facts: rec.facts as unknown as RequestFacts,
        openValues: rec.openValues as OpenEntry['openValues'],
        remoteIp: rec.remoteIp ?? undefined,
        idleTimeoutMs: rec.idleTimeoutMs,
        // It may be handed over again at the next restart.
        resumed: rec,
      };
      startRelay(client, upstream, entry, {
        bytesUp: rec.bytesUp + unread.up,
        bytesDown: rec.bytesDown + unread.down,
        startedAt: rec.startedAt,
      });
    },
  };
}
