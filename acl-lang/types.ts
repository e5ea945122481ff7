// Public types of the ACL language: what the rest of portail sees. acl-lang/ is pure:
// it imports nothing from proxy/, rpc/ or systemd/.

/** Types an attribute can have (docs/acl.md, "Attributes"). The checker uses them at load time. */
export type AttrType = 'string' | 'number' | 'bool' | 'hostname' | 'ip' | 'list' | 'duration';

/**
 * A run-time attribute value. Hostnames and IPs are strings (text form), durations are
 * numbers of seconds, lists are arrays of strings. `undefined` = missing (unknown).
 */
export type AttrValue = string | number | bigint | boolean | readonly string[];

/**
 * The request context as the evaluator sees it: a synchronous lookup. Providers that
 * need I/O (DNS, socket table) are resolved by the caller beforehand, for the names in
 * `CompiledAcl.attributes` only, so unreferenced attributes cost nothing.
 */
export interface AclContext {
  get(name: string): AttrValue | undefined;
}

export type Severity = 'error' | 'warning';

/** One load-time diagnostic, positioned on the offending token (1-based line/column). */
export interface Diagnostic {
  severity: Severity;
  file: string;
  line: number;
  column: number;
  /** Length of the offending text on its line (for the caret), at least 1. */
  length: number;
  message: string;
  /** What was expected there, when the parser or checker knows. */
  expected?: string;
  /** The source line, for display. */
  sourceLine: string;
}

export type ActionKind = 'allow' | 'deny' | 'redirect';

/** A comparison seen while explaining a failed or unknown condition. */
export interface ComparisonTrace {
  /** Source text of the comparison, e.g. `device.trust_level >= 2`. */
  text: string;
  attribute: string;
  /** The actual value seen; `undefined` when the attribute was missing. */
  actual: AttrValue | undefined;
  result: 'true' | 'false' | 'unknown';
}

/** A policy whose `when` held (or was unknown) but which did not decide. */
export interface FailedRequirement {
  policy: string;
  action: ActionKind;
  /** Which clause failed: the `require` (usual) or an unknown `when`. */
  clause: 'when' | 'require';
  /** Source text of the clause's expression. */
  expression: string;
  result: 'false' | 'unknown';
  comparisons: ComparisonTrace[];
}

export interface Decision {
  action: ActionKind;
  /** Name of the deciding policy; null when no policy matched (or no ACL is loaded). */
  policy: string | null;
  /** For `redirect`: the target URI. */
  redirect?: string;
  /** For `deny`: the explain template path, resolved against the ACL file's folder. */
  explainTemplate?: string;
  /** Names of the routes whose `when` held, in file order. */
  routes: string[];
  /**
   * Ordered backend candidates (duplicates dropped): from the routes, else the default
   * backend. Empty = direct exit. May contain the reserved name `direct`.
   */
  backends: string[];
  /** `route.local` as the policies saw it. */
  local: boolean;
  /** Tags from `log "tag"` on the deciding action. */
  tags: string[];
  /** Policies that matched but whose requirements failed, in evaluation order. */
  failed: FailedRequirement[];
  /** Attributes that were needed but missing, sorted, without duplicates. */
  missing: string[];
  /** One human sentence: why this decision. */
  reason: string;
}

export interface EvaluateOptions {
  /** Default backend (config or set at run time), used when no route matched. */
  defaultBackend?: string | null;
  /**
   * Re-evaluation for `fallback-to-direct`: skip routes and evaluate the policies with
   * `route.local = true`.
   */
  forceLocal?: boolean;
}
