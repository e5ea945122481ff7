// Evaluation (docs/acl.md, "Evaluation"): routes, then policies, first match, failed requirements
// recorded, default deny, unknowns resolved toward the restrictive outcome. Pure:
// no I/O, no clock.
import {
  type CompiledAcl,
  type CompiledPolicy,
  EvalContext,
  evalCmp,
  F,
  T,
  type Tri,
  U,
} from './compile.js';
import type { HClause, HExpr } from './hir.js';
import { normalizeHost } from './normalize.js';
import type {
  AclContext,
  ComparisonTrace,
  Decision,
  EvaluateOptions,
  FailedRequirement,
} from './types.js';

const TRI_TEXT = ['false', 'true', 'unknown'] as const;

/** Re-evaluates an expression recording every comparison, for explanations. */
function trace(e: HExpr, ctx: AclContext, out: ComparisonTrace[], missing: Set<string>): Tri {
  switch (e.kind) {
    case 'cmp': {
      const actual = ctx.get(e.attr);
      const r = evalCmp(e, ctx);
      if (actual === undefined) missing.add(e.attr);
      out.push({ text: e.text, attribute: e.attr, actual, result: TRI_TEXT[r] });
      return r;
    }
    case 'not': {
      const r = trace(e.expr, ctx, out, missing);
      return r === U ? U : r === T ? F : T;
    }
    case 'and': {
      let unknown = false;
      let result: Tri = T;
      for (const i of e.items) {
        const r = trace(i, ctx, out, missing);
        if (r === F) result = F;
        if (r === U) unknown = true;
      }
      return result === F ? F : unknown ? U : T;
    }
    case 'or': {
      let unknown = false;
      let result: Tri = F;
      for (const i of e.items) {
        const r = trace(i, ctx, out, missing);
        if (r === T) result = T;
        if (r === U) unknown = true;
      }
      return result === T ? T : unknown ? U : F;
    }
  }
}

function failure(
  p: CompiledPolicy,
  clause: 'when' | 'require',
  c: HClause,
  ctx: AclContext,
  missing: Set<string>,
): FailedRequirement {
  const comparisons: ComparisonTrace[] = [];
  const r = trace(c.expr, ctx, comparisons, missing);
  return {
    policy: p.name,
    action: p.action,
    clause,
    expression: c.text,
    result: r === U ? 'unknown' : 'false',
    comparisons,
  };
}

function routeBackends(acl: CompiledAcl, ctx: EvalContext, host: string | undefined) {
  const routes: string[] = [];
  const backends: string[] = [];
  const missing = new Set<string>();
  const candidates = acl.routeIndex.candidates(host, () => ctx.hostRegexHits());
  const n = candidates ? candidates.length : acl.routes.length;
  for (let k = 0; k < n; k++) {
    const r = acl.routes[candidates ? candidates[k] : k];
    const w = r.whenFn ? r.whenFn(ctx) : T;
    if (w === U && r.when) trace(r.when.expr, ctx, [], missing);
    if (w !== T) continue; // an unknown route condition does not apply
    routes.push(r.name);
    for (const b of r.backends) if (!backends.includes(b)) backends.push(b);
  }
  return { routes, backends, missing };
}

export function evaluate(
  acl: CompiledAcl | null,
  ctx: AclContext,
  opts: EvaluateOptions = {},
): Decision {
  if (!acl) {
    return {
      action: 'deny',
      policy: null,
      routes: [],
      backends: [],
      local: true,
      tags: [],
      failed: [],
      missing: [],
      reason: 'no valid ACL is loaded: everything is denied',
    };
  }
  const rawHost = ctx.get('host');
  const host = typeof rawHost === 'string' ? (normalizeHost(rawHost) ?? undefined) : undefined;
  const ec = new EvalContext(ctx, host, acl.hostRegexes);

  let routes: string[] = [];
  let backends: string[] = [];
  const missing = new Set<string>();
  if (!opts.forceLocal) {
    const r = routeBackends(acl, ec, host);
    routes = r.routes;
    backends = r.backends;
    for (const m of r.missing) missing.add(m);
    if (routes.length === 0 && opts.defaultBackend) backends = [opts.defaultBackend];
  }
  const local = backends.length === 0 || backends.every((b) => b === 'direct');
  // Policies see the routing outcome.
  ec.local = local;
  ec.backend = backends[0] ?? 'direct';
  const routed = ec;

  const failed: FailedRequirement[] = [];
  /** What the policies (not the routes) could not evaluate: named by a refusal's reason. */
  const unknown = new Set<string>();
  const candidates = acl.policyIndex.candidates(host, () => ec.hostRegexHits());
  const n = candidates ? candidates.length : acl.policies.length;
  for (let k = 0; k < n; k++) {
    const p = acl.policies[candidates ? candidates[k] : k];
    const w = p.whenFn ? p.whenFn(routed) : T;
    if (w === F) continue;
    const restrictive = p.action === 'deny';
    if (w === U && !restrictive) {
      // An allow/redirect that cannot be proven does not apply.
      if (p.when) failed.push(failure(p, 'when', p.when, routed, unknown));
      continue;
    }
    const r = p.requireFn ? p.requireFn(routed) : T;
    if (r === F || (r === U && !restrictive)) {
      if (p.require) failed.push(failure(p, 'require', p.require, routed, unknown));
      continue;
    }
    // Decided. For a deny over unknowns, name what was missing.
    let unknownNote = '';
    if (w === U || r === U) {
      if (w === U && p.when) trace(p.when.expr, routed, [], unknown);
      if (r === U && p.require) trace(p.require.expr, routed, [], unknown);
      unknownNote = ' (its conditions could not be ruled out)';
    }
    for (const a of unknown) missing.add(a);
    const d: Decision = {
      action: p.action,
      policy: p.name,
      routes,
      backends,
      local,
      tags: p.tags,
      failed,
      missing: [...missing].sort(),
      reason: `${p.action === 'allow' ? 'allowed' : p.action === 'deny' ? 'denied' : 'redirected'} by policy ${p.name}${unknownNote}`,
    };
    // A refusal names what it could not evaluate (docs/acl.md "Explanations"); an
    // allow does not depend on it.
    if (p.action !== 'allow' && unknown.size > 0) d.reason += missingNote(unknown);
    if (p.redirect !== undefined) d.redirect = p.redirect;
    if (p.explainTemplate !== undefined) d.explainTemplate = p.explainTemplate;
    return d;
  }
  for (const a of unknown) missing.add(a);
  return {
    action: 'deny',
    policy: null,
    routes,
    backends,
    local,
    tags: [],
    failed,
    missing: [...missing].sort(),
    reason: `no policy matched${unknown.size > 0 ? missingNote(unknown) : ''}`,
  };
}

/** Appended to a refusal's reason: `; missing: a.b, c.d` (sorted). */
export const MISSING_NOTE = '; missing: ';

function missingNote(names: Set<string>): string {
  return `${MISSING_NOTE}${[...names].sort().join(', ')}`;
}
