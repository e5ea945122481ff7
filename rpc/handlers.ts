// One function per method: wire parameters (snake_case, already validated against the
// interface definition) in, wire reply parameters out. The ControlBackend's errors
// become the interface's errors here.
import type { PeerCred } from './authorize.js';
import {
  type AclInfo,
  BackendNotFound,
  type BackendSpec,
  type ControlBackend,
  type ExplainResult,
  healthWire,
  ImmutableBackend,
  InvalidBackend,
  InvalidRequest,
} from './control-api.js';
import type { IdlInterface } from './idl.js';
import { INTERFACE_NAMES, PORTAIL_INTERFACE, UPSTREAM_INTERFACE } from './interfaces.js';
import { SERVICE_ERRORS, VarlinkError } from './varlink-codec.js';

export interface ServiceInfo {
  vendor: string;
  product: string;
  version: string;
  url: string;
}

export interface HandlerContext {
  backend: ControlBackend;
  creds: PeerCred | null;
  info: ServiceInfo;
  interfaces: Map<string, IdlInterface>;
  /** Reports a refusal decided inside a method (e.g. someone else's denials) and throws. */
  refuse(errorName: string): never;
}

type Params = Record<string, unknown>;
type Handler = (ctx: HandlerContext, p: Params) => Params | Promise<Params>;

export const DEFAULT_DENIALS = 20;
export const MAX_DENIALS = 1000;
const NONE = '<none>';

const upstreamError = (name: string, parameters: Params = {}) =>
  new VarlinkError(`${UPSTREAM_INTERFACE}.${name}`, parameters);
const portailError = (name: string, parameters: Params = {}) =>
  new VarlinkError(`${PORTAIL_INTERFACE}.${name}`, parameters);

