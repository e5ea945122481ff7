// Shared helpers for the ACL language tests: compile a source with the usual test
// backends, build contexts from plain objects, observe three-valued conditions.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CompiledAcl, F, T } from '../../../acl-lang/compile.js';
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

/**
 * The oracle for the host indexes: routes and first match computed by running every
 * route's and policy's compiled closures in file order, with no index at all.
 */
export function naiveDecision(
  acl: CompiledAcl,
  context: AclContext,
  opts: EvaluateOptions = {},
): { routes: string[]; backends: string[]; local: boolean; policy: string | null } {
  const routes = opts.forceLocal
    ? []
    : acl.routes.filter((r) => (r.whenFn ? r.whenFn(context) : T) === T);
  let backends = [...new Set(routes.flatMap((r) => r.backends))];
  if (!opts.forceLocal && routes.length === 0 && opts.defaultBackend) {
    backends = [opts.defaultBackend];
  }
  const local = backends.length === 0 || backends.every((b) => b === 'direct');
  const seen: AclContext = {
    get: (n) =>
      n === 'route.local'
        ? local
        : n === 'route.backend'
          ? (backends[0] ?? 'direct')
          : context.get(n),
  };
  let policy: string | null = null;
  for (const p of acl.policies) {
    const w = p.whenFn ? p.whenFn(seen) : T;
    if (w === F || (w !== T && p.action !== 'deny')) continue;
    const r = p.requireFn ? p.requireFn(seen) : T;
    if (r === F || (r !== T && p.action !== 'deny')) continue;
    policy = p.name;
    break;
  }
  return { routes: routes.map((r) => r.name), backends, local, policy };
}

/** What a run of the `portail` command line printed, and its exit code. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `portail` command line with `args` (in `cwd`), killed after `timeoutMs`. */
export function runPortail(args: string[], cwd: string, timeoutMs = 20_000): Promise<CliRun> {
  const cli = join(ROOT, 'dist', 'proxy', 'cli', 'portail.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
