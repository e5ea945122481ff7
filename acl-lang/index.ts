// The ACL language's public surface. Everything else in portail imports from here.

export { KNOWN_ATTRIBUTES } from './attributes.js';
export type { CompiledAcl } from './compile.js';
export { formatDiagnostic, formatDiagnostics } from './diagnostics.js';
export { evaluate } from './evaluate.js';
export { formatExplanation, formatValue, shortReason } from './explain.js';
export type { LoadOptions, LoadResult } from './load.js';
export { compileAclSource, loadAclFile } from './load.js';
export { normalizeHost } from './normalize.js';
export { parseAcl } from './parse.js';
export { printAcl } from './print.js';
export type {
  AclContext,
  ActionKind,
  AttrType,
  AttrValue,
  ComparisonTrace,
  Decision,
  Diagnostic,
  EvaluateOptions,
  FailedRequirement,
  Severity,
} from './types.js';
