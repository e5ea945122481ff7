// loadConfig: read the TOML file, validate it against the schema and the cross-key
// rules, resolve every path, and return a frozen Config, or throw a ConfigError that
// lists every problem with its line and column.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, TomlError } from 'smol-toml';
import type { z } from 'zod';
import type { Diagnostic } from '../../acl-lang/types.js';
import { ConfigError, formatKeyPath, makeDiagnostic, sortDiagnostics } from './errors.js';

export { ConfigError, formatConfigError } from './errors.js';

import { findSpan, type KeyPath, locateKeys, type Span } from './locate.js';
import { crossFieldIssues, isTable } from './rules.js';
import { configSchema, describeValue, knownKeys, type ParsedConfig } from './schema.js';
import { closestKey } from './suggest.js';
import type { AuditSink, BackendConfig, Config } from './types.js';
import { applyUpstreamSpellings, type UpstreamRename, writtenPath } from './upstream-keys.js';

export const defaultConfigPath = '/etc/portail/portail.toml';

/** examples/portail.toml of the installed package (this file is dist/proxy/config/load.js). */
export function embeddedDefaultConfigPath(): string {
  return fileURLToPath(new URL('../../../examples/portail.toml', import.meta.url));
}

/** What check.ts needs to point its diagnostics at the key that names a file. */
export interface ConfigSource {
  /** The path as the user gave it (shown in diagnostics). */
  name: string;
  text: string;
  spans: Map<string, Span>;
  /** Upstream's spellings read as our keys (upstream-keys.ts): diagnostics name the written key. */
  renames: readonly UpstreamRename[];
}

const sources = new WeakMap<Config, ConfigSource>();

export function configSource(config: Config): ConfigSource | undefined {
  return sources.get(config);
}

function readError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return (err as Error).message;
}

