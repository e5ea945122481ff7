// Who may call what on the control socket (docs/reference/control.md, "Authorization"),
// from the caller's peer credentials: root may do everything; members of [rpc]
// trusted-groups may reload and set/unset the default backend; members of [rpc]
// admin-groups may do that too and update dynamic backends; anyone may read. Membership is
// by primary or supplementary group, as the kernel sees the calling process
// (/proc/PID/status), or — when that process cannot be inspected — as the account databases
// list the user.

import { type Accounts, createAccounts, type GroupEntry } from './unix-accounts.js';
import type { VarlinkCall } from './varlink-codec.js';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export type AccessLevel = 'read' | 'trusted' | 'admin';

/** Methods that change something; every other known method only reads. */
const PRIVILEGED: Record<string, AccessLevel> = {
  'fr.gouv.portail.Control.SetDefaultBackend': 'trusted',
  'fr.gouv.portail.Control.UpdateDynamicBackend': 'admin',
  'io.portail.Control.Reload': 'trusted',
};

const READ_ONLY = new Set([
  'org.varlink.service.GetInfo',
  'org.varlink.service.GetInterfaceDescription',
  'fr.gouv.portail.Control.GetCurrentBackend',
  'fr.gouv.portail.Control.ListBackends',
  'io.portail.Control.Status',
  'io.portail.Control.Explain',
  'io.portail.Control.RecentDenials',
]);

/** The level a method needs. Unknown methods need the highest (fail closed). */
export function requiredAccess(method: string): AccessLevel {
  if (READ_ONLY.has(method)) return 'read';
  return PRIVILEGED[method] ?? 'admin';
}

export interface RpcGroups {
  trustedGroups: readonly string[];
  adminGroups: readonly string[];
}

/** Decides whether `creds` may make `call`. `creds` is null when the peer is unknown. */
export type Authorize = (creds: PeerCred | null, call: VarlinkCall) => Promise<boolean> | boolean;

/** The groups the caller belongs to, and where that came from. */
export interface CallerGroups {
  gids: Set<number>;
  /** `proc`: the process's own credentials; `accounts`: the user's entries in the databases. */
  source: 'proc' | 'accounts';
  user?: string;
}

export async function callerGroups(creds: PeerCred, accounts: Accounts): Promise<CallerGroups> {
  const proc = await accounts.processCredentials(creds.pid);
  // SO_PEERCRED gives the effective ids at connect(); if the pid now shows other ids,
  // the process is gone (pid reused): do not trust its group list.
  if (proc && proc.uids[1] === creds.uid && proc.gids[1] === creds.gid) {
    return { gids: new Set([creds.gid, ...proc.groups]), source: 'proc' };
  }
  const gids = new Set([creds.gid]);
  const user = await accounts.userById(creds.uid);
  if (user) {
    gids.add(user.gid);
    for (const g of await accounts.groupsListing(user.name)) gids.add(g.gid);
  }
  return { gids, source: 'accounts', user: user?.name };
}

async function resolveGroup(name: string, accounts: Accounts): Promise<GroupEntry | undefined> {
  // A numeric entry is a gid (as upstream shows unresolvable groups), unless a group is
  // literally named so.
  const byName = await accounts.groupByName(name);
  if (byName) return byName;
  return /^\d{1,10}$/.test(name) ? { name, gid: Number(name), members: [] } : undefined;
}

/** Is the caller in one of `names`? */
export async function isMember(
  creds: PeerCred,
  names: readonly string[],
  accounts: Accounts,
): Promise<boolean> {
  if (names.length === 0) return false;
  const caller = await callerGroups(creds, accounts);
  for (const name of names) {
    const group = await resolveGroup(name, accounts);
    if (!group) continue;
    if (caller.gids.has(group.gid)) return true;
    // NSS groups (getent) list members that /etc/group does not.
    if (caller.source === 'accounts' && caller.user && group.members.includes(caller.user)) {
      return true;
    }
  }
  return false;
}

export interface AuthorizerOptions {
  accounts?: Accounts;
}

/**
 * The authorization of docs/reference/control.md, "Authorization". `groups` may be a
 * function so that a reload of the configuration takes effect for the next call.
 */
export function createAuthorizer(
  groups: RpcGroups | (() => RpcGroups),
  opts: AuthorizerOptions = {},
): Authorize {
  const accounts = opts.accounts ?? createAccounts();
  const current = typeof groups === 'function' ? groups : () => groups;
  return async (creds, call) => {
    const level = requiredAccess(call.method);
    if (level === 'read') return true;
    if (!creds) return false;
    if (creds.uid === 0) return true;
    const g = current();
    const names = level === 'admin' ? g.adminGroups : [...g.trustedGroups, ...g.adminGroups];
    return isMember(creds, names, accounts);
  };
}
