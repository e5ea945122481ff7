// Source text → AST, with syntax errors as diagnostics. After a syntax error the
// parser resumes at the next block keyword, so one run reports every broken block.
import type { AclFile, Block } from './ast.js';
import { LineIndex, makeDiagnostic } from './diagnostics.js';
import { SyntaxError as PeggySyntaxError, parse as peggyParse } from './grammar.generated.js';
import type { Diagnostic } from './types.js';

export interface ParseResult {
  ast: AclFile;
  diagnostics: Diagnostic[];
}

const MAX_SYNTAX_ERRORS = 20;

/**
 * How deep parentheses and `not` may nest (docs/acl.md "Nesting limit"). The generated
 * parser recurses a few frames per level and the checker, compiler and evaluator once
 * per level: bounding it here bounds every later pass. Far beyond what a person writes.
 */
export const MAX_NESTING = 64;

const TOO_DEEP = `expression nested too deeply (more than ${MAX_NESTING} levels of parentheses and \`not\`)`;

// Words as the grammar has them: `-` inside names (`user.trust-level`), and any non-ASCII
// character (letters of block names), so that `not-x` or `notée` is never read as `not`.
const isWordChar = (c: number) =>
  (c >= 48 && c <= 57) ||
  (c >= 65 && c <= 90) ||
  (c >= 97 && c <= 122) ||
  c === 95 ||
  c === 45 ||
  c >= 128;

/**
 * Where parentheses and `not` first nest deeper than MAX_NESTING, once per region between
 * braces (a block's `{`, a clause's `{ … }`), skipping strings and comments. Linear, no
 * recursion: it runs before the parser so that the parser never sees such a nest.
 * A level is an open `(` (not the one of `file(…)`) or a `not` whose operand is still
 * open; the `not`s of a level end with its next word (an attribute, `and`, `or`) or `)`.
 */
export function findTooDeep(text: string): { offset: number; length: number }[] {
  const found: { offset: number; length: number }[] = [];
  /** Pending `not`s per open parenthesis level (index 0: outside any). */
  let nots: number[] = [0];
  /** Whether each open level counts (the parenthesis of `file(` does not). */
  let counted: boolean[] = [false];
  let depth = 0;
  let afterFile = false;
  let reported = false;
  const deeper = (offset: number, length: number) => {
    if (++depth > MAX_NESTING && !reported) {
      found.push({ offset, length });
      reported = true;
    }
  };
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) continue;
    if (c === 35 /* # */) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? n : nl;
      continue;
    }
    if (c === 34 /* " */) {
      // A string ends at its closing quote, lines included (as the grammar's String), or,
      // unterminated, at the end of the text.
      const close = text.indexOf('"', i + 1);
      i = close < 0 ? n : close;
      afterFile = false;
      continue;
    }
    if (c === 123 /* { */ || c === 125 /* } */) {
      nots = [0];
      counted = [false];
      depth = 0;
      reported = false;
      afterFile = false;
      continue;
    }
    if (c === 40 /* ( */) {
      const counts = !afterFile;
      nots.push(0);
      counted.push(counts);
      if (counts) deeper(i, 1);
      afterFile = false;
      continue;
    }
    if (c === 41 /* ) */) {
      if (nots.length > 1) {
        depth -= (nots.pop() as number) + (counted.pop() ? 1 : 0);
        // The `not`s before this parenthesis applied to it: they end with it.
        depth -= nots[nots.length - 1];
        nots[nots.length - 1] = 0;
      }
      afterFile = false;
      continue;
    }
    if (isWordChar(c)) {
      let j = i + 1;
      while (
        j < n &&
        (isWordChar(text.charCodeAt(j)) ||
          (text.charCodeAt(j) === 46 && isWordChar(text.charCodeAt(j + 1))))
      )
        j++;
      // Compared in place: slicing every word of a 13 MB file doubles the scan's time.
      const len = j - i;
      if (len === 3 && text.startsWith('not', i)) {
        nots[nots.length - 1]++;
        deeper(i, 3);
      } else {
        depth -= nots[nots.length - 1];
        nots[nots.length - 1] = 0;
      }
      afterFile = len === 4 && text.startsWith('file', i);
      i = j - 1;
      continue;
    }
    afterFile = false;
  }
  return found;
}

interface Expectation {
  type: string;
  text?: string;
  description?: string;
  ignoreCase?: boolean;
}

function describeExpected(expected: readonly Expectation[] | null | undefined): string {
  if (!expected) return '';
  const seen = new Set<string>();
  for (const e of expected) {
    let d: string;
    if (e.type === 'literal') d = `\`${e.text}\``;
    else if (e.type === 'end') d = 'end of file';
    else if (e.type === 'any') d = 'any character';
    else d = e.description ?? '';
    if (d === '' || d === 'whitespace') continue;
    seen.add(d);
  }
  const list = [...seen].sort();
  if (list.length <= 1) return list.join('');
  return `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
}

/** Length of the token starting at `offset`, for the caret. */
function tokenLength(source: string, offset: number): number {
  const m = /^(?:[A-Za-z0-9_.]+|"[^"\n]*"?|\S)/.exec(source.slice(offset, offset + 200));
  return m ? m[0].length : 1;
}

function unterminated(source: string, offset: number): boolean {
  return source[offset] === '"' && source.indexOf('"', offset + 1) < 0;
}

function startsBlock(source: string, offset: number): boolean {
  return /^(policy|route)(?![A-Za-z0-9_.])/.test(source.slice(offset, offset + 7));
}

function describeFound(source: string, offset: number): string {
  if (offset >= source.length) return 'end of file';
  const len = tokenLength(source, offset);
  const tok = source.slice(offset, offset + len);
  return /^\s$/.test(tok) ? 'end of line' : `\`${tok}\``;
}

