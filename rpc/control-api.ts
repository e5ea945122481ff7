// What the control socket needs from the daemon. The daemon implements ControlBackend
// over its state snapshot; the server (rpc/server.ts) does the protocol, the
// authorization and the mapping to the wire's snake_case names. Every method may be
// called concurrently from several clients.
import { type Decision, formatExplanation, formatValue, shortReason } from '../acl-lang/index.js';

/** A backend's address and TLS settings, as fr.gouv.portail.Control carries them. */
export interface BackendSpec {
  /** HOST:PORT, IPv6 in brackets. */
  targetAddress: string;
  identityAware: boolean;
  tlsServerName?: string;
}

export interface BackendInfo {
  id: string;
  /** It is the default backend (configured or set at run time). */
  current: boolean;
  /** Its address is set at run time. */
  dynamic: boolean;
  /** Absent for a dynamic backend whose address has not been set yet. */
  spec?: BackendSpec;
  /** Ours only: upstream's ListBackends reply keeps its own fields. */
  health?: BackendHealthInfo;
}

/** A backend's health as the back-off sees it (proxy/connect/backends.ts). */
export interface BackendHealthInfo {
  name: string;
  /** False while the backend is skipped after a failure of its own. */
  healthy: boolean;
  consecutiveFailures: number;
  lastError?: string;
  lastFailureAt?: Date;
  lastSuccessAt?: Date;
  /** While backed off: when it is tried again. */
  retryAt?: Date;
}

/** io.portail.Control's wire form of a BackendHealthInfo (snake_case, RFC 3339 times). */
export function healthWire(h: BackendHealthInfo): Record<string, unknown> {
  const t = (d?: Date) => (d ? d.toISOString() : null);
  return {
    name: h.name,
    healthy: h.healthy,
    consecutive_failures: h.consecutiveFailures,
    last_error: h.lastError ?? null,
    last_failure_at: t(h.lastFailureAt),
    last_success_at: t(h.lastSuccessAt),
    retry_at: t(h.retryAt),
  };
}

export interface ListenerInfo {
  /** `proxy`, `control` or `gateway`. */
  name: string;
  /** HOST:PORT (IPv6 in brackets) or a socket path. */
  address: string;
  source: 'systemd' | 'fdstore' | 'bound';
}

export interface AclInfo {
  file: string | null;
  /** SHA-256 of the file's content, hex. */
  hash: string | null;
  loadedAt: Date | null;
  /** False when no valid version is in force (everything is denied). */
  loaded: boolean;
}

export interface ReloadOutcome {
  ok: boolean;
  at: Date;
  diagnostics: string;
}

export interface StatusInfo {
  version: string;
  pid: number;
  startedAt: Date;
  configFile: string | null;
  listeners: ListenerInfo[];
  acl: AclInfo;
  explainAcl?: AclInfo | null;
  activeConnections: number;
  defaultBackend: string | null;
  lastReload: ReloadOutcome | null;
  /** Every configured backend's health, in configuration order. */
  backends?: BackendHealthInfo[];
  /** The [escaper] PKCS#11 token, when one is configured. */
  pkcs11?: Pkcs11TokenInfo | null;
}

export interface Pkcs11TokenInfo {
  /** The configured URI, PIN redacted. */
  uri: string;
  state: 'ready' | 'unused' | 'disabled';
  reason?: string;
  since?: Date;
}

export interface ReloadResult {
  ok: boolean;
  /** Errors when !ok; warnings (possibly empty) when ok. */
  diagnostics: string;
  aclHash?: string;
}

/** Who asks for an explanation (from the socket's peer credentials). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

export interface ExplainRequest {
  /** As the user typed it; the daemon normalises it like a proxied request. */
  host: string;
  port: number;
  user?: string;
  uid?: number;
  /** Extra context attributes (`device.trust_level` → `"2"`); the daemon converts by type. */
  attrs: Record<string, string>;
  /** The caller, so the daemon can redact with the explain ACL. Null if unknown. */
  caller: Caller | null;
}

export interface ExplainComparison {
  text: string;
  attribute: string;
  /** The actual value as the ACL language writes it; null when missing. */
  seen: string | null;
  result: 'true' | 'false' | 'unknown';
}

export interface ExplainFailure {
  policy: string;
  action: 'allow' | 'deny' | 'redirect';
  clause: 'when' | 'require';
  expression: string;
  result: 'false' | 'unknown';
  comparisons: ExplainComparison[];
}

