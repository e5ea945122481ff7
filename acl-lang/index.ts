// The ACL language's public surface. Everything else in portail imports from here.
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
export { KNOWN_ATTRIBUTES } from './attributes.js';
export { normalizeHost } from './normalize.js';
export { formatDiagnostic, formatDiagnostics } from './diagnostics.js';
export type { CompiledAcl } from './compile.js';
export { compileAclSource, loadAclFile } from './load.js';
export type { LoadOptions, LoadResult } from './load.js';
export { evaluate } from './evaluate.js';
