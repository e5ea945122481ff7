// The decision: the only place a request is judged. Context → ACL → decision record;
// the fallback-to-direct verdict (the same request judged again with route.local = true,
// docs/backends.md "When every backend fails"); and what a refused client is told
// (docs/acl.md "Explanations", proxy/daemon/README.md "What a refused client is told").
//
// Order matters for security: no connection is opened before the ACL allowed the
// request, and when the rules referenced dst.ip the connector is given exactly the
// addresses the ACL saw (never a second DNS answer: DNS-rebinding safe).
import { randomBytes } from 'node:crypto';
import { type Decision, evaluate } from '../../acl-lang/index.js';
import { type AuditRecord, auditRecord } from '../audit/record.js';
import type { FallbackVerdict } from '../connect/failover.js';
import { RequestContext, type RequestFacts } from '../context/request-context.js';
import type { Snapshot } from '../state/snapshot.js';
import { ConnectError, type ProxyRequest, type Refusal } from '../types.js';
import { decisionRecordFields, requestFields } from './audit-fields.js';
import type { PipelineCore } from './core.js';
import { refusalFor } from './refusal.js';

export type Req = Omit<ProxyRequest, 'accept' | 'reject'>;

export interface Decided {
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

/** 32 hex digits, shared by a request's decision and close records. */
export function newTraceId(): string {
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

const NO_NAMES: ReadonlySet<string> = new Set();
/** Looked up for every denial, whatever the rules referenced. */
const WHO: ReadonlySet<string> = new Set(['client.uid', 'client.user']);

/**
 * Context, ACL, decision record. `deferAllow`: an allowed request's record is written
 * once the exit is open (its `route` then names the backend actually used).
 */
export async function decide(core: PipelineCore, req: Req, deferAllow = false): Promise<Decided> {
  const { state } = core;
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
    socketTable: core.socketTable,
    now: core.now,
    timeZone: core.timeZone,
  });
  const names = snap.acl?.attributes ?? NO_NAMES;
  // Most rule sets need no I/O: then there is nothing to wait for.
  const preparing = ctx.prepare(names, core.shutdown.signal);
  if (preparing !== undefined) await preparing;
  const t0 = performance.now();
  let decision = evaluate(snap.acl, ctx, { defaultBackend: state.defaultBackend });
  const evalUs = Math.round((performance.now() - t0) * 1000);
  core.metrics?.decision(decision.action, decision.policy, evalUs);
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
          evaluate(snap.acl, ctx.withDstIp(ip), { defaultBackend: state.defaultBackend }).action ===
            'allow',
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
    await ctx.prepare(WHO, core.shutdown.signal);
    Object.assign(out.fields, requestFields(req, ctx, traceId));
  }
  if (!(deferAllow && decision.action === 'allow')) {
    core.audit.write(auditRecord('decision', out.fields));
  }
  return out;
}

/** fallback-to-direct: the policies again with route.local = true (connect/failover.ts). */
export function fallbackVerdict(d: Decided): FallbackVerdict {
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
export async function refusal(core: PipelineCore, d: Decided): Promise<Refusal> {
  const r: Refusal =
    d.dnsError && d.decision.missing.includes('dst.ip')
      ? { reason: d.dnsError.reason, message: d.dnsError.message }
      : await refusalFor(d.decision, d.ctx, d.snap.acl !== null, {
          configured: d.snap.config.explainAclRulesPath !== undefined,
          acl: d.snap.explainAcl,
        });
  if (core.onDenial) reportDenial(core, d, r);
  return r;
}

/** For `portailctl why`: who was refused, and what they were told. */
function reportDenial(core: PipelineCore, d: Decided, r: Refusal): void {
  const f = d.fields;
  try {
    core.onDenial?.({
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
        r.redirect && !r.message.includes(r.redirect) ? `${r.message} (${r.redirect})` : r.message,
      traceId: d.traceId,
    });
  } catch (err) {
    core.log.error(`onDenial: ${(err as Error).message}`);
  }
}