export interface ExplainResult {
  action: 'allow' | 'deny' | 'redirect';
  policy: string | null;
  reason: string;
  redirect?: string;
  /** Names of the routes whose `when` held. */
  routes: string[];
  /** Backend candidates in order; empty = direct exit. */
  backends: string[];
  local: boolean;
  tags: string[];
  failed: ExplainFailure[];
  missing: string[];
  /** The whole explanation as text (formatExplanation), already redacted. */
  explanation: string;
  /** True when details were withheld (failed/missing are then empty): see docs/control.md. */
  redacted: boolean;
}

export interface DenialRecord {
  time: Date;
  uid: number | null;
  user?: string;
  process?: string;
  host: string;
  port: number;
  protocol?: string;
  policy: string | null;
  reason: string;
  /** What the explain ACL lets this user see. */
  explanation: string;
  traceId?: string;
}

export interface ControlBackend {
  /** Atomic: nothing changes unless everything is valid; resolves once in force. */
  reload(): Promise<ReloadResult>;
  status(): StatusInfo;
  /** In configuration order. */
  listBackends(): BackendInfo[];
  /** Null unsets. Throws BackendNotFound. */
  setDefaultBackend(id: string | null): void;
  /** Throws BackendNotFound, InvalidBackend or ImmutableBackend. */
  updateDynamicBackend(id: string, spec: BackendSpec): void;
  /** Throws InvalidRequest for a request that cannot be evaluated (bad host, attribute). */
  explain(req: ExplainRequest): ExplainResult | Promise<ExplainResult>;
  /** Newest last, at most `last`; uid null = everyone's. */
  recentDenials(uid: number | null, last: number): DenialRecord[];
}

/** No backend of that name (fr.gouv.portail.Control.BackendNotFound). */
export class BackendNotFound extends Error {
  constructor(
    readonly provided: string,
    readonly available: string[],
  ) {
    super(`backend "${provided}" not found`);
    this.name = 'BackendNotFound';
  }
}

/** The specification cannot be used (fr.gouv.portail.Control.InvalidBackend). */
export class InvalidBackend extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidBackend';
  }
}

/** Not a dynamic backend (fr.gouv.portail.Control.ImmutableBackend). */
export class ImmutableBackend extends Error {
  constructor(readonly id: string) {
    super(`backend "${id}" is not dynamic`);
    this.name = 'ImmutableBackend';
  }
}

/** An explain request that cannot be evaluated (io.portail.Control.InvalidRequest). */
export class InvalidRequest extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidRequest';
  }
}

const WITHHELD = 'details withheld by the explain ACL';

/**
 * An ExplainResult from an ACL decision, showing what proxy/explain/redact.ts allows:
 * everything by default; `redact: 'short'` (no explain ACL) the decision, the deciding
 * policy and the route, no failed requirement or value seen; `redact: true` (the explain
 * ACL withholds) the decision and the route only. `message` replaces the explanation
 * text (e.g. the help page an explain ACL redirect names).
 */
export function explainResultFromDecision(
  d: Decision,
  opts: { redact?: boolean | 'short'; message?: string } = {},
): ExplainResult {
  const withheld = opts.redact === true;
  const detail = opts.redact === undefined || opts.redact === false;
  const reason = withheld
    ? `${d.action === 'deny' ? 'denied' : d.action} (${WITHHELD})`
    : detail
      ? d.reason
      : shortReason(d);
  return {
    action: d.action,
    policy: withheld ? null : d.policy,
    reason,
    ...(d.redirect !== undefined ? { redirect: d.redirect } : {}),
    routes: [...d.routes],
    backends: [...d.backends],
    local: d.local,
    tags: [...d.tags],
    failed: detail
      ? d.failed.map((f) => ({
          policy: f.policy,
          action: f.action,
          clause: f.clause,
          expression: f.expression,
          result: f.result,
          comparisons: f.comparisons.map((c) => ({
            text: c.text,
            attribute: c.attribute,
            seen: c.actual === undefined ? null : formatValue(c.actual),
            result: c.result,
          })),
        }))
      : [],
    missing: detail ? [...d.missing] : [],
    explanation: opts.message ?? (detail ? formatExplanation(d) : reason),
    redacted: !detail,
  };
}