/** Maps what a ControlBackend throws to the interface's error (by class or by name). */
export function backendError(err: unknown): VarlinkError {
  if (err instanceof VarlinkError) return err;
  const e = err as { name?: string } & Partial<BackendNotFound & InvalidBackend & InvalidRequest>;
  if (err instanceof BackendNotFound || e?.name === 'BackendNotFound') {
    return upstreamError('BackendNotFound', {
      provided_backend: String(e.provided ?? ''),
      available_backends: Array.isArray(e.available) ? e.available.map(String) : [],
    });
  }
  if (err instanceof InvalidBackend || e?.name === 'InvalidBackend') {
    return upstreamError('InvalidBackend', { reason: String(e.reason ?? (err as Error).message) });
  }
  if (err instanceof ImmutableBackend || e?.name === 'ImmutableBackend') {
    return upstreamError('ImmutableBackend');
  }
  if (err instanceof InvalidRequest || e?.name === 'InvalidRequest') {
    return portailError('InvalidRequest', { reason: String(e.reason ?? (err as Error).message) });
  }
  return portailError('InternalError', {
    message: err instanceof Error ? err.message : String(err),
  });
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

function aclWire(a: AclInfo): Params {
  return { file: a.file, hash: a.hash, loaded_at: iso(a.loadedAt), loaded: a.loaded };
}

function specWire(s: BackendSpec): Params {
  return {
    target_address: s.targetAddress,
    identity_aware: s.identityAware,
    tls_server_name: s.tlsServerName ?? null,
  };
}

function explainWire(r: ExplainResult): Params {
  return {
    action: r.action,
    policy: r.policy,
    reason: r.reason,
    redirect: r.redirect ?? null,
    routes: r.routes,
    backends: r.backends,
    local: r.local,
    tags: r.tags,
    failed: r.failed.map((f) => ({
      policy: f.policy,
      action: f.action,
      clause: f.clause,
      expression: f.expression,
      result: f.result,
      comparisons: f.comparisons.map((c) => ({
        text: c.text,
        attribute: c.attribute,
        seen: c.seen,
        result: c.result,
      })),
    })),
    missing: r.missing,
    explanation: r.explanation,
    redacted: r.redacted,
  };
}

const optString = (v: unknown) => (typeof v === 'string' ? v : undefined);
const optInt = (v: unknown) => (typeof v === 'number' ? v : undefined);

export const HANDLERS: Record<string, Handler> = {
  'org.varlink.service.GetInfo': (ctx) => ({ ...ctx.info, interfaces: [...INTERFACE_NAMES] }),

  'org.varlink.service.GetInterfaceDescription': (ctx, p) => {
    const name = String(p.interface);
    const iface = ctx.interfaces.get(name);
    if (!iface) throw new VarlinkError(SERVICE_ERRORS.InterfaceNotFound, { interface: name });
    return { description: iface.description };
  },

  'fr.gouv.portail.Control.SetDefaultBackend': (ctx, p) => {
    ctx.backend.setDefaultBackend(optString(p.backend_id) ?? null);
    return {};
  },

  'fr.gouv.portail.Control.GetCurrentBackend': (ctx) => {
    const current = ctx.backend.listBackends().find((b) => b.current);
    return { backend_id: current?.id ?? NONE };
  },

  'fr.gouv.portail.Control.ListBackends': (ctx) => ({
    backends: ctx.backend.listBackends().map((b) => ({
      id: b.id,
      current: b.current,
      dynamic: b.dynamic,
      spec: b.spec ? specWire(b.spec) : null,
    })),
  }),

  'fr.gouv.portail.Control.UpdateDynamicBackend': (ctx, p) => {
    const s = p.backend_spec as Params;
    const spec: BackendSpec = {
      targetAddress: String(s.target_address),
      identityAware: s.identity_aware === true,
      ...(typeof s.tls_server_name === 'string' ? { tlsServerName: s.tls_server_name } : {}),
    };
    ctx.backend.updateDynamicBackend(String(p.backend_id), spec);
    return {};
  },

  'io.portail.Control.Reload': async (ctx) => {
    const r = await ctx.backend.reload();
    if (!r.ok) throw portailError('ReloadFailed', { diagnostics: r.diagnostics });
    return { acl_hash: r.aclHash ?? null, diagnostics: r.diagnostics };
  },

  'io.portail.Control.Status': (ctx) => {
    const s = ctx.backend.status();
    return {
      version: s.version,
      pid: s.pid,
      started_at: s.startedAt.toISOString(),
      uptime_seconds: Math.max(0, Math.floor((Date.now() - s.startedAt.getTime()) / 1000)),
      config_file: s.configFile,
      listeners: s.listeners.map((l) => ({ name: l.name, address: l.address, source: l.source })),
      acl: aclWire(s.acl),
      explain_acl: s.explainAcl ? aclWire(s.explainAcl) : null,
      active_connections: s.activeConnections,
      default_backend: s.defaultBackend,
      last_reload: s.lastReload
        ? {
            ok: s.lastReload.ok,
            at: s.lastReload.at.toISOString(),
            diagnostics: s.lastReload.diagnostics,
          }
        : null,
      backends: (s.backends ?? []).map(healthWire),
      pkcs11: s.pkcs11
        ? {
            uri: s.pkcs11.uri,
            state: s.pkcs11.state,
            reason: s.pkcs11.reason ?? null,
            since: s.pkcs11.since?.toISOString() ?? null,
          }
        : null,
    };
  },

  'io.portail.Control.Explain': async (ctx, p) => {
    const host = String(p.host).trim();
    if (host.length === 0 || host.length > 255) {
      throw new VarlinkError(SERVICE_ERRORS.InvalidParameter, { parameter: 'host' });
    }
    const port = optInt(p.port) ?? 443;
    if (port < 1 || port > 65535) {
      throw new VarlinkError(SERVICE_ERRORS.InvalidParameter, { parameter: 'port' });
    }
    const user = optString(p.user);
    let uid = optInt(p.uid);
    if (uid !== undefined && uid < 0) {
      throw new VarlinkError(SERVICE_ERRORS.InvalidParameter, { parameter: 'uid' });
    }
    // Neither a user nor a uid: the question is "would *my* request pass?".
    if (user === undefined && uid === undefined && ctx.creds) uid = ctx.creds.uid;
    const result = await ctx.backend.explain({
      host,
      port,
      ...(user !== undefined ? { user } : {}),
      ...(uid !== undefined ? { uid } : {}),
      attrs: { ...((p.attrs as Record<string, string> | null) ?? {}) },
      caller: ctx.creds,
    });
    return explainWire(result);
  },

  'io.portail.Control.RecentDenials': (ctx, p) => {
    const last = optInt(p.last) ?? DEFAULT_DENIALS;
    if (last < 1 || last > MAX_DENIALS) {
      throw new VarlinkError(SERVICE_ERRORS.InvalidParameter, { parameter: 'last' });
    }
    const asked = optInt(p.uid);
    let uid: number | null;
    if (ctx.creds?.uid === 0) {
      uid = asked ?? null;
    } else if (ctx.creds && (asked === undefined || asked === ctx.creds.uid)) {
      uid = ctx.creds.uid;
    } else {
      // Unknown caller, or someone else's denials.
      return ctx.refuse(`${PORTAIL_INTERFACE}.PermissionDenied`);
    }
    return {
      denials: ctx.backend
        .recentDenials(uid, last)
        .slice(-last)
        .map((d) => ({
          time: d.time.toISOString(),
          uid: d.uid,
          user: d.user ?? null,
          process: d.process ?? null,
          host: d.host,
          port: d.port,
          protocol: d.protocol ?? null,
          policy: d.policy,
          reason: d.reason,
          explanation: d.explanation,
          trace_id: d.traceId ?? null,
        })),
    };
  },
};
