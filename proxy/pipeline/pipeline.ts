// The one path every request takes after its front-end (README.md "Layout",
// proxy/daemon/README.md): context → ACL → decision record → refusal, or connect →
// relay → close record. The front-end sees only the Pipeline interface; nothing here
// knows which protocol the client spoke.
//
// This file is the wiring: the rooms are
//   decide.ts       the decision, the fallback-to-direct verdict, the refusal;
//   admit.ts        admit → decide → connect → record, shared by tunnel and forward;
//   associate.ts    SOCKS5 UDP associations;
//   open-relays.ts  what an open relay keeps, re-evaluation on reload, drain, closeAll;
//   handover.ts     relays detached for, or resumed from, another process;
//   core.ts         what they share (one object per pipeline);
// and the way out, with its candidates, back-off and fallback, is connect/failover.ts.
import type { Duplex } from 'node:stream';
import { createBackendRegistry } from '../connect/backends.js';
import type { HandoverRecord } from '../relay/handover.js';
import { type CloseReason, RelayRegistry } from '../relay/index.js';
import type { Snapshot } from '../state/snapshot.js';
import type { Pipeline } from '../types.js';
import { forward, tunnel } from './admit.js';
import { associate } from './associate.js';
import type { PipelineCore, PipelineOptions } from './core.js';
import { detachForHandover, type HandedOver, resume } from './handover.js';
import { closeAll, drain, type OpenEntry, reevaluate } from './open-relays.js';

export type { PipelineOptions, PipelineState } from './core.js';
export type { HandedOver } from './handover.js';
export { NOT_HANDED_OVER } from './open-relays.js';

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

export function createPipeline(opts: PipelineOptions): DataPlane {
  const core: PipelineCore = {
    state: opts.state,
    audit: opts.audit,
    log: opts.log,
    socketTable: opts.socketTable,
    now: opts.now ?? (() => new Date()),
    timeZone: opts.timeZone,
    onDenial: opts.onDenial,
    metrics: opts.metrics,
    backends: opts.state.backends ?? createBackendRegistry(),
    registry: new RelayRegistry<OpenEntry>(),
    shutdown: new AbortController(),
    inflight: 0,
    stopping: false,
    idleWaiters: [],
  };
  return {
    tunnel: (req) => tunnel(core, req),
    forward: (req) => forward(core, req),
    associate: (req, handle) => associate(core, req, handle),
    reevaluate: (next) => reevaluate(core, next),
    get active() {
      return core.inflight + core.registry.size;
    },
    stopAccepting() {
      core.stopping = true;
    },
    drain: (timeoutMs) => drain(core, timeoutMs),
    closeAll: (reason, handover) => closeAll(core, reason, handover),
    get pending() {
      return core.inflight;
    },
    detachForHandover: () => detachForHandover(core),
    resume: (client, upstream, rec, unread) => resume(core, client, upstream, rec, unread),
  };
}
