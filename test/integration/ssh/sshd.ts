// A real OpenSSH sshd on loopback as the bastion: host keys (ed25519, ECDSA, RSA) and a
// user key made with ssh-keygen in a temp folder, tcp forwarding allowed, nothing else.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BackendConfig } from '../../../proxy/config/types.js';
import {
  freePort,
  type Owner,
  type Started,
  startProcess,
  tmpDir,
  which,
} from '../../harness/index.js';

const run = promisify(execFile);

export const HOST_KEY_TYPES = ['ed25519', 'ecdsa', 'rsa'] as const;
export type HostKeyType = (typeof HOST_KEY_TYPES)[number];

export interface Sshd {
  dir: string;
  port: number;
  user: string;
  /** The client's private key (authorized on the server). */
  userKey: string;
  /** `host_<type>.pub` contents ("type base64 comment"). */
  hostPub: Record<HostKeyType, string>;
  process: Started;
  /** "Accepted publickey" lines so far = SSH connections authenticated. */
  logins(): number;
  /** Writes a known_hosts file with these lines and returns its path. */
  knownHosts(name: string, lines: string[]): string;
  /** A backend config for this sshd. */
  backend(knownHosts: string, extra?: Partial<BackendConfig>): BackendConfig;
  stop(): Promise<void>;
}

export async function keygen(path: string, type: string): Promise<void> {
  const bits = type === 'rsa' ? ['-b', '2048'] : [];
  await run('ssh-keygen', ['-q', '-t', type, ...bits, '-N', '', '-C', '', '-f', path]);
}

/** Starts sshd; `reuse` restarts one on the same port and keys (after a stop). */
export async function startSshd(t: Owner | undefined, reuse?: Sshd): Promise<Sshd> {
  const bin = which('sshd');
  if (!bin) throw new Error('needs sshd (apt-get install openssh-server)');
  const dir = reuse?.dir ?? tmpDir(t, 'portail-sshd-');
  const port = reuse?.port ?? (await freePort());
  const user = userInfo().username;
  const userKey = join(dir, 'id_ed25519');
  if (!reuse) {
    await Promise.all([
      ...HOST_KEY_TYPES.map((k) => keygen(join(dir, `host_${k}`), k)),
      keygen(userKey, 'ed25519'),
    ]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${userKey}.pub`));
  }
  const hostPub = Object.fromEntries(
    HOST_KEY_TYPES.map((k) => [k, readFileSync(join(dir, `host_${k}.pub`), 'utf8').trim()]),
  ) as Record<HostKeyType, string>;
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...HOST_KEY_TYPES.map((k) => `HostKey ${join(dir, `host_${k}`)}`),
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PidFile none',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding yes',
      'PermitOpen any',
      'LogLevel INFO',
      '',
    ].join('\n'),
  );
  // sshd refuses to start as root without its privilege-separation folder.
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const p = await startProcess(bin, ['-f', config, '-D', '-e'], {
    t,
    readyWhen: { port, host: '127.0.0.1' },
    name: 'sshd',
    killGraceMs: 500,
  });
  return {
    dir,
    port,
    user,
    userKey,
    hostPub,
    process: p,
    logins: () => (p.output().match(/Accepted publickey for /g) ?? []).length,
    knownHosts(name, lines) {
      const path = join(dir, name);
      writeFileSync(path, `${lines.join('\n')}\n`);
      return path;
    },
    backend: (knownHosts, extra = {}) => ({
      name: 'bastion',
      type: 'ssh',
      targetAddress: { host: '127.0.0.1', port },
      dynamic: false,
      identityAware: false,
      user,
      identityFile: userKey,
      agent: false,
      knownHosts,
      ...extra,
    }),
    stop: p.stop,
  };
}

/** A known_hosts line for this sshd's `[127.0.0.1]:port` with the given host key. */
export function line(sshd: Sshd, type: HostKeyType, name = `[127.0.0.1]:${sshd.port}`): string {
  const [kt, b64] = sshd.hostPub[type].split(' ');
  return `${name} ${kt} ${b64}`;
}