function valueAt(doc: unknown, path: KeyPath): unknown {
  let v = doc;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** One zod issue → messages in TOML words, each with the key path it concerns. */
function explainIssue(issue: z.core.$ZodIssue, doc: unknown): { path: KeyPath; message: string }[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(path);
    return issue.keys.map((key) => {
      const hint = closestKey(key, known);
      return {
        path: [...path, key],
        message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`,
      };
    });
  }
  if (issue.code === 'invalid_type') {
    const actual = valueAt(doc, path);
    const expected =
      issue.expected === 'object' || issue.expected === 'record' ? 'a table' : issue.expected;
    return [{ path, message: `expected ${expected}, got ${describeValue(actual)}` }];
  }
  return [{ path, message: issue.message }];
}

function resolvePath(p: string, dir: string): string | { error: string } {
  if (p === '~' || p.startsWith('~/')) {
    const home = process.env.HOME;
    if (!home) return { error: `"${p}" starts with "~/" but $HOME is not set` };
    return resolve(home, p.slice(2));
  }
  return resolve(dir, p);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Drops `undefined` members so that optional keys are absent, not present-and-undefined. */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function buildConfig(
  file: string,
  p: ParsedConfig,
  resolveAt: (path: KeyPath, value: string | undefined) => string | undefined,
  warnings: Diagnostic[],
): Config {
  // No prototype: a backend called "constructor" or "toString" is just a name.
  const backends: Record<string, BackendConfig> = Object.create(null);
  for (const [name, b] of Object.entries(p.backends)) {
    const at = (key: string, v: string | undefined) => resolveAt(['backends', name, key], v);
    const backend: BackendConfig = compact({
      name,
      type: b.type,
      targetAddress: b['target-address'],
      dynamic: b.dynamic,
      identityAware: b['identity-aware'],
      tlsServerName: b['tls-server-name'],
      http2: b.http2,
      user: b.user,
      identityFile: at('identity-file', b['identity-file']),
      agent: b.agent,
      knownHosts: at('known-hosts', b['known-hosts']),
    });
    backends[name] = backend;
  }
  let audit: AuditSink | undefined = p.log.audit;
  if (audit?.kind === 'file') {
    const path = resolveAt(['log', 'audit'], audit.path);
    audit = path === undefined ? undefined : { kind: 'file', path };
  }
  const config: Config = compact({
    file,
    filterAclRulesPath: resolveAt(['filter-acl-rules-path'], p['filter-acl-rules-path']),
    explainAclRulesPath: resolveAt(['explain-acl-rules-path'], p['explain-acl-rules-path']),
    handshakeTimeoutMs: p['handshake-timeout'],
    connectTimeoutMs: p['connect-timeout'],
    idleTimeoutMs: p['idle-timeout'],
    tcpNodelay: p['tcp-nodelay'],
    maxConnections: p['max-connections'],
    defaultBackend: p['default-backend'],
    fallbackToDirect: p['fallback-to-direct'],
    watchAcl: p['watch-acl'],
    outgoingAddress: p['outgoing-address'],
    publicAddress: p['public-address'],
    dns: { resolvers: p.dns.resolvers, timeoutMs: p.dns.timeout },
    listener: compact({
      cacertFile: resolveAt(['listener', 'cacert-file'], p.listener['cacert-file']),
      tlsPrivkey: resolveAt(['listener', 'tls-privkey'], p.listener['tls-privkey']),
      tlsChain: resolveAt(['listener', 'tls-chain'], p.listener['tls-chain']),
      proxyProtocol: p.listener['proxy-protocol'],
      requireTls: p.listener['require-tls'],
    }),
    escaper: compact({
      cacertFile: resolveAt(['escaper', 'cacert-file'], p.escaper['cacert-file']),
      tlsPrivkey: resolveAt(['escaper', 'tls-privkey'], p.escaper['tls-privkey']),
      tlsCertificate: resolveAt(['escaper', 'tls-certificate'], p.escaper['tls-certificate']),
      pkcs11Uri: p.escaper['pkcs11-uri'],
      pkcs11Module: resolveAt(['escaper', 'pkcs11-module'], p.escaper['pkcs11-module']),
    }),
    rpc: { adminGroups: p.rpc['admin-groups'], trustedGroups: p.rpc['trusted-groups'] },
    log: compact({ audit, level: p.log.level }),
    metrics: compact({ listen: p.metrics.listen }),
    pac: { direct: p.pac.direct },
    geoip: compact({ database: resolveAt(['geoip', 'database'], p.geoip.database) }),
    backends,
    warnings,
  });
  return deepFreeze(config);
}

/**
 * Loads and validates the configuration at `path`. Relative paths inside it resolve
 * against its folder, `~/` against $HOME. Throws a ConfigError listing every problem.
 */
export async function loadConfig(path: string): Promise<Config> {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new ConfigError([
      makeDiagnostic(path, '', undefined, `cannot read the configuration: ${readError(err)}`),
    ]);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    throw new ConfigError([
      makeDiagnostic(path, '', undefined, 'the configuration is not valid UTF-8'),
    ]);
  }

  let doc: Record<string, unknown>;
  try {
    doc = parse(text, { unsafeKeyBehaviour: 'throw' });
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    const span = { line: err.line, column: err.column, length: 1 };
    throw new ConfigError([makeDiagnostic(path, text, span, `TOML syntax error: ${reason}`)]);
  }

  const spans = locateKeys(text);
  const diagnostics: Diagnostic[] = [];
  const upstream = applyUpstreamSpellings(isTable(doc) ? doc : {});
  const report = (key: KeyPath, message: string, severity: 'error' | 'warning' = 'error') => {
    const at = writtenPath(key, upstream.renames);
    const full = at.length ? `${formatKeyPath(at)}: ${message}` : message;
    diagnostics.push(makeDiagnostic(path, text, findSpan(spans, at), full, severity));
  };
  for (const issue of upstream.issues) report(issue.path, issue.message, issue.severity);

  const parsed = configSchema.safeParse(doc);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      for (const e of explainIssue(issue, doc)) report(e.path, e.message);
    }
  }
  for (const issue of crossFieldIssues(isTable(doc) ? doc : {})) {
    report(issue.path, issue.message, issue.severity);
  }
  if (!parsed.success || diagnostics.some((d) => d.severity === 'error')) {
    throw new ConfigError(sortDiagnostics(diagnostics));
  }

  const dir = dirname(file);
  const resolveAt = (at: KeyPath, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const r = resolvePath(value, dir);
    if (typeof r === 'string') return r;
    report(at, r.error);
    return undefined;
  };
  const warnings = [...diagnostics];
  const config = buildConfig(file, parsed.data, resolveAt, warnings);
  if (diagnostics.some((d) => d.severity === 'error'))
    throw new ConfigError(sortDiagnostics(diagnostics));
  sources.set(config, { name: path, text, spans, renames: upstream.renames });
  return config;
}
