// `portail check [--config FILE] [--json]` (docs/reference/commands.md, "portail check"):
// the configuration, every file it names (certificates, keys, known-hosts, GeoIP database)
// and both ACLs with their list files. Exit 0 when valid (warnings are printed), 1 with
// every diagnostic otherwise.
import { type Diagnostic, loadAclFile } from '../../acl-lang/index.js';
import {
  type Config,
  ConfigError,
  checkConfigFiles,
  formatConfigError,
  loadConfig,
} from '../config/index.js';
import { formatAllDiagnostics as formatDiagnostics } from '../state/diagnostics.js';
import { ACL_ATTRIBUTES, backendMap } from '../state/snapshot.js';

export async function runCheck(opts: { config: string; json?: boolean }): Promise<number> {
  let config: Config;
  try {
    config = await loadConfig(opts.config);
  } catch (err) {
    const diagnostics = err instanceof ConfigError ? [...err.diagnostics] : [];
    const text = formatConfigError(err);
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
  const diagnostics: Diagnostic[] = [...config.warnings, ...(await checkConfigFiles(config))];
  const backends = new Set(backendMap(config).keys());
  const acls: { role: string; file: string; policies: number; routes: number }[] = [];
  for (const [role, path] of [
    ['filter', config.filterAclRulesPath],
    ['explain', config.explainAclRulesPath],
  ] as const) {
    if (path === undefined) continue;
    const r = await loadAclFile(path, { backends, attributes: ACL_ATTRIBUTES });
    diagnostics.push(...r.diagnostics);
    acls.push({
      role,
      file: path,
      policies: r.acl?.policies.length ?? 0,
      routes: r.acl?.routes.length ?? 0,
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
