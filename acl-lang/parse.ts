// Source text → AST, with syntax errors as diagnostics. After a syntax error the
// parser resumes at the next block keyword, so one run reports every broken block.
import type { AclFile, Block } from './ast.js';
import { makeDiagnostic } from './diagnostics.js';
import { SyntaxError as PeggySyntaxError, parse as peggyParse } from './grammar.generated.js';
import type { Diagnostic } from './types.js';

export interface ParseResult {
  ast: AclFile;
  diagnostics: Diagnostic[];
}

const MAX_SYNTAX_ERRORS = 20;

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
  return source[offset] === '"' && !/^"[^"\n]*"/.test(source.slice(offset, offset + 4096));
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

export function parseAcl(source: string, file: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  let text = source;
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
            ? 'syntax error: unterminated string (a string ends on the line it starts)'
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
