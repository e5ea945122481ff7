// One immutable snapshot of everything that may change at run time: the configuration,
// the compiled ACLs and the services built from them. It is built completely (every
// file read, checked and compiled) before anyone sees it, so a bad file can never leave
// the daemon half-reloaded (docs/reference/architecture.md, "State: one snapshot, swapped whole").
import type { Diagnostic } from '../../acl-lang/index.js';
import {
  type CompiledAcl,
  type LoadOptions,
  type LoadResult,
  loadAclFile,
} from '../../acl-lang/index.js';
import {
  type BackendConfig,
  type Config,
  ConfigError,
  checkConfigFiles,
  formatConfigError,
  loadConfig,
  makeDiagnostic,
} from '../config/index.js';
import { createDirectConnector, type DirectConnector } from '../connect/direct.js';
import { PROVIDED_ATTRIBUTES } from '../context/request-context.js';
import { createResolver, type Resolver } from '../net/resolver.js';
import { formatAllDiagnostics as formatDiagnostics } from './diagnostics.js';

export interface SnapshotServices {
  resolver: Resolver;
  /** The direct exit, with this configuration's timeouts and source address. */
  direct: DirectConnector;
}

export interface Snapshot {
  /** Increases by one with every successful (re)load. */
  readonly generation: number;
  readonly config: Config;
  /** Null = no valid ACL: every request is denied (never an open proxy). */
  readonly acl: CompiledAcl | null;
  /** Null = none configured (or not loadable at start): explanations stay generic. */
  readonly explainAcl: CompiledAcl | null;
  readonly backends: ReadonlyMap<string, BackendConfig>;
  readonly loadedAt: Date;
  readonly aclHash: string | null;
  /** Warnings of this load (and, at start, the errors that left `acl` null). */
  readonly diagnostics: readonly Diagnostic[];
  /** Every ACL and list file this snapshot was built from (watch-acl). */
  readonly files: readonly string[];
  readonly services: SnapshotServices;
}

export type BuildResult =
  | { ok: true; snapshot: Snapshot; warnings: readonly Diagnostic[] }
  | {
      ok: false;
      /** Formatted for a human (portailctl reload, the audit record). */
      text: string;
      diagnostics: readonly Diagnostic[];
      /** The ACL files that were attempted (still worth watching). */
      files: readonly string[];
      /** Set when the configuration itself is unusable (fatal at start). */
      configError: boolean;
      /** The configuration, when it could be read (`portail check` reports on it). */
      config?: Config;
    };

/** How an ACL file becomes a CompiledAcl: loadAclFile, or off the event loop (acl-load.ts). */
export type AclLoader = (path: string, opts: LoadOptions) => Promise<LoadResult>;

/** The attributes the ACL checker may trust (providers' ones over the language's). */
export const ACL_ATTRIBUTES = PROVIDED_ATTRIBUTES;

const isError = (d: Diagnostic) => d.severity === 'error';

/** The configured backends in file order (the config's own container type aside). */
export function backendMap(config: Config): ReadonlyMap<string, BackendConfig> {
  const b: unknown = config.backends;
  if (b instanceof Map) return b as ReadonlyMap<string, BackendConfig>;
  return new Map(Object.entries(b as Record<string, BackendConfig>));
}

/**
 * Reads the configuration, checks the files it names, loads both ACLs. `lenientAcl`
 * (start): an ACL that cannot be loaded leaves `acl` null instead of failing, since the
 * daemon must serve — denying everything — until a reload succeeds (docs/reference/commands.md, "portail daemon"). `loadAcl`:
 * a reload passes the worker-thread loader so that the event loop stays free.
 */
export async function buildSnapshot(
  configPath: string,
  generation: number,
  opts: { lenientAcl: boolean; loadAcl?: AclLoader },
): Promise<BuildResult> {
  let config: Config;
  try {
    config = await loadConfig(configPath);
  } catch (err) {
    const diagnostics = err instanceof ConfigError ? [...err.diagnostics] : [];
    return { ok: false, text: formatConfigError(err), diagnostics, files: [], configError: true };
  }
  const backendsByName = backendMap(config);
  const backends = new Set(backendsByName.keys());
  const load = (path: string | undefined) =>
    path === undefined
      ? Promise.resolve(null)
      : (opts.loadAcl ?? loadAclFile)(path, { backends, attributes: ACL_ATTRIBUTES });
  // Both ACLs are loaded even when a file the configuration names is bad: every failure
  // is reported at once (the start, a reload, `portail check`).
  const [fileDiags, filter, explain] = await Promise.all([
    checkConfigFiles(config),
    load(config.filterAclRulesPath),
    load(config.explainAclRulesPath),
  ]);
  const aclDiags = [...(filter?.diagnostics ?? []), ...(explain?.diagnostics ?? [])];
  const files = [...(filter?.files ?? []), ...(explain?.files ?? [])];
  if (fileDiags.some(isError)) {
    const diagnostics = [...fileDiags, ...aclDiags];
    const text = formatDiagnostics(diagnostics);
    return { ok: false, text, diagnostics, files, configError: true, config };
  }
  const failed =
    (filter !== null && filter.acl === null) || (explain !== null && explain.acl === null);
  if (failed && !opts.lenientAcl) {
    return {
      ok: false,
      text: formatDiagnostics(aclDiags),
      diagnostics: aclDiags,
      files,
      configError: false,
      config,
    };
  }
  const warnings = [...config.warnings, ...fileDiags, ...aclDiags];
  let resolver: Resolver;
  let direct: DirectConnector;
  try {
    resolver = createResolver({
      servers: [...config.dns.resolvers],
      timeoutMs: config.dns.timeoutMs,
    });
    direct = createDirectConnector({
      resolver,
      connectTimeoutMs: config.connectTimeoutMs,
      outgoingAddress: config.outgoingAddress,
      tcpNoDelay: config.tcpNodelay,
      // An exit's early FIN must not end our side before a relay owns it (direct.ts); the
      // HTTP forwarder's client closes the socket on a server's FIN by itself.
      halfOpen: true,
    });
  } catch (err) {
    // Unlocated (`FILE: error: …`), e.g. [dns] resolvers that c-ares refuses.
    const d = makeDiagnostic(config.file, '', undefined, (err as Error).message);
    return {
      ok: false,
      text: formatDiagnostics([d]),
      diagnostics: [d],
      files,
      configError: true,
      config,
    };
  }
  const acl = filter?.acl ?? null;
  const snapshot: Snapshot = Object.freeze({
    generation,
    config,
    acl,
    explainAcl: explain?.acl ?? null,
    backends: backendsByName,
    loadedAt: new Date(),
    aclHash: acl?.hash ?? null,
    diagnostics: Object.freeze(warnings),
    files: Object.freeze(files),
    services: Object.freeze({ resolver, direct }),
  });
  return { ok: true, snapshot, warnings: warnings.filter((d) => !isError(d)) };
}
