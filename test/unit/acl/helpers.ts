// Shared helpers for the ACL language tests: compile a source with the usual test
// backends, build contexts from plain objects, observe three-valued conditions.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompiledAcl } from '../../../acl-lang/compile.js';
import {
  type AclContext,
  type AttrValue,
  compileAclSource,
  type Decision,
  type Diagnostic,
  type EvaluateOptions,
  evaluate,
  formatDiagnostic,
} from '../../../acl-lang/index.js';
import type { SourceOptions } from '../../../acl-lang/load.js';

/** The checkout's root (tests run from dist/test/unit/acl/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'acl');

export const BACKENDS: ReadonlySet<string> = new Set(['par01', 'par02', 'par03']);

/** Diagnostics of a source, checked against BACKENDS. */
export function diagnose(source: string, opts: SourceOptions = {}): Diagnostic[] {
  return compileAclSource(source, 'f.acl', { backends: BACKENDS, baseDir: '/acl', ...opts })
    .diagnostics;
}

/** Compiles a source that must be valid (warnings allowed); fails the test otherwise. */
export function compile(source: string, opts: SourceOptions = {}): CompiledAcl {
  const r = compileAclSource(source, 'f.acl', { backends: BACKENDS, baseDir: '/acl', ...opts });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors.map(formatDiagnostic), [], `unexpected errors in:\n${source}`);
  assert.ok(r.acl, 'no compiled ACL although there is no error');
  return r.acl;
}

/** `line:column severity` of each diagnostic, in report order. */
export function positions(ds: readonly Diagnostic[]): string[] {
  return ds.map((d) => `${d.line}:${d.column} ${d.severity}`);
}

/** A context over a plain object; a key absent (or set to undefined) is missing. */
export function ctx(values: Record<string, unknown>): AclContext {
  return {
    get: (name) =>
      Object.hasOwn(values, name) ? (values[name] as AttrValue | undefined) : undefined,
  };
}

export function decide(
  acl: CompiledAcl | null,
  values: Record<string, unknown>,
  opts?: EvaluateOptions,
): Decision {
  return evaluate(acl, ctx(values), opts);
}

export type Tri = 'true' | 'false' | 'unknown';

/**
 * What the evaluator made of a condition, observed from outside: an allow policy on it
 * applies only when it is true; a deny policy on it applies unless it is false.
 */
export function observe(condition: string, values: Record<string, unknown>): Tri {
  const allow = compile(`policy probe { when ${condition} action allow }`);
  const deny = compile(
    `policy probe { when ${condition} action deny }\npolicy fallback { action allow }`,
  );
  const allowed = decide(allow, values).action === 'allow';
  const denied = decide(deny, values).policy === 'probe';
  if (allowed && denied) return 'true';
  if (!allowed && !denied) return 'false';
  if (!allowed && denied) return 'unknown';
  throw new Error(`incoherent evaluation of ${condition}: allowed but not denied`);
}
