// AST → HIR, collecting every load-time error (docs/acl.md, "Error messages") at once (each positioned
// on the offending token), plus warnings for unknown attributes and missing templates.
import { isAbsolute, join } from 'node:path';
import type RE2 from 're2';
import type {
  AclFile,
  ActionNode,
  Comparison,
  Expr,
  Loc,
  Operand,
  PolicyBlock,
  RouteBlock,
  SetItem,
  StringLit,
} from './ast.js';
import { LineIndex, makeDiagnostic } from './diagnostics.js';
import {
  type HClause,
  type HCmp,
  type HExpr,
  type Hir,
  type HOperand,
  type HPolicy,
  type HRoute,
  numKey,
} from './hir.js';
import { ListFile } from './lists.js';
import { normalizeHost } from './normalize.js';
import { re2 } from './re2.js';
import { CidrSet, HostSet, parseIp } from './sets.js';
import type { AttrType, Diagnostic, Severity } from './types.js';

export interface CheckOptions {
  /** Configured backend names; null = not checked (no configuration given). */
  backends: ReadonlySet<string> | null;
  /** Known attributes and their types. */
  attributes: ReadonlyMap<string, AttrType>;
  /** Folder the ACL's relative paths (list files, templates) resolve against. */
  baseDir: string;
  /** Contents of the list files, by resolved path, or the reason they could not be read. */
  lists: ReadonlyMap<string, ListFile | { error: string }>;
  /** Diagnostics only: hostname sets are validated but left empty (sets.ts, HostSet). */
  checkOnly?: boolean;
  /** Whether a template file exists (missing = warning, as upstream). */
  fileExists?: (path: string) => boolean;
}

export interface CheckResult {
  hir: Hir | null;
  diagnostics: Diagnostic[];
}

const I64_MAX = 2n ** 63n - 1n;
const RESERVED_BACKEND = 'direct';
const DURATION_UNITS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  wk: 604800,
};

/** Seconds in a duration literal such as `30s`, `2wk`. */
export function durationSeconds(raw: string): number {
  const m = /^(\d+)(ms|wk|s|m|h|d|w)$/.exec(raw);
  if (!m) throw new Error(`invalid duration ${raw}`);
  return Number(m[1]) * DURATION_UNITS[m[2]];
}

export function resolveListPath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : join(baseDir, p);
}

/** Every list file an AST refers to (resolved), so the loader can read them first. */
export function listFilesOf(ast: AclFile, baseDir: string): string[] {
  const out = new Set<string>();
  const visit = (e: Expr): void => {
    if (e.type === 'cmp') {
      if (e.value.type === 'file') out.add(resolveListPath(baseDir, e.value.path.value));
    } else if (e.type === 'not') visit(e.expr);
    else for (const i of e.items) visit(i);
  };
  for (const b of ast.blocks)
    for (const a of b.attrs) if (a.kind === 'when' || a.kind === 'require') visit(a.expr);
  return [...out];
}

/**
 * Where a set entry comes from: a literal of the ACL (its token type), or a `line` of a
 * list file (text, read as the attribute's type).
 */
type EntryKind = SetItem['type'] | 'line';

/** Accumulates set entries for one attribute type; `add` returns a problem or null. */
interface SetBuilder {
  add(value: string, kind: EntryKind): string | null;
  readonly result: HOperand;
  readonly want: string;
}