// `route.local == …` on a line of its own is an attribute, not a block: exclude `.`.
const BLOCK_START = /(^|\n)([ \t]*)(policy|route)(?![A-Za-z0-9_.])/g;

/** Offsets where a `policy`/`route` keyword starts a line. */
function blockStarts(source: string): number[] {
  const out: number[] = [];
  BLOCK_START.lastIndex = 0;
  for (let m = BLOCK_START.exec(source); m; m = BLOCK_START.exec(source)) {
    out.push(m.index + m[1].length + m[2].length);
  }
  return out;
}

/** Replace [start, end) with spaces, keeping newlines so positions stay true. */
function blank(source: string, start: number, end: number): string {
  return (
    source.slice(0, start) + source.slice(start, end).replace(/[^\n]/g, ' ') + source.slice(end)
  );
}

/**
 * Reports every block nested past MAX_NESTING and blanks it, so that the parser never
 * recurses that deep. Block bounds come from the block keywords, as for syntax errors;
 * a rescan catches a nest those bounds missed (the rest of the file is then dropped).
 */
function dropTooDeep(source: string, file: string, diagnostics: Diagnostic[]): string {
  let text = source;
  let lines: LineIndex | undefined;
  for (let round = 0; ; round++) {
    const found = findTooDeep(text);
    if (found.length === 0) return text;
    lines ??= new LineIndex(source);
    const starts = blockStarts(text);
    const cuts: [number, number][] = [];
    for (const f of found) {
      // The last block keyword at or before the nest (binary search: starts is sorted).
      let lo = -1;
      for (let hi = starts.length - 1; lo < hi; ) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= f.offset) lo = mid;
        else hi = mid - 1;
      }
      const blockStart = lo < 0 ? 0 : starts[lo];
      if (cuts.length && cuts[cuts.length - 1][0] === blockStart) continue;
      const next = round < 2 && lo + 1 < starts.length ? starts[lo + 1] : text.length;
      cuts.push([blockStart, next]);
      const at = { ...lines.position(f.offset), length: f.length };
      diagnostics.push(makeDiagnostic('error', file, source, at, TOO_DEEP));
      if (next === text.length) break;
    }
    const parts: string[] = [];
    let from = 0;
    for (const [start, end] of cuts) {
      parts.push(text.slice(from, start), text.slice(start, end).replace(/[^\n]/g, ' '));
      from = end;
    }
    parts.push(text.slice(from));
    text = parts.join('');
  }
}

export function parseAcl(source: string, file: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  let text = dropTooDeep(source, file, diagnostics);
  for (let attempt = 0; attempt <= MAX_SYNTAX_ERRORS; attempt++) {
    try {
      const ast = peggyParse(text, { grammarSource: file }) as AclFile;
      return { ast, diagnostics };
    } catch (err) {
      if (!(err instanceof PeggySyntaxError)) throw err;
      const e = err as PeggySyntaxError & { expected?: Expectation[] };
      const start = e.location.start;
      const expected = describeExpected(e.expected);
      diagnostics.push(
        makeDiagnostic(
          'error',
          file,
          source,
          { line: start.line, column: start.column, length: tokenLength(text, start.offset) },
          unterminated(text, start.offset)
            ? 'syntax error: unterminated string (no closing `"` before the end of the file)'
            : `syntax error: unexpected ${describeFound(text, start.offset)}${
                startsBlock(text, start.offset) ? ' (is the `}` of the block above missing?)' : ''
              }`,
          expected || undefined,
        ),
      );
      // Resume: drop the broken block (from its keyword to the next block keyword).
      // The broken block runs from the last block keyword before the error to the next
      // one at or after it (an unclosed block is reported where the next one starts).
      const starts = blockStarts(text);
      const blockStart = starts.filter((p) => p < start.offset).pop() ?? 0;
      const next = starts.find((p) => p >= start.offset && p > blockStart) ?? -1;
      if (next < 0 || attempt === MAX_SYNTAX_ERRORS) {
        return { ast: recoverPrefix(text, blockStart), diagnostics };
      }
      text = blank(text, blockStart, next);
    }
  }
  return { ast: { blocks: [] }, diagnostics };
}

/** The blocks before a fatal syntax error, so the checker can still report on them. */
function recoverPrefix(text: string, blockStart: number): AclFile {
  try {
    return peggyParse(blank(text, blockStart, text.length)) as AclFile;
  } catch {
    return { blocks: [] as Block[] };
  }
}
