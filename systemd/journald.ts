// A writer of journald's native protocol: one datagram per entry on
// /run/systemd/journal/socket, each field `KEY=value\n`, or, when the value holds a
// newline, `KEY\n` + 64-bit little-endian length + value + `\n`. Entries too large for
// one datagram go in a sealed memfd (as sd_journal_send does). Usable directly (audit
// records, with PORTAIL_* fields) and as a pino destination (one JSON line per write).
import { addon } from './addon.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';
/** journald's own limit on a field name. */
const FIELD_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** A single value larger than this is cut (at a UTF-8 boundary) and marked: no audit
 * field is that large unless something is wrong, and journald would refuse it anyway. */
export const MAX_VALUE_BYTES = 1024 * 1024;
const TRUNCATED = Buffer.from('…[truncated]');

export type JournalScalar = string | number | bigint | boolean | Buffer;
/** An array is written as the same field repeated, one value each (journalctl -o json
 * shows it as an array, and `journalctl FIELD=one` matches any of them). */
export type JournalValue = JournalScalar | readonly JournalScalar[] | null | undefined;
export type JournalFields = Record<string, JournalValue>;

function valueBytes(v: JournalScalar): Buffer {
  const b = Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8');
  if (b.length <= MAX_VALUE_BYTES) return b;
  let end = MAX_VALUE_BYTES - TRUNCATED.length;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--; // never split a UTF-8 sequence
  return Buffer.concat([b.subarray(0, end), TRUNCATED]);
}

/** Encodes one entry (pure). Field names must be journald-valid (upper case, digits,
 * underscore, not starting with '_' or a digit, ≤ 64); null/undefined values are left out. */
export function encodeJournalEntry(fields: JournalFields): Buffer {
  // Fields without a newline (nearly all) are gathered as text and encoded once: one
  // Buffer per entry rather than three per field.
  const parts: Buffer[] = [];
  let text = '';
  for (const [name, value] of Object.entries(fields)) {
    if (!FIELD_NAME.test(name))
      throw new TypeError(`invalid journal field name: ${JSON.stringify(name)}`);
    if (value === null || value === undefined) continue;
    const values = Array.isArray(value)
      ? (value as readonly JournalScalar[])
      : [value as JournalScalar];
    for (const v of values) {
      if (!Buffer.isBuffer(v)) {
        const str = String(v);
        // ≤ 3 bytes per UTF-16 unit: short enough never to need the cut below.
        if (!str.includes('\n') && str.length * 3 <= MAX_VALUE_BYTES) {
          text += `${name}=${str}\n`;
          continue;
        }
      }
      if (text !== '') {
        parts.push(Buffer.from(text, 'utf8'));
        text = '';
      }
      const b = valueBytes(v);
      if (b.includes(0x0a)) {
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(b.length));
        parts.push(Buffer.from(`${name}\n`), len, b, Buffer.from('\n'));
      } else {
        parts.push(Buffer.from(`${name}=`), b, Buffer.from('\n'));
      }
    }
  }
  if (text !== '') parts.push(Buffer.from(text, 'utf8'));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * `bytes_up` → `PORTAIL_BYTES_UP`: the journald naming of the audit fields
 * (docs/reference/audit.md, "In the journal").
 */
export function journalFieldName(key: string, prefix = 'PORTAIL_'): string {
  const cacheKey = `${prefix}\0${key}`;
  let name = fieldNames.get(cacheKey);
  if (name === undefined) {
    name = `${prefix}${key.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`.slice(0, 64);
    // The audit's keys are a fixed set: a small bound keeps odd callers from growing it.
    if (fieldNames.size < 1024) fieldNames.set(cacheKey, name);
  }
  return name;
}
const fieldNames = new Map<string, string>();

/** pino's numeric levels → syslog priorities. */
export function priorityOfLevel(level: number): number {
  if (level >= 60) return 2; // fatal → crit
  if (level >= 50) return 3; // error → err
  if (level >= 40) return 4; // warn → warning
  if (level >= 30) return 6; // info
  return 7; // debug, trace
}

/** Converts a JSON record (a pino line, an audit record) to journal fields: `msg` →
 * MESSAGE, pino's `level` → PRIORITY, `time`/`pid`/`hostname` dropped (journald records
 * its own), names already in journald form kept, every other key prefixed and
 * upper-cased; objects become JSON text, arrays of scalars repeated fields. */
export function journalFieldsFromRecord(
  record: Record<string, unknown>,
  prefix = 'PORTAIL_',
): JournalFields {
  const out: JournalFields = {};
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined || value === null) continue;
    if (key === 'time' || key === 'pid' || key === 'hostname' || key === 'v') continue;
    if (key === 'msg' || key === 'message') {
      out.MESSAGE = String(value);
      continue;
    }
    if (key === 'level' && typeof value === 'number') {
      out.PRIORITY = priorityOfLevel(value);
      continue;
    }
    const name = FIELD_NAME.test(key) ? key : journalFieldName(key, prefix);
    if (
      Array.isArray(value) &&
      value.every((v) => ['string', 'number', 'boolean'].includes(typeof v))
    ) {
      out[name] = value as JournalScalar[];
    } else if (typeof value === 'object') {
      out[name] = JSON.stringify(value);
    } else {
      out[name] = value as JournalScalar;
    }
  }
  return out;
}

export interface JournalWriterOptions {
  socketPath?: string;
  /** SYSLOG_IDENTIFIER unless the entry sets it (default "portail"). */
  identifier?: string;
  /** Prefix for keys of JSON lines (default "PORTAIL_"). */
  prefix?: string;
  /** Longest wait when journald's queue is full, in ms (default 500; 0 = never wait).
   * Past it the entry is reported to onError, never left to block the proxy. */
  timeoutMs?: number;
  /** Called for each entry that could not be written (default: one stderr line per
   * error code and minute). */
  onError?: (err: Error, fields: JournalFields) => void;
}

export interface JournalWriter {
  /** An object = journal fields as is; a string = a JSON line (pino). Returns false when
   * the entry could not be written (reported to onError). Never throws on I/O errors. */
  write(entry: JournalFields | string): boolean;
}

function defaultOnError(): (err: Error) => void {
  const last = new Map<string, number>();
  return (err) => {
    const code = (err as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    const now = Date.now();
    if ((last.get(code) ?? 0) + 60_000 > now) return;
    last.set(code, now);
    process.stderr.write(`portail: cannot write to the journal: ${err.message}\n`);
  };
}

export function createJournalWriter(opts: JournalWriterOptions = {}): JournalWriter {
  const path = opts.socketPath ?? JOURNAL_SOCKET;
  const identifier = opts.identifier ?? 'portail';
  const timeoutMs = opts.timeoutMs ?? 500;
  const onError = opts.onError ?? defaultOnError();
  return {
    write(entry) {
      let fields: JournalFields;
      if (typeof entry === 'string') {
        const line = entry.trimEnd();
        if (line === '') return true;
        try {
          fields = journalFieldsFromRecord(
            JSON.parse(line) as Record<string, unknown>,
            opts.prefix,
          );
        } catch {
          fields = { MESSAGE: line };
        }
      } else {
        fields = entry;
      }
      const full: JournalFields = { PRIORITY: 6, SYSLOG_IDENTIFIER: identifier, ...fields };
      try {
        const data = encodeJournalEntry(full);
        try {
          addon().sendDatagram(path, data, [], timeoutMs);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EMSGSIZE' && code !== 'ENOBUFS') throw err;
          addon().sendMemfd(path, data, timeoutMs);
        }
        return true;
      } catch (err) {
        onError(err as Error, full);
        return false;
      }
    },
  };
}
