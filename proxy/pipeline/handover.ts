// The pipeline's side of a restart without dropping connections (docs/operations.md
// "Upgrading and restarting without dropping connections"): open relays that can go on
// in the next process (plain TCP on both sides) are detached with their records, and
// the next process resumes them. The sockets' transfer is systemd's (proxy/daemon/
// systemd.ts); the record's format is proxy/relay/handover.ts's.
import type { Duplex } from 'node:stream';
import { type AuditRecord, auditRecord } from '../audit/record.js';
import type { RequestFacts } from '../context/request-context.js';
import { type HandoverRecord, type Json, toJson } from '../relay/handover.js';
import { type PipelineCore, settled } from './core.js';
import { NOT_HANDED_OVER, type OpenEntry, openEntry, startRelay } from './open-relays.js';

/** A relay detached for the next process (no close record written). */
export interface HandedOver {
  client: Duplex;
  upstream: Duplex;
  record: HandoverRecord;
  /** The hand-over failed after all: reset both sides and write the close record. */
  abandon(why: string): void;
}

/** The record of a relay that goes on in the next process. */
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

/** Detaches every open relay that can be handed over, without closing it or writing its
 * close record. */
export function detachForHandover(core: PipelineCore): HandedOver[] {
  const out: HandedOver[] = [];
  for (const [item, e] of core.registry.list()) {
    if (e.whyNot !== undefined) continue;
    const got = core.registry.detach(item);
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
        core.audit.write(
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
  settled(core);
  return out;
}

/** Resumes a relay handed over by the previous process; `unread` are the bytes that
 * process had read but not relayed (already written to the other side by the caller). */
export function resume(
  core: PipelineCore,
  client: Duplex,
  upstream: Duplex,
  rec: HandoverRecord,
  unread: { up: number; down: number },
): void {
  const entry = openEntry(
    rec.traceId,
    rec.fields as Partial<AuditRecord>,
    rec.facts as unknown as RequestFacts,
    rec.openValues as OpenEntry['openValues'],
    rec.remoteIp ?? undefined,
    rec.idleTimeoutMs,
    undefined,
  );
  // It may be handed over again at the next restart.
  entry.resumed = rec;
  startRelay(core, client, upstream, entry, {
    bytesUp: rec.bytesUp + unread.up,
    bytesDown: rec.bytesDown + unread.down,
    startedAt: rec.startedAt,
  });
}
