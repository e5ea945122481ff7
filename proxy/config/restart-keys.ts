// Keys a reload cannot apply to a running daemon: changing them needs a restart, and a
// reload that changes one is refused, naming it, with nothing changed — never reported
// as a success that silently kept the old value (docs/configuration.md, "Reload").
import { formatHostPort } from '../../common/host-port.js';
import type { AuditSink, Config } from './types.js';

/** `[section] key` of each setting that differs and needs a restart; empty when none. */
export function keysNeedingRestart(prev: Config, next: Config): string[] {
  const keys: string[] = [];
  // The audit sink is opened once: journald, a file or stdout, with its batching.
  if (sinkText(prev.log.audit) !== sinkText(next.log.audit)) {
    keys.push(`[log] audit (${sinkText(prev.log.audit)} -> ${sinkText(next.log.audit)})`);
  }
  // The metrics endpoint is bound once, at start: prom-client is loaded only when it is
  // configured (docs/configuration.md "[metrics]", docs/performance.md "Footprint").
  const was = metricsText(prev);
  const now = metricsText(next);
  if (was !== now) keys.push(`[metrics] listen (${was} -> ${now})`);
  return keys;
}

function metricsText(c: Config): string {
  const l = c.metrics.listen;
  return l === undefined ? 'none' : formatHostPort(l);
}

function sinkText(sink: AuditSink | undefined): string {
  if (sink === undefined) return "the log preset's default";
  return sink.kind === 'file' ? `file:${sink.path}` : sink.kind;
}