function adderFor(type: AttrType | undefined, checkOnly: boolean): SetBuilder {
  switch (type) {
    case 'hostname': {
      const set = new HostSet(!checkOnly);
      return {
        add: (v, kind) =>
          kind !== 'string' && kind !== 'line'
            ? 'not a string'
            : set.add(v)
              ? null
              : 'invalid hostname pattern',
        result: { k: 'hostset', set },
        want: 'a hostname, ".suffix" or "*.suffix"',
      };
    }
    case 'ip': {
      const set = new CidrSet();
      return {
        add: (v, kind) =>
          kind !== 'string' && kind !== 'line'
            ? 'not a string'
            : set.add(v)
              ? null
              : 'invalid IP address or CIDR',
        result: { k: 'cidrset', set },
        want: 'an IP address or a CIDR such as "10.0.0.0/8"',
      };
    }
    case 'number':
    case 'duration': {
      const set = new Set<string>();
      return {
        add: (v, kind) => {
          // A quoted "443" is a string, as in `port == "443"`: an error, never a silent
          // match (docs/acl.md, "Sets and `in`"). List files hold text: read as numbers.
          if (kind === 'string') {
            const want = type === 'number' ? 'an integer' : 'a duration';
            return /^-?\d+$/.test(v) || /^\d+(ms|wk|s|m|h|d|w)$/.test(v)
              ? `a string, not ${want} (write ${v} without quotes)`
              : `not ${want}`;
          }
          if ((kind === 'int' || kind === 'line') && /^-?\d+$/.test(v)) {
            const n = BigInt(v);
            if (n > I64_MAX || n < -I64_MAX) return `integer ${v} is out of range`;
            set.add(numKey(n));
          } else if (
            type === 'duration' &&
            (kind === 'duration' || kind === 'line') &&
            /^\d+(ms|wk|s|m|h|d|w)$/.test(v)
          ) {
            set.add(numKey(durationSeconds(v)));
          } else return type === 'number' ? 'not an integer' : 'not a duration';
          return null;
        },
        result: { k: 'numset', set },
        want: type === 'number' ? 'an integer' : 'a duration such as 2wk',
      };
    }
    default: {
      // string, list, or an attribute unknown at load time: exact string membership.
      const set = new Set<string>();
      return {
        add: (v, kind) => {
          if (kind !== 'string' && kind !== 'line' && type !== undefined) return 'not a string';
          set.add(v);
          return null;
        },
        result: { k: 'strset', set },
        want: 'a string',
      };
    }
  }
}

const TYPE_NAMES: Record<AttrType, string> = {
  string: 'a string',
  number: 'a number',
  bool: 'a boolean',
  hostname: 'a hostname',
  ip: 'an IP address',
  list: 'a list',
  duration: 'a duration',
};

