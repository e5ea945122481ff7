// HIR → closures + indexes. Each expression becomes a function returning a
// three-valued result; policies and routes are indexed by the hostnames their `when`
// pins, so that 100,000 host-specific policies cost a few hash lookups while the
// first-match order stays exactly the file order.
import type RE2 from 're2';
import {
  type HCmp,
  type HExpr,
  type Hir,
  type HOperand,
  type HPolicy,
  type HRoute,
  numKey,
} from './hir.js';
import { normalizeHost } from './normalize.js';
import { re2 } from './re2.js';
import { type HostSet, parseIp, sameIp } from './sets.js';
import type { AclContext, AttrValue } from './types.js';

/** Three-valued logic: false, true, unknown (docs/acl.md, "Missing attributes: three-valued logic"). */
export const F = 0;
export const T = 1;
export const U = 2;
export type Tri = 0 | 1 | 2;

export type Test = (ctx: AclContext) => Tri;

export interface CompiledPolicy extends HPolicy {
  index: number;
  whenFn: Test | null;
  requireFn: Test | null;
}

export interface CompiledRoute extends HRoute {
  index: number;
  whenFn: Test | null;
}

export interface CompiledAcl {
  readonly file: string;
  /** sha256 of the ACL source (hex), for status and audit. */
  readonly hash: string;
  /** Every attribute name the rules reference: the only ones worth computing. */
  readonly attributes: ReadonlySet<string>;
  readonly policies: readonly CompiledPolicy[];
  readonly routes: readonly CompiledRoute[];
  readonly policyIndex: HostIndex;
  readonly routeIndex: HostIndex;
  /** Every file this ACL was built from (the ACL and its lists), for watch-acl. */
  readonly files: readonly string[];
  /** Every `host =~` regex, in the ids the closures use; null when none (or unbuildable). */
  readonly hostRegexes: RE2Set | null;
}

// ---- values -----------------------------------------------------------------------

/** A hostname attribute's value, normalised; undefined when unusable. */
function hostValue(v: AttrValue): string | undefined {
  return typeof v === 'string' ? (normalizeHost(v) ?? undefined) : undefined;
}

function numValue(v: AttrValue): number | bigint | undefined {
  return typeof v === 'number' || typeof v === 'bigint' ? v : undefined;
}

function ipText(v: AttrValue): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function isList(v: AttrValue): v is readonly string[] {
  return Array.isArray(v);
}

const tri = (b: boolean): Tri => (b ? T : F);

function compareNum(a: number | bigint, op: string, b: number | bigint): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '==':
      // biome-ignore lint/suspicious/noDoubleEquals: number/bigint equality across types
      return a == b;
    default:
      // biome-ignore lint/suspicious/noDoubleEquals: number/bigint inequality across types
      return a != b;
  }
}

/** Comparison of a value against an operand, typed by the value at run time. */
function compareValue(c: HCmp, raw: AttrValue): Tri {
  const o = c.operand;
  const t = c.type;
  switch (c.op) {
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const n = numValue(raw);
      return n === undefined || o.k !== 'num' ? U : tri(compareNum(n, c.op, o.v));
    }
    case '=~':
    case '!~': {
      if (o.k !== 'regex') return U;
      const neg = c.op === '!~';
      if (isList(raw)) {
        if (t !== 'list' && t !== undefined) return U;
        const any = raw.some((s) => o.re.test(s));
        return tri(neg ? !any : any);
      }
      if (t === 'list') return U;
      const s = t === 'hostname' ? hostValue(raw) : typeof raw === 'string' ? raw : undefined;
      if (s === undefined) return U;
      const m = o.re.test(s);
      return tri(neg ? !m : m);
    }
    case 'in':
      return inSet(o, t, raw);
    default: {
      const eq = equals(o, t, raw);
      if (eq === U) return U;
      return c.op === '==' ? eq : tri(eq === F);
    }
  }
}

