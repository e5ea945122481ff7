// One rendering for configuration and ACL diagnostics alike: `FILE:LINE:COLUMN:
// severity: message`, the source line and a caret; `FILE: severity: message` for a
// problem with the whole file (line 0, e.g. unreadable).
import { type Diagnostic, formatDiagnostic as formatAclDiagnostic } from '../../acl-lang/index.js';
import { formatDiagnostic as formatConfigDiagnostic } from '../config/index.js';

export function formatAllDiagnostics(ds: readonly Diagnostic[]): string {
  const rank = (d: Diagnostic) => (d.severity === 'error' ? 0 : 1);
  return [...ds]
    .sort((a, b) => rank(a) - rank(b))
    .map((d) => (d.line < 1 ? formatConfigDiagnostic(d) : formatAclDiagnostic(d)))
    .join('\n');
}
