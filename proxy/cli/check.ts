// `portail check [--config FILE] [--json]` (docs/reference/commands.md, "portail check"): builds the snapshot
// exactly as the daemon's start does (state/snapshot.ts buildSnapshot, `lenientAcl`
// included), so "check passes" means "the daemon starts with these files and serves".
// An ACL the daemon would start without (denying everything) is still an error here.
// Exit 0 when valid (warnings are printed), 1 with every diagnostic otherwise.
import type { CompiledAcl, Diagnostic } from '../../acl-lang/index.js';
import { formatAllDiagnostics as formatDiagnostics } from '../state/diagnostics.js';
import { buildSnapshot } from '../state/snapshot.js';

export async function runCheck(opts: { config: string; json?: boolean }): Promise<number> {
  const built = await buildSnapshot(opts.config, 0, { lenientAcl: true });
  const config = built.ok ? built.snapshot.config : built.config;
  if (config === undefined) {
    // The configuration itself could not be read.
    const diagnostics = built.ok ? [] : built.diagnostics;
    const text = built.ok ? '' : built.text;
    if (opts.json) {
      const out = diagnostics.length
        ? diagnostics
        : [{ severity: 'error', file: opts.config, line: 0, column: 0, message: text }];
      console.log(JSON.stringify({ valid: false, diagnostics: out }, null, 2));
    } else {
      console.error(text);
      console.error(`${opts.config}: invalid`);
    }
    return 1;
  }
  const diagnostics: Diagnostic[] = built.ok
    ? [...built.snapshot.diagnostics]
    : [...config.warnings, ...built.diagnostics];
  const compiled = (role: 'filter' | 'explain'): CompiledAcl | null =>
    built.ok ? (role === 'filter' ? built.snapshot.acl : built.snapshot.explainAcl) : null;
  const acls: { role: string; file: string; policies: number; routes: number }[] = [];
  for (const [role, path] of [
    ['filter', config.filterAclRulesPath],
    ['explain', config.explainAclRulesPath],
  ] as const) {
    if (path === undefined) continue;
    const acl = compiled(role);
    acls.push({
      role,
      file: path,
      policies: acl?.policies.length ?? 0,
      routes: acl?.routes.length ?? 0,
    });
  }
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const valid = errors.length === 0;
  if (opts.json) {
    console.log(JSON.stringify({ valid, config: config.file, acls, diagnostics }, null, 2));
    return valid ? 0 : 1;
  }
  if (diagnostics.length) console.error(formatDiagnostics(diagnostics));
  if (config.filterAclRulesPath === undefined) {
    console.error(
      `${opts.config}: warning: no filter-acl-rules-path: the daemon would deny every request`,
    );
  }
  if (valid) {
    const summary = acls.map((a) => `${a.role} ACL ${a.policies} policies, ${a.routes} routes`);
    console.log(`${opts.config}: OK${summary.length ? `, ${summary.join('; ')}` : ''}`);
    return 0;
  }
  console.error(`${opts.config}: ${errors.length} ${errors.length === 1 ? 'error' : 'errors'}`);
  return 1;
}