function equals(o: HOperand, t: HCmp['type'], raw: AttrValue): Tri {
  switch (o.k) {
    case 'str': {
      if (isList(raw)) return t === 'list' || t === undefined ? tri(raw.includes(o.v)) : U;
      if (t === 'list') return U;
      if (t === 'hostname') {
        const h = hostValue(raw);
        return h === undefined ? U : tri(h === o.v);
      }
      if (t === 'ip') {
        const a = parseIp(o.v);
        const s = ipText(raw);
        return s === undefined || !a ? U : tri(sameIp(s, a));
      }
      return typeof raw === 'string' ? tri(raw === o.v) : U;
    }
    case 'num': {
      const n = numValue(raw);
      return n === undefined ? U : tri(compareNum(n, '==', o.v));
    }
    case 'bool':
      return typeof raw === 'boolean' ? tri(raw === o.v) : U;
    default:
      return U;
  }
}

function inSet(o: HOperand, t: HCmp['type'], raw: AttrValue): Tri {
  switch (o.k) {
    case 'hostset': {
      const h = hostValue(raw);
      return h === undefined ? U : tri(o.set.has(h));
    }
    case 'cidrset': {
      const s = ipText(raw);
      if (s === undefined) return U;
      const a = parseIp(s);
      return a ? tri(o.set.has(a)) : U;
    }
    case 'numset': {
      const n = numValue(raw);
      return n === undefined ? U : tri(o.set.has(numKey(n)));
    }
    case 'strset': {
      // A value of the wrong run-time type for a known attribute is unknown (docs/acl.md, "Missing attributes: three-valued logic").
      if (isList(raw))
        return t === 'list' || t === undefined ? tri(raw.some((s) => o.set.has(s))) : U;
      if (t === 'list') return U;
      if (typeof raw === 'string') return tri(o.set.has(raw));
      if (t === undefined && (typeof raw === 'number' || typeof raw === 'bigint')) {
        return tri(o.set.has(String(raw)));
      }
      return U;
    }
    default:
      return U;
  }
}

type RE2Set = InstanceType<typeof RE2.Set>;

// ---- evaluation context -----------------------------------------------------------

/**
 * The context as the compiled closures see it during one evaluation: the caller's
 * attributes, the routing outcome (`route.local`, `route.backend`) once routes are
 * done, and the request host's matches against every `host =~` regex of the ACL,
 * computed once with an RE2 set (1,000 regex policies cost one set match, not 1,000
 * regex runs).
 */
export class EvalContext implements AclContext {
  local: boolean | undefined;
  backend: string | undefined;
  private hits: Set<number> | undefined;

  constructor(
    readonly inner: AclContext,
    /** The normalised request host, or undefined when missing/invalid. */
    readonly host: string | undefined,
    private readonly hostRegexes: RE2Set | null,
  ) {}

  get(name: string): AttrValue | undefined {
    if (this.local !== undefined) {
      if (name === 'route.local') return this.local;
      if (name === 'route.backend') return this.backend;
    }
    return this.inner.get(name);
  }

  /** Indices of the ACL's host regexes matching the host; undefined = not available. */
  hostRegexHits(): Set<number> | undefined {
    if (this.host === undefined || this.hostRegexes === null) return undefined;
    this.hits ??= new Set(this.hostRegexes.match(this.host));
    return this.hits;
  }
}

/** Collected while compiling: the distinct regexes applied to `host`. */
interface CompileState {
  hostRegexes: Map<string, number>;
}

// ---- closures ---------------------------------------------------------------------

export function evalCmp(c: HCmp, ctx: AclContext): Tri {
  const raw = ctx.get(c.attr);
  return raw === undefined ? U : compareValue(c, raw);
}

