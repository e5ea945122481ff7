// What every room of the pipeline shares: its options, the open relays, the shutdown
// signal, the count of requests being decided or connected. One object per pipeline,
// passed to each step as its first argument: the set-up path builds no closure per
// request to reach it.

import type { ActionKind } from '../../acl-lang/index.js';
import type { DenialRecord } from '../../rpc/control-api.js';
import type { AuditWriter, Log } from '../audit/logging.js';
import { type AuditRecord, auditRecord } from '../audit/record.js';
import type { BackendRegistry } from '../connect/backends.js';
import type { SocketTable } from '../context/socket-table.js';
import type { RelayRegistry } from '../relay/index.js';
import type { Snapshot } from '../state/snapshot.js';
import type { Refusal, RejectReason } from '../types.js';
import type { OpenEntry } from './open-relays.js';

export interface PipelineState {
  current(): Snapshot;
  readonly defaultBackend: string | null;
  /** Backend connectors, dynamic addresses and health (absent: a private registry). */
  readonly backends?: BackendRegistry;
}

/**
 * What the pipeline tells the metrics (proxy/metrics/): called on the set-up path, so an
 * implementation must not allocate per call (docs/reference/metrics.md).
 */
export interface PipelineObserver {
  /** Once per request judged (not the fallback re-evaluation). */
  decision(action: ActionKind, policy: string | null, evalUs: number): void;
  /** An exit opened: `route` is `direct` or the backend's name. */
  connected(route: string, ms: number): void;
  /** An allowed request whose exit could not be opened. */
  connectFailed(reason: RejectReason): void;
  /** A relay or exchange ended (its close record): bytes each way. */
  closed(bytesUp: number, bytesDown: number): void;
}

export interface PipelineOptions {
  state: PipelineState;
  audit: AuditWriter;
  log: Log;
  socketTable: SocketTable;
  now?: () => Date;
  timeZone?: string;
  /** Every refused request (ACL deny or redirect), after its decision record. */
  onDenial?: (d: DenialRecord) => void;
  /** Metrics (absent: none). */
  metrics?: PipelineObserver;
}

export interface PipelineCore {
  readonly state: PipelineState;
  readonly audit: AuditWriter;
  readonly log: Log;
  readonly socketTable: SocketTable;
  readonly now: () => Date;
  readonly timeZone: string | undefined;
  readonly onDenial: ((d: DenialRecord) => void) | undefined;
  readonly metrics: PipelineObserver | undefined;
  readonly backends: BackendRegistry;
  /** Open relays, forward exchanges and UDP associations. */
  readonly registry: RelayRegistry<OpenEntry>;
  /** Aborted by closeAll: pending connects give up. */
  readonly shutdown: AbortController;
  /** Requests being decided or connected. */
  inflight: number;
  /** stopAccepting was called: new requests are refused. */
  stopping: boolean;
  /** drain's waiters, called once nothing is active. */
  idleWaiters: Array<() => void>;
}

export const STOPPING: Refusal = { reason: 'overloaded', message: 'portail is shutting down' };

/** Wakes drain's waiters once nothing is in flight or open. */
export function settled(core: PipelineCore): void {
  if (core.inflight === 0 && core.registry.size === 0 && core.idleWaiters.length) {
    const w = core.idleWaiters;
    core.idleWaiters = [];
    for (const f of w) f();
  }
}

export interface CloseStats {
  bytesUp: number;
  bytesDown: number;
  durationMs: number;
  closeReason: string;
}

/** The close record of an allowed request (every `allow` has exactly one). */
export function writeClose(
  core: PipelineCore,
  fields: Partial<AuditRecord>,
  stats: CloseStats,
  reason?: string,
): void {
  // Built by assignment: one copy of the decision's fields per relay, no spreads.
  const r = auditRecord('close', fields);
  if (reason !== undefined) r.reason = reason;
  r.bytes_up = stats.bytesUp;
  r.bytes_down = stats.bytesDown;
  r.duration_ms = stats.durationMs;
  r.close_reason = stats.closeReason;
  core.audit.write(r);
  core.metrics?.closed(stats.bytesUp, stats.bytesDown);
}
