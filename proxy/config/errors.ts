// Configuration diagnostics: `FILE:LINE:COLUMN: error: MESSAGE`, the source line and a
// caret under the key, one per problem (same layout as the ACL checker's).
import { displayLine, maskSecrets, safeText } from '../../acl-lang/diagnostics.js';
import type { Diagnostic } from '../../acl-lang/types.js';
import type { KeyPath, Span } from './locate.js';

/** Thrown by loadConfig: every problem found in the file, in file order. */
export class ConfigError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    const first = diagnostics[0];
    const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : '';
    super(
      first
        ? `${first.file}:${first.line}:${first.column}: ${first.message}${more}`
        : 'invalid configuration',
    );
    this.name = 'ConfigError';
  }
}

/** `backends.par01.target-address`, `dns.resolvers[1]`, `backends."odd name".type`. */
export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg + 1}]`;
    else out += (out ? '.' : '') + (/^[A-Za-z0-9_-]+$/.test(seg) ? seg : JSON.stringify(seg));
  }
  return out;
}

export function lineOf(source: string, line: number): string {
  if (line < 1) return '';
  const lines = source.split('\n');
  return (lines[line - 1] ?? '').replace(/\r$/, '');
}

export function makeDiagnostic(
  file: string,
  source: string,
  span: Span | undefined,
  message: string,
  severity: 'error' | 'warning' = 'error',
): Diagnostic {
  // No position (unreadable file, key not found): line 0 means "the whole file".
  const s = span ?? { line: 0, column: 0, length: 1 };
  return {
    severity,
    file,
    line: s.line,
    column: s.column,
    length: s.length,
    // Secrets masked, control characters escaped when printed (acl-lang/diagnostics.ts).
    message: safeText(message),
    sourceLine: maskSecrets(lineOf(source, s.line)),
  };
}

export function formatDiagnostic(d: Diagnostic): string {
  const message = safeText(d.message);
  if (d.line < 1) return `${d.file}: ${d.severity}: ${message}`;
  const head = `${d.file}:${d.line}:${d.column}: ${d.severity}: ${message}`;
  if (d.sourceLine === '') return head;
  const shown = displayLine(d.sourceLine, d.column, d.length);
  // Keep tabs so that the caret lines up whatever the tab width.
  const pad = shown.text.slice(0, shown.column - 1).replace(/[^\t]/g, ' ');
  const width = Math.max(1, Math.min(shown.length, shown.text.length - (shown.column - 1)));
  return [head, `  ${shown.text}`, `  ${pad}${'^'.repeat(width)}`].join('\n');
}

/** Errors first, then warnings; each group in file order. */
export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  const rank = (d: Diagnostic) => (d.severity === 'error' ? 0 : 1);
  return [...ds].sort(
    (a, b) =>
      rank(a) - rank(b) || a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column,
  );
}

export function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return sortDiagnostics(ds).map(formatDiagnostic).join('\n');
}

/** Renders a ConfigError (every problem); any other error as its message. */
export function formatConfigError(err: unknown): string {
  if (err instanceof ConfigError) return formatDiagnostics(err.diagnostics);
  return err instanceof Error ? err.message : String(err);
}
