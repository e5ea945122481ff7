// Audit records (docs/reference/audit.md, "Fields"): every field at top level, the same
// keys in every record (null when not applicable or not known), so that a reviewer's query
// never has to guess. Built only from the explicit fields below: no request header, token, key or
// password can reach the log by accident.
import type { ActionKind } from '../../acl-lang/types.js';
import { formatHostPort } from '../../common/host-port.js';

export type AuditEvent = 'decision' | 'close' | 'reload' | 'error';

export interface AuditRecord {
  event: AuditEvent;
  /** Shared by a request's `decision` and its `close`. */
  trace_id: string | null;
  /** `socks5` or `http` (proxy.protocol). */
  protocol: string | null;
  /** Client address `ip:port` (`[v6]:port`). */
  client: string | null;
  uid: number | null;
  user: string | null;
  process: string | null;
  device: string | null;
  host: string | null;
  port: number | null;
  action: ActionKind | null;
  policy: string | null;
  /** `direct`, or the candidate backends in order, comma-separated. */
  route: string | null;
  reason: string | null;
  tags: string[];
  eval_us: number | null;
  bytes_up?: number;
  bytes_down?: number;
  duration_ms?: number;
  close_reason?: string;
  /** Event-specific extras (reload: `result`, `acl_hash`, `trigger`, `diagnostics`). */
  [extra: string]: unknown;
}

export const EMPTY_FIELDS = {
  trace_id: null,
  protocol: null,
  client: null,
  uid: null,
  user: null,
  process: null,
  device: null,
  host: null,
  port: null,
  action: null,
  policy: null,
  route: null,
  reason: null,
  eval_us: null,
} as const;

/** A record with every field of docs/reference/audit.md, null unless given. */
export function auditRecord(event: AuditEvent, fields: Partial<AuditRecord> = {}): AuditRecord {
  return { event, ...EMPTY_FIELDS, tags: [], ...fields };
}

/**
 * `ip:port`: kept for proxy/pipeline's callers until they import formatHostPort
 * (issue 19: the pipeline is being split meanwhile).
 */
export function formatEndpoint(ip: string, port: number): string {
  return formatHostPort({ host: ip, port });
}

/** Whitespace other than single spaces (rare: checked without a regular expression). */
function needsFolding(s: string): boolean {
  return s.includes('\n') || s.includes('  ') || s.includes('\t') || s.includes('\r');
}

/**
 * One human sentence for the record (journald MESSAGE, JSON `msg`). ASCII of our own
 * (`->`, not an arrow sign): a JSON line then stays a one-byte string — half the memory
 * and no UTF-16 to UTF-8 conversion at the write, for every request — and reads the
 * same in any locale.
 */
export function auditMessage(r: AuditRecord): string {
  const dest = r.host !== null ? formatHostPort({ host: r.host, port: r.port ?? 0 }) : '?';
  // Written for every request: plain concatenation, no intermediate arrays.
  let who = r.client ?? '';
  const user = r.user ?? (r.uid !== null ? `uid ${r.uid}` : null);
  if (user !== null) who = who === '' ? user : `${who} ${user}`;
  if (r.process !== null) who = who === '' ? r.process : `${who} ${r.process}`;
  switch (r.event) {
    case 'decision': {
      let head = `${r.action}`;
      if (r.protocol) head += ` ${r.protocol}`;
      if (who !== '') head += ` ${who}`;
      // One line: a reason quoting a multi-line diagnostic is folded.
      const reason = r.reason ?? '';
      return `${head} -> ${dest}: ${needsFolding(reason) ? reason.replace(/\s+/g, ' ') : reason}`;
    }
    case 'close':
      return `close ${who} -> ${dest}: ${r.close_reason}, ${r.bytes_up ?? 0} bytes up, ${r.bytes_down ?? 0} bytes down, ${r.duration_ms ?? 0} ms`;
    case 'reload':
      return `reload ${r.result === 'ok' ? 'succeeded' : 'failed'}: ${r.reason ?? ''}`;
    default:
      return `error: ${r.reason ?? ''}`;
  }
}

/**
 * The JSON line of a record: `level`, `time`, the record's fields, `msg` — the shape
 * pino gives diagnostics, built directly (a third of pino's cost per record here).
 */
export function auditJsonLine(r: AuditRecord, timeMs = Date.now()): string {
  const level = r.event === 'error' ? 'error' : 'info';
  return `{"level":"${level}","time":"${isoTime(timeMs)}",${JSON.stringify(r).slice(1, -1)},"msg":${JSON.stringify(auditMessage(r))}}\n`;
}

let isoSecond = Number.NaN;
let isoPrefix = '';
/** `Date#toISOString()` of `ms`, formatted once per second (it was a visible cost per record). */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Years beyond 9999 have a longer form: no cache for those.
    if (iso.length !== 24) return new Date(ms).toISOString();
    isoSecond = second;
    isoPrefix = iso.slice(0, 20); // 2026-11-23T15:04:05.
  }
  const milli = ms - second * 1000;
  return `${isoPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
