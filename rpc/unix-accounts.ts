// Unix users and groups as the authorization needs them: the groups a process holds
// (from the kernel, /proc/PID/status), and group/user entries by name or id (the files
// in /etc first, then `getent` so that NSS sources such as LDAP or sssd count too).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface UserEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface ProcessCredentials {
  /** Real, effective, saved, filesystem. */
  uids: number[];
  gids: number[];
  /** Supplementary groups. */
  groups: number[];
}

/** Where account data comes from; tests point `root` at a fake tree. */
export interface AccountsOptions {
  /** Prefix for /proc and /etc (default "/"). */
  root?: string;
  /** Ask `getent` when /etc has no entry (default true when root is "/"). */
  useGetent?: boolean;
}

export interface Accounts {
  processCredentials(pid: number): Promise<ProcessCredentials | undefined>;
  groupByName(name: string): Promise<GroupEntry | undefined>;
  groupById(gid: number): Promise<GroupEntry | undefined>;
  userById(uid: number): Promise<UserEntry | undefined>;
  /** Every group that lists `user` as a member (from /etc/group only). */
  groupsListing(user: string): Promise<GroupEntry[]>;
}

const ID = /^\d{1,10}$/;

function parseIds(text: string | undefined): number[] {
  if (!text) return [];
  return text
    .trim()
    .split(/\s+/)
    .filter((s) => ID.test(s))
    .map(Number);
}

/** Parses the Uid:, Gid: and Groups: lines of /proc/PID/status. */
export function parseProcStatus(text: string): ProcessCredentials | undefined {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:(.*)$`, 'm').exec(text);
    return m ? m[1] : undefined;
  };
  const uids = parseIds(field('Uid'));
  const gids = parseIds(field('Gid'));
  if (uids.length < 2 || gids.length < 2) return undefined;
  return { uids, gids, groups: parseIds(field('Groups')) };
}

/** One line of /etc/group (or of `getent group`). */
export function parseGroupLine(line: string): GroupEntry | undefined {
  const parts = line.split(':');
  if (parts.length < 4 || !parts[0] || !ID.test(parts[2])) return undefined;
  return {
    name: parts[0],
    gid: Number(parts[2]),
    members: parts[3]
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

/** One line of /etc/passwd (or of `getent passwd`). */
export function parsePasswdLine(line: string): UserEntry | undefined {
  const parts = line.split(':');
  if (parts.length < 4 || !parts[0] || !ID.test(parts[2]) || !ID.test(parts[3])) return undefined;
  return { name: parts[0], uid: Number(parts[2]), gid: Number(parts[3]) };
}

function linesOf(text: string): string[] {
  return text.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('+'));
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

function getent(db: 'group' | 'passwd', key: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('getent', [db, key], { timeout: 3000, maxBuffer: 1024 * 1024 }, (err, stdout) => {
      resolve(err ? undefined : stdout.split('\n')[0]);
    });
  });
}

export function createAccounts(opts: AccountsOptions = {}): Accounts {
  const root = opts.root ?? '/';
  const useGetent = opts.useGetent ?? root === '/';

  const etcGroups = async (): Promise<GroupEntry[]> => {
    const text = await readText(join(root, 'etc/group'));
    return text ? linesOf(text).flatMap((l) => parseGroupLine(l) ?? []) : [];
  };
  const etcUsers = async (): Promise<UserEntry[]> => {
    const text = await readText(join(root, 'etc/passwd'));
    return text ? linesOf(text).flatMap((l) => parsePasswdLine(l) ?? []) : [];
  };
  const groupVia = async (key: string) => {
    if (!useGetent) return undefined;
    const line = await getent('group', key);
    return line ? parseGroupLine(line) : undefined;
  };

  return {
    async processCredentials(pid) {
      if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
      const text = await readText(join(root, 'proc', String(pid), 'status'));
      return text ? parseProcStatus(text) : undefined;
    },
    async groupByName(name) {
      return (await etcGroups()).find((g) => g.name === name) ?? (await groupVia(name));
    },
    async groupById(gid) {
      return (await etcGroups()).find((g) => g.gid === gid) ?? (await groupVia(String(gid)));
    },
    async userById(uid) {
      const found = (await etcUsers()).find((u) => u.uid === uid);
      if (found || !useGetent) return found;
      const line = await getent('passwd', String(uid));
      return line ? parsePasswdLine(line) : undefined;
    },
    async groupsListing(user) {
      return (await etcGroups()).filter((g) => g.members.includes(user));
    },
  };
}
