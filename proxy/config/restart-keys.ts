// Keys a reload cannot apply to a running daemon: changing them needs a restart, and a
// reload that changes one is refused, naming it, with nothing changed — never reported
// as a success that silently kept the old value (docs/configuration.md, "Reload").
import type { AuditSink, Config } from './types.js';

/** `[section] key` of each setting that differs and needs a restart; empty when none. */
export function keysNeedingRestart(prev: Config, next: Config): string[] {
  const keys: string[] = [];
  // The audit sink is opened once: journald, a file or stdout, with its batching.
  if (sinkText(prev.log.audit) !== sinkText(next.log.audit)) {
    keys.push(`[log] audit (${sinkText(prev.log.audit)} -> ${sinkText(next.log.audit)})`);
  }
  return keys;
}

function sinkText(sink: AuditSink | undefined): string {
  if (sink === undefined) return "the log preset's default";
  return sink.kind === 'file' ? `file:${sink.path}` : sink.kind;
}
