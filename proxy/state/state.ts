// The run-time state: the current snapshot, swapped atomically by reload(), plus the
// default backend the control plane may set. A connection takes `current()` once and
// keeps that snapshot for its whole life; reload() builds the next one completely,
// swaps, then lets listeners (the pipeline's re-evaluation of open relays) run before
// it resolves, so "reloaded" means the new rules are in force everywhere.

import {
  BackendNotFound,
  type ReloadResult as ControlReloadResult,
} from '../../rpc/control-api.js';
import type { AuditWriter, Log } from '../audit/logging.js';
import { auditRecord } from '../audit/record.js';
import { keysNeedingRestart } from '../config/restart-keys.js';
import { type BackendRegistry, createBackendRegistry } from '../connect/backends.js';
import { loadAclOffThread } from './acl-load.js';
import { formatAllDiagnostics as formatDiagnostics } from './diagnostics.js';
import { engineRestartDiagnostic } from './engine-restart.js';
import { type AclLoader, buildSnapshot, type Snapshot } from './snapshot.js';
import { type AclWatcher, createAclWatcher } from './watch.js';

export type ReloadTrigger = 'signal' | 'watch' | 'rpc' | 'start';

/** The control plane's ReloadResult, with when and why the reload ran. */
export interface ReloadResult extends ControlReloadResult {
  at: Date;
  trigger: ReloadTrigger;
}

/** The configuration is unusable at start: fatal (docs/reference/commands.md, "portail daemon"). */
export class StartupError extends Error {
  constructor(readonly text: string) {
    super(text);
    this.name = 'StartupError';
  }
}

export type SwapListener = (next: Snapshot, prev: Snapshot) => void | Promise<void>;

export interface State {
  current(): Snapshot;
  /** The default backend in force (configuration, or set at run time); null = none. */
  readonly defaultBackend: string | null;
  /** Connectors, dynamic backends' addresses and health (back-off), across reloads. */
  readonly backends: BackendRegistry;
  /** Null unsets. Throws BackendNotFound for a name not configured. */
  setDefaultBackend(id: string | null): void;
  /**
   * Serialized: a reload asked for during another one runs after it (files may have
   * changed since); requests made while one waits share it. Never rejects.
   */
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  /** Records a reload that failed around reload() (the caller caught `err`). */
  reloadFailed(trigger: ReloadTrigger, err: unknown): ReloadResult;
  readonly lastReload: ReloadResult | null;
  onSwap(listener: SwapListener): void;
  /** After every reload, whatever its result (metrics). */
  onReload(listener: (result: ReloadResult) => void): void;
  /** Starts watch-acl if the configuration asks for it (default true). */
  startWatching(): void;
  close(): void;
}

export interface StateOptions {
  configPath: string;
  log: Log;
  audit: AuditWriter;
  /** Quiet period before a watch-triggered reload (default 500 ms). */
  watchDebounceMs?: number;
  /** How long a reload's ACL worker may take (default ACL_LOAD_TIMEOUT_MS). */
  aclLoadTimeoutMs?: number;
}