function compileExpr(e: HExpr, st: CompileState): Test {
  switch (e.kind) {
    case 'cmp':
      return compileCmp(e, st);
    case 'not': {
      const inner = compileExpr(e.expr, st);
      return (ctx) => {
        const r = inner(ctx);
        return r === U ? U : r === T ? F : T;
      };
    }
    case 'and': {
      const items = e.items.map((i) => compileExpr(i, st));
      if (items.length === 2) {
        const [a, b] = items;
        return (ctx) => {
          const x = a(ctx);
          if (x === F) return F;
          const y = b(ctx);
          return y === F ? F : x === U || y === U ? U : T;
        };
      }
      return (ctx) => {
        let unknown = false;
        for (const f of items) {
          const r = f(ctx);
          if (r === F) return F;
          if (r === U) unknown = true;
        }
        return unknown ? U : T;
      };
    }
    case 'or': {
      const items = e.items.map((i) => compileExpr(i, st));
      return (ctx) => {
        let unknown = false;
        for (const f of items) {
          const r = f(ctx);
          if (r === T) return T;
          if (r === U) unknown = true;
        }
        return unknown ? U : F;
      };
    }
  }
}

/** Specialised closures for the hot comparisons; the generic path for the rest. */
function compileCmp(c: HCmp, st: CompileState): Test {
  const { attr, operand: o } = c;
  if (attr === 'host' && c.type === 'hostname' && o.k === 'regex') {
    let id = st.hostRegexes.get(o.source);
    if (id === undefined) {
      id = st.hostRegexes.size;
      st.hostRegexes.set(o.source, id);
    }
    const index = id;
    const neg = c.op === '!~';
    return (ctx) => {
      const hits = ctx instanceof EvalContext ? ctx.hostRegexHits() : undefined;
      if (hits === undefined) return evalCmp(c, ctx);
      return hits.has(index) !== neg ? T : F;
    };
  }
  if (c.type === 'hostname' && o.k === 'str' && (c.op === '==' || c.op === '!=')) {
    const want = o.v;
    const eq = c.op === '==';
    return (ctx) => {
      const raw = ctx.get(attr);
      if (raw === undefined) return U;
      const h = hostValue(raw);
      if (h === undefined) return U;
      return (h === want) === eq ? T : F;
    };
  }
  if (c.type === 'number' && o.k === 'num' && typeof o.v === 'number' && c.op === '==') {
    const want = o.v;
    return (ctx) => {
      const raw = ctx.get(attr);
      if (raw === undefined) return U;
      // biome-ignore lint/suspicious/noDoubleEquals: number/bigint equality
      return typeof raw === 'number' || typeof raw === 'bigint' ? (raw == want ? T : F) : U;
    };
  }
  if (c.type === 'hostname' && o.k === 'hostset' && c.op === 'in') {
    const set = o.set;
    return (ctx) => {
      const raw = ctx.get(attr);
      if (raw === undefined) return U;
      const h = hostValue(raw);
      return h === undefined ? U : set.has(h) ? T : F;
    };
  }
  return (ctx) => evalCmp(c, ctx);
}

// ---- host index -------------------------------------------------------------------

/**
 * Hostname constraints that are necessary for an expression to be true or unknown:
 * exact names, domain suffixes, large sets kept whole (tested once each), and host
 * regexes (by their index in the ACL's regex set, matched once per request).
 */
interface HostKeys {
  exact: string[];
  withApex: string[];
  subOnly: string[];
  big: HostSet[];
  regex: number[];
}

const noKeys = (): HostKeys => ({ exact: [], withApex: [], subOnly: [], big: [], regex: [] });

const SMALL_SET = 256;

/**
 * Necessary host conditions of a `when`: if `host` is present and matches none of
 * them, the expression is definitely false (so the block cannot apply, even under the
 * restrictive reading of unknowns). Null = no such condition (always a candidate).
 */
