// `portail check-acl-syntax [--config FILE] [--json] ACL_FILE`
// (docs/reference/commands.md, "portail check-acl-syntax"): exit 0 when
// valid (warnings are printed), 1 with every diagnostic otherwise.

import type { Diagnostic } from '../../acl-lang/index.js';
import { formatDiagnostics, loadAclFile } from '../../acl-lang/index.js';

export async function runCheckAclSyntax(
  aclFile: string,
  opts: { config?: string; json?: boolean },
): Promise<number> {
  let backends: Set<string> | null = null;
  if (opts.config) {
    // The configuration's modules (zod, the TOML parser) only with --config.
    const { ConfigError, formatConfigError, loadConfig } = await import('../config/load.js');
    try {
      const config = await loadConfig(opts.config);
      backends = new Set(Object.keys(config.backends));
    } catch (err) {
      if (err instanceof ConfigError) {
        if (opts.json)
          console.log(JSON.stringify({ valid: false, config_error: formatConfigError(err) }));
        else console.error(formatConfigError(err));
        return 1;
      }
      throw err;
    }
  }
  let result: Awaited<ReturnType<typeof loadAclFile>>;
  try {
    // Diagnostics only: a million-entry list is validated without building its set.
    result = await loadAclFile(aclFile, { backends, checkOnly: true });
  } catch (err) {
    // A bug, not a diagnostic: still one line and exit 1, never a stack trace.
    const message = `cannot check: internal error: ${(err as Error).message ?? err}`;
    if (opts.json) console.log(JSON.stringify({ valid: false, file: aclFile, error: message }));
    else console.error(`${aclFile}: error: ${message}`);
    return 1;
  }
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  const valid = errors.length === 0;
  if (opts.json) {
    const out = {
      valid,
      file: aclFile,
      policies: result.acl?.policies.length ?? 0,
      routes: result.acl?.routes.length ?? 0,
      diagnostics: result.diagnostics.map((d: Diagnostic) => ({ ...d })),
    };
    console.log(JSON.stringify(out, null, 2));
  } else {
    if (result.diagnostics.length) console.error(formatDiagnostics(result.diagnostics));
    if (valid) {
      const n = result.acl?.policies.length ?? 0;
      const r = result.acl?.routes.length ?? 0;
      const note = backends === null ? ' (backend names not checked: no --config given)' : '';
      console.log(
        `${aclFile}: OK, ${n} ${n === 1 ? 'policy' : 'policies'}, ${r} ${r === 1 ? 'route' : 'routes'}${note}`,
      );
    } else {
      console.error(`${aclFile}: ${errors.length} ${errors.length === 1 ? 'error' : 'errors'}`);
    }
  }
  return valid ? 0 : 1;
}
