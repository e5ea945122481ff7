// Finding the real programs the tests use, and skipping (with the package to install)
// when one is missing. Under CI=true scripts/test.mjs turns any skip into a failure, so
// a missing package can never pass silently.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import process from 'node:process';

/** Debian package providing each tool the tests use (for the skip message). */
export const PACKAGE_OF: Readonly<Record<string, string>> = {
  curl: 'curl',
  openssl: 'openssl',
  socat: 'socat',
  nginx: 'nginx',
  microsocks: 'microsocks',
  danted: 'dante-server',
  tinyproxy: 'tinyproxy',
  squid: 'squid',
  sshd: 'openssh-server',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  haproxy: 'haproxy',
  dnsmasq: 'dnsmasq',
  'softhsm2-util': 'softhsm2',
  'pkcs11-tool': 'opensc',
  swtpm: 'swtpm',
  tpm2_startup: 'tpm2-tools',
  chromium: 'chromium',
  chromedriver: 'chromium-driver',
  ip: 'iproute2',
  ss: 'iproute2',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  systemctl: 'systemd',
  git: 'git',
};

// Daemons live in sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable named `tool` on PATH (or in sbin), else undefined. */
export function which(tool: string): string | undefined {
  if (tool.includes('/')) return isExecutable(tool) ? tool : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, tool);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** What `requireTool` needs of a test context: node:test's TestContext fits. */
export interface Skippable {
  skip(message?: string): void;
}

/**
 * The path of `tool`, or undefined after skipping the test with
 * "needs TOOL (apt-get install PKG)". Use: `const nginx = requireTool(t, 'nginx'); if (!nginx) return;`
 */
export function requireTool(t: Skippable, tool: string, pkg?: string): string | undefined {
  const found = which(tool);
  if (!found) t.skip(`needs ${tool} (apt-get install ${pkg ?? PACKAGE_OF[tool] ?? tool})`);
  return found;
}

/** Same for a file a package installs (a PKCS#11 module, an OpenSSL engine). */
export function requireFile(t: Skippable, path: string, pkg: string): string | undefined {
  try {
    accessSync(path, constants.R_OK);
    return path;
  } catch {
    t.skip(`needs ${path} (apt-get install ${pkg})`);
    return undefined;
  }
}
