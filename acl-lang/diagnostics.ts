// Building and printing diagnostics: `file:line:column: error: message`, the source
// line, a caret under the offending text, and what was expected.
import type { Diagnostic, Severity } from './types.js';

/** Position of a piece of source: 1-based line and column, and its length. */
export interface Span {
  line: number;
  column: number;
  length: number;
}

export function sourceLineAt(source: string, line: number): string {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const nl = source.indexOf('\n', start);
    if (nl < 0) return '';
    start = nl + 1;
  }
  const end = source.indexOf('\n', start);
  return source.slice(start, end < 0 ? source.length : end).replace(/\r$/, '');
}

/** Offset → 1-based line and column, by binary search over line starts. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(private readonly source: string) {
    for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1))
      this.starts.push(i + 1);
  }

  position(offset: number): { line: number; column: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }

  /** Span of the text between two offsets, clipped to its first line. */
  span(loc: { offset: number; endOffset: number }): Span {
    const text = this.source.slice(loc.offset, Math.max(loc.endOffset, loc.offset + 1));
    const nl = text.indexOf('\n');
    const length = Math.max(1, nl < 0 ? text.length : nl);
    return { ...this.position(loc.offset), length };
  }
}

export function makeDiagnostic(
  severity: Severity,
  file: string,
  source: string,
  span: Span,
  message: string,
  expected?: string,
): Diagnostic {
  const d: Diagnostic = {
    severity,
    file,
    line: span.line,
    column: span.column,
    length: span.length,
    message,
    sourceLine: sourceLineAt(source, span.line),
  };
  if (expected !== undefined) d.expected = expected;
  return d;
}

export function formatDiagnostic(d: Diagnostic): string {
  const head = `${d.file}:${d.line}:${d.column}: ${d.severity}: ${d.message}`;
  if (d.sourceLine === '' && d.column <= 1) {
    return d.expected ? `${head}\n  expected ${d.expected}` : head;
  }
  // Keep tabs so that the caret lines up under the text whatever the tab width.
  const pad = d.sourceLine.slice(0, d.column - 1).replace(/[^\t]/g, ' ');
  const visible = Math.max(1, Math.min(d.length, d.sourceLine.length - (d.column - 1)));
  const lines = [head, `  ${d.sourceLine}`, `  ${pad}${'^'.repeat(visible)}`];
  if (d.expected) lines.push(`  expected ${d.expected}`);
  return lines.join('\n');
}

/** Errors first (in file order), then warnings. */
export function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return sortDiagnostics(ds).map(formatDiagnostic).join('\n');
}

export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  const rank = (d: Diagnostic) => (d.severity === 'error' ? 0 : 1);
  return [...ds].sort(
    (a, b) =>
      rank(a) - rank(b) || a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column,
  );
}