function hostKeysOf(e: HExpr, regexIds: ReadonlyMap<string, number> | null): HostKeys | null {
  switch (e.kind) {
    case 'cmp': {
      if (e.attr !== 'host' || e.type !== 'hostname') return null;
      if (e.op === '==' && e.operand.k === 'str') return { ...noKeys(), exact: [e.operand.v] };
      if (e.op === '=~' && e.operand.k === 'regex') {
        const id = regexIds?.get(e.operand.source);
        return id === undefined ? null : { ...noKeys(), regex: [id] };
      }
      if (e.op !== 'in' || e.operand.k !== 'hostset') return null;
      const set = e.operand.set;
      if (set.size > SMALL_SET) return { ...noKeys(), big: [set] };
      return {
        ...noKeys(),
        exact: [...set.exact],
        withApex: [...set.withApex],
        subOnly: [...set.subOnly],
      };
    }
    case 'and': {
      // Any keyed conjunct is a necessary condition; prefer the most selective one.
      let best: HostKeys | null = null;
      for (const i of e.items) {
        const k = hostKeysOf(i, regexIds);
        if (k && (!best || weight(k) < weight(best))) best = k;
      }
      return best;
    }
    case 'or': {
      const all = noKeys();
      for (const i of e.items) {
        const k = hostKeysOf(i, regexIds);
        if (!k) return null;
        // A loop, not push(...k.exact): a spread of 100,000 names overflows the stack.
        append(all.exact, k.exact);
        append(all.withApex, k.withApex);
        append(all.subOnly, k.subOnly);
        append(all.big, k.big);
        append(all.regex, k.regex);
      }
      return all;
    }
    case 'not':
      return null;
  }
}

function append<T>(to: T[], from: readonly T[]): void {
  for (const x of from) to.push(x);
}

function weight(k: HostKeys): number {
  return (
    k.exact.length +
    k.withApex.length +
    k.subOnly.length +
    k.regex.length +
    k.big.reduce((n, s) => n + s.size, 0)
  );
}

/**
 * Candidate blocks for a host, in file order: blocks with no host condition, blocks
 * keyed by exact name or domain suffix (hash maps), blocks behind large sets (tested
 * once each) and blocks behind host regexes (all of the ACL's host regexes are matched
 * at once, RE2 set, and only the blocks of those that matched are candidates).
 */
export class HostIndex {
  private readonly always: number[] = [];
  private readonly exact = new Map<string, number[]>();
  private readonly withApex = new Map<string, number[]>();
  private readonly subOnly = new Map<string, number[]>();
  private readonly big: { set: HostSet; index: number }[] = [];
  private readonly byRegex = new Map<number, number[]>();
  /** Every block keyed by a regex, for when the regex set cannot say which matched. */
  private readonly regexKeyed: number[] = [];
  private n = 0;

  /** `regexIds`: host regex source → its index in the ACL's regex set (null: no set). */
  constructor(
    whens: readonly (HExpr | undefined)[] = [],
    regexIds: ReadonlyMap<string, number> | null = null,
  ) {
    for (const w of whens) this.add(w, regexIds);
  }

  get count(): number {
    return this.n;
  }

  /**
   * Indexes the next block (blocks are added in file order). A block keyed by a regex
   * stays a candidate whenever the ACL's regex set cannot say which regexes matched.
   */
  add(when: HExpr | undefined, regexIds: ReadonlyMap<string, number> | null): void {
    const index = this.n++;
    const keys = when ? hostKeysOf(when, regexIds) : null;
    if (!keys) {
      this.always.push(index);
      return;
    }
    for (const set of keys.big) this.big.push({ set, index });
    for (const h of keys.exact) push(this.exact, h, index);
    for (const h of keys.withApex) push(this.withApex, h, index);
    for (const h of keys.subOnly) push(this.subOnly, h, index);
    for (const r of keys.regex) push(this.byRegex, r, index);
    if (keys.regex.length) this.regexKeyed.push(index);
  }

