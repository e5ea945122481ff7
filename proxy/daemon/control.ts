// The daemon's side of the control socket (rpc/control-api.ts): reload, status,
// backends, explain, recent denials — each a few lines over the state snapshot.

import { formatHostPort, parseHostPort } from '../../common/host-port.js';
import {
  type BackendInfo,
  BackendNotFound,
  type BackendSpec,
  type ControlBackend,
  type DenialRecord,
  ImmutableBackend,
  InvalidBackend,
  type ListenerInfo,
  type StatusInfo,
} from '../../rpc/control-api.js';
import { packageInfo } from '../../rpc/version.js';
import { tokenState } from '../connect/pkcs11-login.js';
import type { ReloadResult, State } from '../state/state.js';
import { explainRequest } from './explain.js';

/** How many denials `portailctl why` can look back on. */
export const DENIALS_KEPT = 1000;

export interface ControlDeps {
  state: State;
  startedAt: Date;
  listeners: () => ListenerInfo[];
  activeConnections: () => number;
  reload: () => Promise<ReloadResult>;
  /** A uid's user name, for the explain ACL's `client.user` (the socket table's). */
  userName?: (uid: number) => Promise<string | undefined>;
}

export interface DaemonControl extends ControlBackend {
  /** Feed from the pipeline's onDenial. */
  recordDenial(d: DenialRecord): void;
}

export function createControlBackend(deps: ControlDeps): DaemonControl {
  const { state } = deps;
  const denials: DenialRecord[] = [];
  /** Addresses of dynamic backends set at run time (kept across reloads while the backend exists). */
  const dynamic = new Map<string, BackendSpec>();

  const aclInfo = (
    acl: { file: string; hash: string } | null,
    file: string | undefined,
    at: Date,
  ) => ({
    file: acl?.file ?? file ?? null,
    hash: acl?.hash ?? null,
    loadedAt: acl ? at : null,
    loaded: acl !== null,
  });

  return {
    recordDenial(d) {
      // A record says what the client was told, nothing more (proxy/explain/redact.ts):
      // its reason is the answer's first line, and with an explain ACL the deciding
      // policy is named only there, when the explain ACL let it be.
      const withExplainAcl = state.current().config.explainAclRulesPath !== undefined;
      denials.push({
        ...d,
        reason: d.explanation.split('\n', 1)[0],
        policy: withExplainAcl ? null : d.policy,
      });
      if (denials.length > DENIALS_KEPT) denials.splice(0, denials.length - DENIALS_KEPT);
    },

    async reload() {
      let r: ReloadResult;
      try {
        r = await deps.reload();
      } catch (err) {
        // Not an InternalError without a word: a failed reload, with what failed.
        r = state.reloadFailed('rpc', err);
      }
      return r;
    },

    status(): StatusInfo {
      const snap = state.current();
      return {
        version: packageInfo().version,
        pid: process.pid,
        startedAt: deps.startedAt,
        configFile: snap.config.file,
        listeners: deps.listeners(),
        acl: aclInfo(snap.acl, snap.config.filterAclRulesPath, snap.loadedAt),
        explainAcl:
          snap.config.explainAclRulesPath === undefined
            ? null
            : aclInfo(snap.explainAcl, snap.config.explainAclRulesPath, snap.loadedAt),
        activeConnections: deps.activeConnections(),
        defaultBackend: state.defaultBackend,
        lastReload: state.lastReload,
        backends: state.backends.health(),
        pkcs11: tokenState(snap.config.escaper) ?? null,
      };
    },

    listBackends(): BackendInfo[] {
      const snap = state.current();
      return [...snap.backends.values()].map((b) => {
        const info: BackendInfo = {
          id: b.name,
          current: b.name === state.defaultBackend,
          dynamic: b.dynamic,
          health: state.backends.healthOf(b.name),
        };
        const runtime = dynamic.get(b.name);
        if (runtime) info.spec = runtime;
        else if (b.targetAddress) {
          info.spec = {
            targetAddress: formatHostPort(b.targetAddress),
            identityAware: b.identityAware,
          };
          if (b.tlsServerName !== undefined) info.spec.tlsServerName = b.tlsServerName;
        }
        return info;
      });
    },

    setDefaultBackend(id) {
      state.setDefaultBackend(id);
    },

    updateDynamicBackend(id, spec) {
      const snap = state.current();
      const b = snap.backends.get(id);
      if (!b) throw new BackendNotFound(id, [...snap.backends.keys()]);
      if (!b.dynamic) throw new ImmutableBackend(id);
      const hp = parseHostPort(spec.targetAddress);
      if ('error' in hp) throw new InvalidBackend(hp.error);
      dynamic.set(id, { ...spec, targetAddress: formatHostPort(hp) });
      // What connections through this backend use from now on.
      state.backends.setDynamic(id, {
        targetAddress: hp,
        identityAware: spec.identityAware,
        ...(spec.tlsServerName !== undefined ? { tlsServerName: spec.tlsServerName } : {}),
      });
    },

    explain(req) {
      return explainRequest(state.current(), state.defaultBackend, req, {
        userName: deps.userName,
      });
    },

    recentDenials(uid, last): DenialRecord[] {
      const mine = uid === null ? denials : denials.filter((d) => d.uid === uid);
      return mine.slice(-last).map((d) => ({ ...d }));
    },
  };
}
