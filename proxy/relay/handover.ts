// Restart hand-over of relays, the relay's side (docs/operations.md, "Restarting without
// dropping connections"): which relays can continue in another process, and the record
// that travels with their two descriptors through systemd's file descriptor store. It
// knows no systemd (proxy/daemon/systemd.ts moves the descriptors) and no policy (the
// pipeline fills in the audit fields and the context values it will need again).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** JSON, as the file descriptor store's metadata file holds it. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * Only a relay whose two sides are plain TCP sockets of this process can continue
 * elsewhere: a TLS session's keys and sequence numbers, an HTTP/2 stream's framing, an SSH
 * channel or a UDP association live in the process and die with it.
 */
export function transferable(stream: Duplex): stream is net.Socket {
  if (!(stream instanceof net.Socket) || stream instanceof tls.TLSSocket) return false;
  if (stream.destroyed || stream.connecting) return false;
  const handle = (stream as unknown as { _handle?: { fd?: unknown } | null })._handle;
  return typeof handle?.fd === 'number' && handle.fd >= 0;
}

/** Why a relay cannot be handed over (the close record's `reason`), or null. */
export function whyNotTransferable(client: Duplex, upstream: Duplex): string | null {
  const what = (s: Duplex) =>
    s instanceof tls.TLSSocket
      ? 'TLS'
      : s instanceof net.Socket
        ? 'a socket in an unusual state'
        : 'a stream inside the process (HTTP/2, SSH or chained TLS)';
  if (!transferable(client)) return `its client side is ${what(client)}`;
  if (!transferable(upstream)) return `its upstream side is ${what(upstream)}`;
  return null;
}

/** Everything the next process needs to resume a relay and to audit its end. */
export interface HandoverRecord {
  v: 1;
  traceId: string;
  /** Counters when it was detached (bytes still unread by then are added on resume). */
  bytesUp: number;
  bytesDown: number;
  /** Epoch milliseconds: the close record's duration covers the whole connection. */
  startedAt: number;
  idleTimeoutMs: number;
  /** The decision's audit fields: the close record repeats them (docs/reference/audit.md). */
  fields: { [key: string]: Json };
  /** The request's facts (host, port, protocol, client…), to rebuild a live context. */
  facts: { [key: string]: Json };
  /** Attribute values computed when it was opened: a reload re-evaluates it with them. */
  openValues: { [key: string]: Json };
  /** The address actually connected to (dst.ip on re-evaluation). */
  remoteIp: string | null;
}

const isObject = (v: unknown): v is { [key: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Validates a record read back from the store (written by our previous process, but a
 * downgrade or a damaged file must close the relay, not crash the daemon). */
export function parseHandoverRecord(v: unknown): HandoverRecord | string {
  if (!isObject(v) || v.v !== 1) return 'unknown record version';
  if (typeof v.traceId !== 'string' || !/^[0-9a-zA-Z_.-]{1,64}$/.test(v.traceId))
    return 'bad trace id';
  for (const k of ['bytesUp', 'bytesDown', 'startedAt', 'idleTimeoutMs'] as const)
    if (!isCount(v[k])) return `bad ${k}`;
  for (const k of ['fields', 'facts', 'openValues'] as const)
    if (!isObject(v[k])) return `bad ${k}`;
  if (v.remoteIp !== null && typeof v.remoteIp !== 'string') return 'bad remoteIp';
  return v as unknown as HandoverRecord;
}

/** A JSON-safe copy (Date → ISO text, undefined dropped, bigint → text). */
export function toJson(value: unknown): Json {
  return JSON.parse(
    JSON.stringify(value ?? null, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
  ) as Json;
}