export function checkAcl(
  ast: AclFile,
  source: string,
  file: string,
  opts: CheckOptions,
): CheckResult {
  const diagnostics: Diagnostic[] = [];
  let lines: LineIndex | undefined;
  const lineIndex = () => {
    lines ??= new LineIndex(source);
    return lines;
  };
  const lineOf = (loc: Loc) => lineIndex().position(loc.offset).line;
  const report = (severity: Severity, loc: Loc, message: string, expected?: string) => {
    diagnostics.push(
      makeDiagnostic(severity, file, source, lineIndex().span(loc), message, expected),
    );
  };
  const attributes = new Set<string>();
  const textOf = (loc: Loc) => source.slice(loc.offset, loc.endOffset);

  // ---- literals -------------------------------------------------------------------
  function intValue(raw: string, loc: Loc): number | bigint | null {
    const v = BigInt(raw);
    if (v > I64_MAX || v < -I64_MAX) {
      report(
        'error',
        loc,
        `integer ${raw} is out of range`,
        `an integer between -${I64_MAX} and ${I64_MAX}`,
      );
      return null;
    }
    return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  }

  function regexOf(lit: StringLit): RE2 | null {
    try {
      return new (re2())(lit.value, 'u');
    } catch (err) {
      report(
        'error',
        lit.loc,
        `invalid regular expression: ${(err as Error).message}`,
        'a regular expression (RE2 syntax)',
      );
      return null;
    }
  }

  function listEntries(operand: Operand & { type: 'file' }): ListFile | null {
    const path = resolveListPath(opts.baseDir, operand.path.value);
    const content = opts.lists.get(path);
    if (!(content instanceof ListFile)) {
      const why = content ? content.error : 'not read';
      report('error', operand.path.loc, `cannot read list file ${path}: ${why}`);
      return null;
    }
    return content;
  }

  /** Builds the set for `in`, typed by the attribute; bad entries are reported. */
  function setOf(type: AttrType | undefined, operand: Operand, attr: string): HOperand | null {
    if (operand.type !== 'set' && operand.type !== 'file') {
      report(
        'error',
        operand.loc,
        `\`in\` needs a set, not ${describeOperand(operand)}`,
        '`[ … ]` or `file("…")`',
      );
      return null;
    }
    if (type === 'bool') {
      report('error', operand.loc, `\`in\` cannot apply to ${attr}, which is a boolean`);
      return null;
    }
    const add = adderFor(type, opts.checkOnly === true);
    if (operand.type === 'set') {
      for (const i of operand.items) {
        const problem = add.add(i.type === 'string' ? i.value : i.raw, i.type);
        if (problem)
          report(
            'error',
            i.loc,
            `${problem} in set for ${attr}: ${i.type === 'string' ? `"${i.value}"` : i.raw}`,
            add.want,
          );
      }
      return add.result;
    }
    // A list file: entries are text; a bad line is skipped with a warning (lists are
    // often generated from outside sources), at most five warnings per file.
    const list = listEntries(operand);
    if (!list) return null;
    const path = resolveListPath(opts.baseDir, operand.path.value);
    let bad = 0;
    list.forEach((value, line) => {
      const problem = add.add(value, 'line');
      if (problem && ++bad <= 5) {
        report('warning', operand.path.loc, `${path}:${line}: ${problem} "${value}" skipped`);
      }
    });
    if (bad > 5)
      report('warning', operand.path.loc, `${path}: ${bad - 5} more invalid entries skipped`);
    return add.result;
  }

  function describeOperand(o: Operand): string {
    switch (o.type) {
      case 'string':
        return 'a string';
      case 'int':
        return 'an integer';
      case 'duration':
        return 'a duration';
      case 'bool':
        return 'a boolean';
      case 'set':
        return 'a set';
      case 'file':
        return 'a list file';
    }
  }

  // ---- comparisons ----------------------------------------------------------------
  function checkCmp(c: Comparison): HCmp | null {
    const attr = c.attr.name;
    attributes.add(attr);
    const type = opts.attributes.get(attr);
    if (type === undefined) {
      report(
        'warning',
        c.attr.loc,
        `unknown attribute ${attr} (a trust provider may supply it; missing at run time = unknown)`,
      );
    }
    const v = c.value;
    const mk = (operand: HOperand | null): HCmp | null =>
      operand ? { kind: 'cmp', attr, type, op: c.op, operand, text: textOf(c.loc) } : null;
    const typeError = (want: string) => {
      report(
        'error',
        v.loc,
        `${attr} is ${TYPE_NAMES[type as AttrType]}: \`${c.op}\` needs ${want}, not ${describeOperand(v)}`,
        want,
      );
      return null;
    };
    const opError = () => {
      report(
        'error',
        c.opLoc,
        `\`${c.op}\` cannot apply to ${attr}, which is ${TYPE_NAMES[type as AttrType]}`,
      );
      return null;
    };

    switch (c.op) {
      case 'in':
        if (v.type !== 'set' && v.type !== 'file') {
          report(
            'error',
            v.loc,
            `\`in\` needs a set, not ${describeOperand(v)}`,
            '`[ … ]` or `file("…")`',
          );
          return null;
        }
        return mk(setOf(type, v, attr));
      case '=~':
      case '!~': {
        if (type === 'number' || type === 'bool' || type === 'duration') return opError();
        if (v.type !== 'string') {
          report(
            'error',
            v.loc,
            `\`${c.op}\` needs a regular expression string, not ${describeOperand(v)}`,
            'a string',
          );
          return null;
        }
        const re = regexOf(v);
        return re ? mk({ k: 'regex', re, source: v.value }) : null;
      }
      case '<':
      case '<=':
      case '>':
      case '>=': {
        if (type !== undefined && type !== 'number' && type !== 'duration') return opError();
        if (v.type === 'int') {
          const n = intValue(v.raw, v.loc);
          return n === null ? null : mk({ k: 'num', v: n });
        }
        if (v.type === 'duration') {
          if (type === 'number') return typeError('an integer');
          return mk({ k: 'num', v: durationSeconds(v.raw) });
        }
        if (type === undefined) {
          report(
            'error',
            v.loc,
            `\`${c.op}\` needs a number or a duration, not ${describeOperand(v)}`,
          );
          return null;
        }
        return typeError(type === 'number' ? 'an integer' : 'a duration');
      }
      case '==':
      case '!=': {
        if (v.type === 'set' || v.type === 'file') {
          report('error', v.loc, `\`${c.op}\` compares with one value; use \`in\` for a set`);
          return null;
        }
        switch (type) {
          case 'number':
            if (v.type !== 'int') return typeError('an integer');
            break;
          case 'duration':
            if (v.type !== 'int' && v.type !== 'duration') return typeError('a duration');
            break;
          case 'bool':
            if (v.type !== 'bool') return typeError('`true` or `false`');
            break;
          case 'string':
          case 'list':
          case 'hostname':
          case 'ip':
            if (v.type !== 'string') return typeError('a string');
            break;
        }
        if (v.type === 'string') {
          if (type === 'hostname') {
            const h = normalizeHost(v.value);
            if (h === null) {
              report('error', v.loc, `invalid hostname "${v.value}"`);
              return null;
            }
            return mk({ k: 'str', v: h });
          }
          if (type === 'ip' && !parseIp(v.value)) {
            report(
              'error',
              v.loc,
              `invalid IP address "${v.value}" (use \`in ["…/n"]\` for a CIDR)`,
            );
            return null;
          }
          return mk({ k: 'str', v: v.value });
        }
        if (v.type === 'bool') return mk({ k: 'bool', v: v.value });
        if (v.type === 'duration') return mk({ k: 'num', v: durationSeconds(v.raw) });
        const n = intValue(v.raw, v.loc);
        return n === null ? null : mk({ k: 'num', v: n });
      }
    }
  }

  function checkExpr(e: Expr): HExpr | null {
    switch (e.type) {
      case 'cmp':
        return checkCmp(e);
      case 'not': {
        const inner = checkExpr(e.expr);
        return inner ? { kind: 'not', expr: inner } : null;
      }
      default: {
        // Check every item (to report every error), then build.
        const items = e.items.map(checkExpr);
        if (items.some((i) => i === null)) return null;
        return { kind: e.type, items: items as HExpr[] };
      }
    }
  }

  function clause(e: Expr): HClause | null {
    const expr = checkExpr(e);
    return expr ? { expr, text: source.slice(exprStart(e), e.loc.endOffset) } : null;
  }

  // ---- blocks ---------------------------------------------------------------------
  function checkAction(a: ActionNode, p: Partial<HPolicy>): boolean {
    p.action = a.type;
    p.tags = a.log ? [a.log.value] : [];
    if (a.type === 'redirect') {
      let ok = false;
      try {
        const u = new URL(a.uri.value);
        ok = /^[a-z][a-z0-9+.-]*:$/.test(u.protocol) && a.uri.value.trim() === a.uri.value;
      } catch {
        ok = false;
      }
      if (!ok) {
        report(
          'error',
          a.uri.loc,
          `invalid redirect URI "${a.uri.value}"`,
          'an absolute URI such as "https://help.example.com/denied"',
        );
        return false;
      }
      p.redirect = a.uri.value;
    }
    if (a.type === 'deny' && a.template) {
      const path = resolveListPath(opts.baseDir, a.template.value);
      p.explainTemplate = path;
      if (opts.fileExists && !opts.fileExists(path)) {
        report(
          'warning',
          a.template.loc,
          `explain template ${path} does not exist (the default page will be used)`,
        );
      }
    }
    return true;
  }

  /** Records an attribute; a second one of the same kind is an error at its keyword. */
  function firstOccurrence(
    seen: Map<string, Loc>,
    a: { kind: string; loc: Loc },
    blockKind: 'policy' | 'route',
    name: string,
  ): boolean {
    const first = seen.get(a.kind);
    if (first) {
      report(
        'error',
        a.loc,
        `duplicate \`${a.kind}\` in ${blockKind} ${name} (first at line ${lineOf(first)})`,
      );
      return false;
    }
    seen.set(a.kind, a.loc);
    return true;
  }

  function checkPolicy(b: PolicyBlock): HPolicy | null {
    const seen = new Map<string, Loc>();
    const p: Partial<HPolicy> = { name: b.name };
    let ok = true;
    for (const a of b.attrs) {
      if (!firstOccurrence(seen, a, 'policy', b.name)) {
        ok = false;
        continue;
      }
      if (a.kind === 'action') ok = checkAction(a.action, p) && ok;
      else {
        const c = clause(a.expr);
        if (c) p[a.kind] = c;
        else ok = false;
      }
    }
    if (!seen.has('action')) {
      report(
        'error',
        b.nameLoc,
        `policy ${b.name} has no action`,
        '`action allow`, `action deny` or `action redirect "URI"`',
      );
      ok = false;
    }
    return ok ? (p as HPolicy) : null;
  }

  function checkRoute(b: RouteBlock): HRoute | null {
    const seen = new Map<string, Loc>();
    const r: Partial<HRoute> = { name: b.name };
    let ok = true;
    for (const a of b.attrs) {
      if (!firstOccurrence(seen, a, 'route', b.name)) {
        ok = false;
        continue;
      }
      if (a.kind === 'when') {
        const c = clause(a.expr);
        if (c) r.when = c;
        else ok = false;
      } else {
        if (a.backends.length === 0) {
          report('error', a.listLoc, `route ${b.name} has no backend`, 'at least one backend name');
          ok = false;
        }
        const names: string[] = [];
        for (const s of a.backends) {
          if (s.value !== RESERVED_BACKEND && opts.backends && !opts.backends.has(s.value)) {
            const known = [...opts.backends].sort().join(', ') || 'none';
            report(
              'error',
              s.loc,
              `unknown backend "${s.value}"`,
              `a configured backend (${known}) or "direct"`,
            );
            ok = false;
          }
          if (!names.includes(s.value)) names.push(s.value);
        }
        r.backends = names;
      }
    }
    if (!seen.has('use')) {
      report('error', b.nameLoc, `route ${b.name} has no \`use\``, '`use ["backend", …]`');
      ok = false;
    }
    return ok ? (r as HRoute) : null;
  }

  const policies: HPolicy[] = [];
  const routes: HRoute[] = [];
  const names = { policy: new Map<string, Loc>(), route: new Map<string, Loc>() };
  for (const b of ast.blocks) {
    const first = names[b.kind].get(b.name);
    if (first)
      report('error', b.nameLoc, `duplicate ${b.kind} ${b.name} (first at line ${lineOf(first)})`);
    else names[b.kind].set(b.name, b.nameLoc);
    if (b.kind === 'policy') {
      const p = checkPolicy(b);
      if (p) policies.push(p);
    } else {
      const r = checkRoute(b);
      if (r) routes.push(r);
    }
  }

  const failed = diagnostics.some((d) => d.severity === 'error');
  return { hir: failed ? null : { policies, routes, attributes }, diagnostics };
}

/** Where an expression's text starts (a parenthesised group starts at its `(`). */
function exprStart(e: Expr): number {
  return e.loc.offset;
}
