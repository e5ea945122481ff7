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
    message: safeText(message),
    sourceLine: maskSecrets(sourceLineAt(source, span.line)),
  };
  if (expected !== undefined) d.expected = safeText(expected);
  return d;
}

// Quoted source lines and values never carry a secret and never reach a terminal raw
// (docs/security.md, "Secrets in diagnostics"). A Diagnostic keeps its line with each
// secret masked by as many `*` (its columns stay the file's: editors and --json use
// them); the printed form shows `***` and escapes control characters, caret moved along.

/** `pin-value=…` (PKCS#11 URIs), up to the next URI delimiter, quote or blank. */
const PIN_VALUE = /pin-value=([^;&?#"'\s]*)/gi;
/** The password of a URL's userinfo: `scheme://user:PASSWORD@`, or `"user:PASSWORD@host`. */
const USERINFO = /(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/|^|["'\s=])[^\s:@/"'=]*:([^\s@/"']*)@/g;
/** A `password = "…"`-like key (any file, any section): its value, quotes and comment aside. */
const SECRET_KEY =
  /^\s*["']?(?:[A-Za-z0-9_.-]*[-_.])?(?:password|passwd|passphrase|secret|token|api[-_]?key|pin|credentials?)["']?\s*=\s*["']{0,3}([^"'#]*)/i;

/** Start and end offsets of every secret value in `line`, sorted, not overlapping. */
export function secretSpans(line: string): [number, number][] {
  const spans: [number, number][] = [];
  const add = (m: RegExpExecArray, end: number) => {
    const value = m[1];
    if (value === undefined || value === '') return;
    spans.push([end - value.length, end]);
  };
  for (const m of line.matchAll(PIN_VALUE)) add(m, m.index + m[0].length);
  // The userinfo match ends with "@", after the password.
  for (const m of line.matchAll(USERINFO)) add(m, m.index + m[0].length - 1);
  const k = SECRET_KEY.exec(line);
  if (k) add(k, k.index + k[0].length);
  spans.sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else out.push([s[0], s[1]]);
  }
  return out;
}

/** `line` with every character of every secret value replaced by `*` (same length). */
export function maskSecrets(line: string): string {
  let out = line;
  for (const [a, b] of secretSpans(line)) out = out.slice(0, a) + '*'.repeat(b - a) + out.slice(b);
  return out;
}

/**
 * C0 and C1 controls but tab, DEL, and what reorders or splits a line on screen (bidi
 * marks, overrides and isolates, line and paragraph separators, the BOM).
 */
function unsafe(cp: number): boolean {
  if (cp < 0x20) return cp !== 0x09;
  if (cp >= 0x7f && cp <= 0x9f) return true;
  return (
    cp === 0x061c ||
    cp === 0x200e ||
    cp === 0x200f ||
    (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069) ||
    cp === 0xfeff
  );
}

function escapeChar(cp: number): string {
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** Secrets as `***`, unsafe characters escaped (messages: no caret to keep). */
export function safeText(text: string): string {
  return displayLine(text, 1, 1).text;
}

/**
 * The printed form of a source line: secrets (plain or already masked) as `***`, unsafe
 * characters as `\xHH` / `\u{H}`. `column` and `length` (1-based, in `line`) are
 * mapped onto the printed text, so that the caret stays under the same characters.
 */
export function displayLine(
  line: string,
  column: number,
  length: number,
): { text: string; column: number; length: number } {
  const secrets = secretSpans(line);
  let text = '';
  // map[i]: where offset i of `line` starts in `text`; map[line.length]: the end.
  const map: number[] = [];
  let i = 0;
  let s = 0;
  while (i < line.length) {
    const sec = secrets[s];
    if (sec && i === sec[0]) {
      for (let j = sec[0]; j < sec[1]; j++) map[j] = text.length;
      text += '***';
      i = sec[1];
      s++;
      continue;
    }
    const cp = line.codePointAt(i) as number;
    const c = String.fromCodePoint(cp);
    for (let j = 0; j < c.length; j++) map[i + j] = text.length;
    text += unsafe(cp) ? escapeChar(cp) : c;
    i += c.length;
  }
  map[line.length] = text.length;
  // Offsets past the end of the line (an error at end of line) keep their distance.
  const at = (offset: number) =>
    offset <= line.length ? map[Math.max(0, offset)] : text.length + offset - line.length;
  const start = at(column - 1);
  const end = at(column - 1 + Math.max(1, length));
  return { text, column: start + 1, length: Math.max(1, end - start) };
}

export function formatDiagnostic(d: Diagnostic): string {
  const head = `${d.file}:${d.line}:${d.column}: ${d.severity}: ${safeText(d.message)}`;
  const expected = d.expected ? `  expected ${safeText(d.expected)}` : '';
  if (d.sourceLine === '' && d.column <= 1) return expected ? `${head}\n${expected}` : head;
  const shown = displayLine(d.sourceLine, d.column, d.length);
  // Keep tabs so that the caret lines up under the text whatever the tab width.
  const pad = shown.text.slice(0, shown.column - 1).replace(/[^\t]/g, ' ');
  const visible = Math.max(1, Math.min(shown.length, shown.text.length - (shown.column - 1)));
  const lines = [head, `  ${shown.text}`, `  ${pad}${'^'.repeat(visible)}`];
  if (expected) lines.push(expected);
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