export async function createState(opts: StateOptions): Promise<State> {
  const { log, audit } = opts;
  const first = await buildSnapshot(opts.configPath, 1, { lenientAcl: true });
  if (!first.ok) throw new StartupError(first.text);
  let snap = first.snapshot;
  let defaultBackend: string | null = snap.config.defaultBackend ?? null;
  const backends = createBackendRegistry();
  backends.update(snap);
  let lastReload: ReloadResult | null = null;
  const listeners: SwapListener[] = [];
  let watcher: AclWatcher | null = null;
  let watchedExtra: readonly string[] = [];
  let closed = false;

  for (const d of first.warnings) log.warn(formatDiagnostics([d]));
  reportStartAcl(snap, log, audit);

  function syncWatcher() {
    if (closed) return;
    if (!snap.config.watchAcl) {
      watcher?.close();
      watcher = null;
      return;
    }
    watcher ??= createAclWatcher(
      () => {
        void api.reload('watch');
      },
      {
        debounceMs: opts.watchDebounceMs,
        onError: (dir, err) => log.debug(`watch-acl: cannot watch ${dir}: ${err.message}`),
      },
    );
    const files = new Set<string>([...snap.files, ...watchedExtra]);
    // Before any ACL could be read, watch the configured paths so that fixing them reloads.
    for (const p of [snap.config.filterAclRulesPath, snap.config.explainAclRulesPath]) {
      if (p !== undefined) files.add(p);
    }
    watcher.setFiles(files);
  }

  /** A reload that changed nothing: logged, audited, and what status shows. */
  function failed(trigger: ReloadTrigger, text: string, files: readonly string[] = []) {
    lastReload = { ok: false, diagnostics: text, at: new Date(), trigger };
    watchedExtra = files;
    log.error(`reload failed, the previous rules stay in force:\n${text}`);
    audit.write(
      auditRecord('reload', {
        reason: `reload failed, previous rules kept: ${firstLine(text)}`,
        result: 'failed',
        trigger,
        acl_hash: snap.aclHash,
        diagnostics: text,
      }),
    );
    syncWatcher();
    return lastReload;
  }

  // Reloads parse, check and compile the ACLs off the event loop (acl-load.ts).
  const loadAcl: AclLoader = (path, o) =>
    loadAclOffThread(path, { ...o, timeoutMs: opts.aclLoadTimeoutMs });

  async function doReload(trigger: ReloadTrigger): Promise<ReloadResult> {
    const res = await buildSnapshot(opts.configPath, snap.generation + 1, {
      lenientAcl: false,
      loadAcl,
    });
    const at = new Date();
    if (!res.ok) return failed(trigger, res.text, res.files);
    const engine = engineRestartDiagnostic(res.snapshot.config);
    if (engine) return failed(trigger, formatDiagnostics([engine]));
    const restart = keysNeedingRestart(snap.config, res.snapshot.config);
    if (restart.length > 0)
      return failed(
        trigger,
        `${opts.configPath}: a reload cannot apply ${restart.join(', ')}; restart portail to change ${restart.length > 1 ? 'them' : 'it'} (nothing was changed)`,
      );
    const prev = snap;
    const next = res.snapshot;
    // A default backend set at run time survives a reload, unless the configuration's
    // own default changed (the operator's newer word) or the backend is gone.
    const prevDefault = prev.config.defaultBackend ?? null;
    const nextDefault = next.config.defaultBackend ?? null;
    if (prevDefault !== nextDefault) defaultBackend = nextDefault;
    else if (defaultBackend !== null && !next.backends.has(defaultBackend))
      defaultBackend = nextDefault;
    snap = next;
    backends.update(next);
    watchedExtra = [];
    const warnings = res.warnings.length ? formatDiagnostics(res.warnings) : '';
    for (const l of listeners) {
      try {
        await l(next, prev);
      } catch (err) {
        log.error(`after reload: ${(err as Error).message}`);
      }
    }
    lastReload = { ok: true, diagnostics: warnings, at, trigger };
    if (next.aclHash) lastReload.aclHash = next.aclHash;
    const what = next.acl
      ? `${next.acl.file} (sha256 ${next.aclHash?.slice(0, 12)})`
      : 'no filter-acl-rules-path: every request is denied';
    log.info(`reloaded: ${what}`);
    if (warnings) log.warn(warnings);
    audit.write(
      auditRecord('reload', {
        reason: `reloaded ${what}`,
        result: 'ok',
        trigger,
        acl_hash: next.aclHash,
        diagnostics: warnings || null,
      }),
    );
    syncWatcher();
    return lastReload;
  }

  const reloadListeners: Array<(result: ReloadResult) => void> = [];
  let running: Promise<ReloadResult> | null = null;
  let queued: Promise<ReloadResult> | null = null;
  function run(trigger: ReloadTrigger): Promise<ReloadResult> {
    // Whatever goes wrong is a failed reload, never a rejection: SIGHUP and watch-acl
    // have no one to report to but the log and status (docs/security.md).
    const p = doReload(trigger)
      .catch((err: unknown) => failed(trigger, unexpected(err)))
      .catch((err: unknown) => {
        // Even the failure's own log or audit record failed: still an answer.
        return { ok: false, diagnostics: unexpected(err), at: new Date(), trigger };
      });
    running = p;
    p.then((r) => {
      for (const l of reloadListeners) {
        try {
          l(r);
        } catch (err) {
          log.error(`after reload: ${(err as Error).message}`);
        }
      }
    });
    const clear = () => {
      if (running === p) running = null;
    };
    p.then(clear, clear);
    return p;
  }

  const api: State = {
    current: () => snap,
    get defaultBackend() {
      return defaultBackend;
    },
    backends,
    setDefaultBackend(id) {
      if (id !== null && !snap.backends.has(id)) {
        throw new BackendNotFound(id, [...snap.backends.keys()]);
      }
      defaultBackend = id;
    },
    reload(trigger) {
      // One reload runs at a time and at most one waits: a request made while one waits
      // joins it (it has not read the files yet, so it serves both). A storm of SIGHUPs
      // costs two reloads, not a backlog (docs/security.md "ACL files and reloads").
      if (queued) return queued;
      if (!running) return run(trigger);
      const q = running.then(() => {
        queued = null;
        return run(trigger);
      });
      queued = q;
      return q;
    },
    reloadFailed(trigger, err) {
      return failed(trigger, unexpected(err));
    },
    get lastReload() {
      return lastReload;
    },
    onSwap(l) {
      listeners.push(l);
    },
    onReload(l) {
      reloadListeners.push(l);
    },
    startWatching() {
      syncWatcher();
    },
    close() {
      closed = true;
      backends.close();
      watcher?.close();
      watcher = null;
    },
  };
  return api;
}

function unexpected(err: unknown): string {
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `internal error during the reload: ${what}`;
}

function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl < 0 ? text : text.slice(0, nl);
}

/** No valid ACL at start: serve, deny everything, and say so loudly (docs/reference/commands.md, "portail daemon"; docs/acl.md, "Evaluation"). */
function reportStartAcl(snap: Snapshot, log: Log, audit: AuditWriter) {
  const errors = snap.diagnostics.filter((d) => d.severity === 'error');
  const text = errors.length ? formatDiagnostics(errors) : '';
  if (snap.acl === null) {
    const why =
      snap.config.filterAclRulesPath === undefined
        ? 'no filter-acl-rules-path is configured'
        : `the ACL ${snap.config.filterAclRulesPath} cannot be loaded`;
    log.error(`${why}: EVERY REQUEST IS DENIED until a reload succeeds${text ? `\n${text}` : ''}`);
    audit.write(
      auditRecord('error', {
        reason: `${why}: every request is denied until a reload succeeds`,
        diagnostics: text || null,
      }),
    );
  } else if (snap.config.explainAclRulesPath !== undefined && snap.explainAcl === null) {
    log.error(
      `the explain ACL ${snap.config.explainAclRulesPath} cannot be loaded: denials get the generic message until a reload succeeds${text ? `\n${text}` : ''}`,
    );
    audit.write(
      auditRecord('error', {
        reason: 'explain ACL cannot be loaded: denials get the generic message',
        diagnostics: text || null,
      }),
    );
  }
}
