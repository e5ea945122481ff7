// The open relays, forward exchanges and UDP associations: what each keeps after its
// set-up, its close record, the re-evaluation of all of them when a reload changes the
// rules (docs/operations.md "Reloading the rules"), and the stop: drain, closeAll.
import type { Duplex } from 'node:stream';
import { type AclContext, type Decision, evaluate } from '../../acl-lang/index.js';
import type { AuditRecord } from '../audit/record.js';
import { RequestContext, type RequestFacts } from '../context/request-context.js';
import type { HandoverRecord } from '../relay/handover.js';
import { type CloseReason, type Relay, type RelayOptions, relay } from '../relay/index.js';
import type { Snapshot } from '../state/snapshot.js';
import { type AssociationHandle, ConnectError } from '../types.js';
import { type PipelineCore, settled, writeClose } from './core.js';

/**
 * What an open relay or forward exchange keeps: enough to write its close record, to
 * re-evaluate it on reload and to hand it over at a restart — plain data only, since
 * thousands of idle relays each keep one (the request's context, decision and closures
 * are dropped once the relay starts).
 */
export interface OpenEntry {
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
  whyNot: string | undefined;
  /** The record it came with from the previous process (it may be handed over again). */
  resumed?: HandoverRecord;
  /** Set when a reload closed it: the close record says why. */
  closedBy?: { decision: Decision };
  /** Set when a stop closed it instead of handing it over: the close record says why. */
  stopNote?: string;
  /** A SOCKS5 UDP association (re-evaluated destination by destination). */
  association?: AssociationHandle;
}

/** The one constructor of an entry (every entry has the same shape from its start). */
export function openEntry(
  traceId: string,
  fields: Partial<AuditRecord>,
  facts: RequestFacts,
  openValues: OpenEntry['openValues'],
  remoteIp: string | undefined,
  idleTimeoutMs: number,
  whyNot: string | undefined,
): OpenEntry {
  return { traceId, fields, facts, openValues, remoteIp, idleTimeoutMs, whyNot };
}

/** Who closed an entry early, for its close record's reason. */
export function closeNote(e: OpenEntry): string | undefined {
  return e.closedBy ? `after reload: ${e.closedBy.decision.reason}` : e.stopNote;
}

/** close_reason of a relay a restart closed instead of handing it over (TLS, HTTP/2,
 * plain-HTTP exchanges, a peer that does not read): a reviewer can tell them apart from
 * the `shutdown` of a final stop. */
export const NOT_HANDED_OVER = 'not_handed_over';

export function notHandedOver<S extends { closeReason: string }>(e: OpenEntry, stats: S): S {
  return e.stopNote !== undefined && stats.closeReason === 'shutdown'
    ? { ...stats, closeReason: NOT_HANDED_OVER }
    : stats;
}

/** The relay of an allowed request (or of one handed over by the previous process). */
export function startRelay(
  core: PipelineCore,
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
      if (r) core.registry.delete(r);
      writeClose(core, entry.fields, notHandedOver(entry, stats), closeNote(entry));
      settled(core);
    },
  };
  if (initial) opts.initial = initial;
  if (entry.resumed) opts.traceId = entry.resumed.traceId;
  r = relay(client, upstream, opts);
  if (!gone) core.registry.add(r, entry);
}

/** Open relays re-evaluated per turn of the event loop after a reload (~3 ms). */
const REEVALUATE_SLICE = 256;

/** Re-evaluates every open relay under `next`; closes those no longer allowed. */
export async function reevaluate(
  core: PipelineCore,
  next: Snapshot,
): Promise<{ checked: number; closed: number }> {
  const { registry, socketTable, now, timeZone } = core;
  const entries = registry.list();
  const names = new Set(next.acl?.attributes);
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
      timeZone,
    });
    await ctx.prepare(names);
    const frozen = RequestContext.fromSnapshot(e.openValues as never, { now, timeZone });
    const view: AclContext = {
      get(name) {
        const v = frozen.get(name);
        if (v !== undefined) return v;
        if (name === 'dst.ip') return e.remoteIp;
        return ctx.get(name);
      },
    };
    const decision = evaluate(next.acl, view, { defaultBackend: core.state.defaultBackend });
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
  if (closed) core.log.info(`reload closed ${closed} of ${entries.length} open relays now denied`);
  return { checked: entries.length, closed };
}

/** Resolves true once nothing is active, false after `timeoutMs`. */
export function drain(core: PipelineCore, timeoutMs: number): Promise<boolean> {
  if (core.inflight === 0 && core.registry.size === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      core.idleWaiters = core.idleWaiters.filter((w) => w !== done);
      resolve(false);
    }, timeoutMs);
    core.idleWaiters.push(done);
  });
}

/** Aborts pending connects and closes every relay; `handover`: the close records say
 * that they could not be handed over to the next process, and why. */
export function closeAll(core: PipelineCore, reason: CloseReason, handover?: boolean): void {
  core.shutdown.abort(new ConnectError('internal', 'portail is shutting down'));
  if (handover) {
    for (const [, e] of core.registry.list())
      e.stopNote ??= `cannot be handed over to the next process: ${e.whyNot ?? 'its hand-over failed'}`;
  }
  core.registry.closeAll(reason);
}
