// Where audit records and diagnostics go (docs/reference/audit.md, "Destinations"):
// - development: diagnostics as human lines on stderr; audit likewise unless `[log] audit`;
// - container: one JSON object per line on stdout, audit and diagnostics alike;
// - systemd: journald's native protocol (PORTAIL_* fields, MESSAGE, PRIORITY).
// `[log] audit` overrides the audit destination only. journald needs its socket and
// the native addon: without them the records go to stdout as JSON, with one warning.
// Records are written once per decision/close (batch.ts: a decision at once, a close up
// to 10 ms later with the next write): nothing here runs per relayed byte.
import { existsSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import { addon } from '../../systemd/addon.js';
import {
  createJournalWriter,
  JOURNAL_SOCKET,
  journalFieldsFromRecord,
} from '../../systemd/journald.js';
import type { AuditSink, LogLevel } from '../config/types.js';
import { atExit, type Batcher, createBatcher } from './batch.js';
import { type FileSink, openFileSink } from './file-sink.js';
import { humanLine, keyValues } from './human.js';
import { type AuditRecord, auditJsonLine, auditMessage, auditRecord } from './record.js';

export type LogPreset = 'development' | 'systemd' | 'container';

/** Diagnostics (not audit): startup, reloads, errors of the daemon itself. */
export interface Log {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface AuditWriter {
  write(record: AuditRecord): void;
}

export interface Logging {
  log: Log;
  audit: AuditWriter;
  /** Human description of the audit destination (for the startup line and status). */
  auditDestination: string;
  /** Re-open an audit file (log rotation; done on SIGHUP). */
  reopen(): void;
  /** Write out everything buffered (before exit). */
  flush(): void;
  /** `[log] level` changed by a reload: applies to diagnostics from now on. */
  setLevel(level: LogLevel): void;
}

export interface LoggingOptions {
  preset: LogPreset;
  audit?: AuditSink;
  level?: LogLevel;
  /** Test seam: is journald reachable? Default: its socket exists and the addon loads. */
  journaldAvailable?: () => boolean;
}

const LEVELS: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};

interface Stream {
  dest: DestinationStream & { flushSync?: () => void };
}

function journaldReachable(): boolean {
  if (!existsSync(JOURNAL_SOCKET)) return false;
  try {
    // The addon is the other precondition: a failed build must not lose records.
    addon();
    return true;
  } catch {
    return false;
  }
}

export function createLogging(opts: LoggingOptions): Logging {
  let minLevel = LEVELS[opts.level ?? 'info'] ?? 30;
  let pinoLogger: Logger | undefined;
  const streams = new Map<string, Stream>();
  const warnings: string[] = [];
  const journalOk = opts.journaldAvailable ?? journaldReachable;

  function stream(key: 'stdout' | 'stderr'): Stream {
    let s = streams.get(key);
    if (!s) {
      const dest =
        key === 'stdout'
          ? pino.destination({ dest: 1, sync: false })
          : pino.destination({ dest: 2, sync: true });
      // A closed stdout must not crash the proxy; say it once.
      let reported = false;
      dest.on('error', (err: Error) => {
        if (reported) return;
        reported = true;
        process.stderr.write(`portail: error: cannot write logs to ${key}: ${err.message}\n`);
      });
      s = { dest };
      streams.set(key, s);
    }
    return s;
  }

  function jsonLogger(key: 'stdout', level: string): Logger {
    return pino(
      {
        level,
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      stream(key).dest,
    );
  }

  // ---- diagnostics ----------------------------------------------------------------
  let log: Log;
  const journal =
    opts.preset === 'systemd' || opts.audit?.kind === 'journald'
      ? journalOk()
        ? createJournalWriter()
        : null
      : null;
  if (opts.preset === 'container') {
    const l = jsonLogger('stdout', opts.level ?? 'info');
    pinoLogger = l;
    log = {
      debug: (m, f) => l.debug(f ?? {}, m),
      info: (m, f) => l.info(f ?? {}, m),
      warn: (m, f) => l.warn(f ?? {}, m),
      error: (m, f) => l.error(f ?? {}, m),
    };
  } else if (opts.preset === 'systemd' && journal) {
    const prio: Record<string, number> = { debug: 7, info: 6, warn: 4, error: 3 };
    const at = (level: string) => (m: string, f?: Record<string, unknown>) => {
      if ((LEVELS[level] ?? 30) < minLevel) return;
      journal.write({
        ...journalFieldsFromRecord(f ?? {}),
        MESSAGE: m,
        PRIORITY: prio[level] ?? 6,
      });
    };
    log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  } else {
    const err = stream('stderr');
    const at = (level: string) => (m: string, f?: Record<string, unknown>) => {
      if ((LEVELS[level] ?? 30) < minLevel) return;
      err.dest.write(humanLine(level === 'warn' ? 'warning' : level, m, f));
    };
    log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    if (opts.preset === 'systemd')
      warnings.push('journald is not reachable: diagnostics go to stderr');
  }

  // ---- audit ----------------------------------------------------------------------
  let sink = opts.audit ?? (opts.preset === 'systemd' ? { kind: 'journald' as const } : undefined);
  if (sink?.kind === 'journald' && !journal) {
    warnings.push('journald is not reachable: audit records go to stdout as JSON lines');
    sink = { kind: 'stdout' };
  }
  let audit: AuditWriter;
  let auditDestination: string;
  // Decisions leave at once, close records in batches a few milliseconds later (batch.ts).
  let batch: Pick<Batcher<unknown>, 'flush'> | undefined;
  let file: FileSink | undefined;
  if (sink?.kind === 'journald' && journal) {
    auditDestination = 'journald';
    const b = createBatcher<AuditRecord>((records) => {
      for (const r of records) {
        const fields = journalFieldsFromRecord({ ...r, msg: auditMessage(r) });
        fields.PRIORITY = r.event === 'error' ? 3 : r.action === 'deny' ? 5 : 6;
        journal.write(fields);
      }
    });
    batch = b;
    audit = { write: (r) => (r.event === 'close' ? b.push(r) : b.pushNow(r)) };
  } else if (sink?.kind === 'stdout' || sink?.kind === 'file' || opts.preset === 'container') {
    let out: (text: string) => void;
    if (sink?.kind === 'file') {
      const { path } = sink;
      auditDestination = path;
      // Synchronous appends (file-sink.ts): a decision is on record before a byte of its
      // connection is relayed.
      file = openFileSink(path, (err) =>
        process.stderr.write(
          `portail: error: cannot write audit records to ${path}: ${err.message}\n`,
        ),
      );
      const f = file;
      out = (text) => f.write(text);
    } else {
      auditDestination = 'stdout';
      const dest = stream('stdout').dest;
      out = (text) => dest.write(text);
    }
    // Serialised when written (a close record then costs nothing on the next request's
    // path, where the batch is delivered), delivered in batches (batch.ts).
    const b = createBatcher<string>((lines) => out(lines.length === 1 ? lines[0] : lines.join('')));
    batch = b;
    audit = {
      write(r) {
        let line: string;
        try {
          line = auditJsonLine(r);
        } catch (err) {
          // Never from the pipeline's own fields; a record must not take a request down.
          line = auditJsonLine(
            auditRecord('error', {
              reason: `unserialisable ${r.event} record: ${(err as Error).message}`,
            }),
          );
        }
        if (r.event === 'close') b.push(line);
        else b.pushNow(line);
      },
    };
  } else {
    // development without `[log] audit`: readable lines next to the diagnostics.
    auditDestination = 'stderr';
    const err = stream('stderr');
    audit = {
      write(r) {
        const { event, ...rest } = r;
        err.dest.write(`portail: audit event=${event} ${keyValues(rest)}\n`);
      },
    };
  }
  for (const w of warnings) log.warn(w);

  const flush = () => {
    batch?.flush();
    for (const s of streams.values()) {
      try {
        s.dest.flushSync?.();
      } catch {
        // EAGAIN on a full pipe or a closed fd: nothing more can be done at exit.
      }
    }
  };
  // A crash must not lose the records of its last milliseconds.
  atExit(flush);

  return {
    log,
    audit,
    auditDestination,
    reopen() {
      // Records of before the rotation belong to the old file.
      batch?.flush();
      file?.reopen();
    },
    flush,
    setLevel(level) {
      minLevel = LEVELS[level] ?? minLevel;
      if (pinoLogger) pinoLogger.level = level;
    },
  };
}