  /**
   * Every index when the host is unknown; else the candidates, sorted, unique.
   * `regexHits`: the indices of the host regexes matching `host` (undefined: unknown).
   */
  candidates(
    host: string | undefined,
    regexHits?: () => ReadonlySet<number> | undefined,
  ): readonly number[] | null {
    if (host === undefined) return null;
    const lists: number[][] = [];
    if (this.always.length) lists.push(this.always);
    if (this.byRegex.size) {
      const hits = regexHits?.();
      if (hits === undefined) lists.push(this.regexKeyed);
      else
        for (const r of hits) {
          const l = this.byRegex.get(r);
          if (l) lists.push(l);
        }
    }
    const e = this.exact.get(host);
    if (e) lists.push(e);
    const a = this.withApex.get(host);
    if (a) lists.push(a);
    if (this.withApex.size || this.subOnly.size) {
      for (let i = host.indexOf('.'); i >= 0; i = host.indexOf('.', i + 1)) {
        const suffix = host.slice(i + 1);
        const x = this.withApex.get(suffix);
        if (x) lists.push(x);
        const y = this.subOnly.get(suffix);
        if (y) lists.push(y);
      }
    }
    if (this.big.length) {
      const hits: number[] = [];
      for (const b of this.big) if (b.set.has(host)) hits.push(b.index);
      if (hits.length) lists.push(hits);
    }
    if (lists.length === 0) return [];
    if (lists.length === 1) return lists[0];
    const merged = lists.flat().sort((x, y) => x - y);
    return merged.filter((v, i) => i === 0 || merged[i - 1] !== v);
  }
}

function push<K>(m: Map<K, number[]>, k: K, v: number): void {
  const l = m.get(k);
  if (!l) m.set(k, [v]);
  else if (l[l.length - 1] !== v) l.push(v);
}

// ---- whole ACL --------------------------------------------------------------------

/**
 * Compiles an ACL block by block, so that a caller may spread a large ACL over several
 * turns of the event loop (docs/operations.md "Reloads"): policies first, then routes,
 * each in file order, then finish().
 */
export class AclCompiler {
  private readonly st: CompileState = { hostRegexes: new Map() };
  private readonly policies: CompiledPolicy[] = [];
  private readonly routes: CompiledRoute[] = [];
  // Blocks keyed by a host regex are indexed by its id even if the regex set later
  // cannot be built: the index then falls back to every regex-keyed block.
  private readonly policyIndex = new HostIndex();
  private readonly routeIndex = new HostIndex();

  addPolicy(p: HPolicy): void {
    if (this.routes.length) throw new Error('AclCompiler: policies come before routes');
    this.policies.push({
      ...p,
      index: this.policies.length,
      whenFn: p.when ? compileExpr(p.when.expr, this.st) : null,
      requireFn: p.require ? compileExpr(p.require.expr, this.st) : null,
    });
    this.policyIndex.add(p.when?.expr, this.st.hostRegexes);
  }

  addRoute(r: HRoute): void {
    this.routes.push({
      ...r,
      index: this.routes.length,
      whenFn: r.when ? compileExpr(r.when.expr, this.st) : null,
    });
    this.routeIndex.add(r.when?.expr, this.st.hostRegexes);
  }

  finish(
    file: string,
    hash: string,
    files: readonly string[],
    attributes: ReadonlySet<string>,
  ): CompiledAcl {
    return Object.freeze({
      file,
      hash,
      attributes,
      policies: this.policies,
      routes: this.routes,
      policyIndex: this.policyIndex,
      routeIndex: this.routeIndex,
      hostRegexes: hostRegexSet([...this.st.hostRegexes.keys()]),
      files,
    });
  }
}

export function compileHir(
  hir: Hir,
  file: string,
  hash: string,
  files: readonly string[],
): CompiledAcl {
  const c = new AclCompiler();
  for (const p of hir.policies) c.addPolicy(p);
  for (const r of hir.routes) c.addRoute(r);
  return c.finish(file, hash, files, hir.attributes);
}

function hostRegexSet(sources: string[]): RE2Set | null {
  if (sources.length === 0) return null;
  try {
    // Same flags as each regex (checker.ts), unanchored search like RE2#test.
    return new (re2().Set)(sources, 'u', { anchor: 'unanchored' });
  } catch {
    return null; // each closure falls back to its own regex
  }
}
