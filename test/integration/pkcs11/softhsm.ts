// SoftHSM2 tokens in a temp folder, filled with keys and certificates made by openssl
// and imported with pkcs11-tool (OpenSC), as a user would provision a security key.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsm {
  dir: string;
  /** The SOFTHSM2_CONF file: SoftHSM reads it once per process, at C_Initialize. */
  conf: string;
  env: NodeJS.ProcessEnv;
}

async function cmd(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<string> {
  try {
    const { stdout } = await run(file, args, { env, cwd });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${file} ${args[0]} failed: ${err.stderr || err.message}`);
  }
}

export function softHsm(dir: string): SoftHsm {
  const conf = join(dir, 'softhsm2.conf');
  const tokens = join(dir, 'tokens');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  return { dir, conf, env: { ...process.env, SOFTHSM2_CONF: conf } };
}

export async function initToken(hsm: SoftHsm, label: string, pin: string): Promise<void> {
  mkdirSync(join(hsm.dir, 'tokens'), { recursive: true });
  await cmd(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '12345678'],
    hsm.env,
  );
}

/** A key (EC P-256 or RSA 2048) and a self-signed certificate for it; returns PEM paths. */
export async function makeKey(dir: string, name: string, cn: string, type: 'ec' | 'rsa' = 'ec') {
  const keyOpts =
    type === 'ec'
      ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
      : ['-newkey', 'rsa:2048'];
  await cmd(
    'openssl',
    [
      'req',
      '-x509',
      ...keyOpts,
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '2',
    ],
    process.env,
    dir,
  );
  await cmd(
    'openssl',
    [
      'pkcs8',
      '-topk8',
      '-nocrypt',
      '-in',
      `${name}.key`,
      '-outform',
      'DER',
      '-out',
      `${name}.key.der`,
    ],
    process.env,
    dir,
  );
  await cmd(
    'openssl',
    ['x509', '-in', `${name}.pem`, '-outform', 'DER', '-out', `${name}.pem.der`],
    process.env,
    dir,
  );
  return {
    key: join(dir, `${name}.key`),
    cert: join(dir, `${name}.pem`),
    keyDer: join(dir, `${name}.key.der`),
    certDer: join(dir, `${name}.pem.der`),
  };
}

/** Imports a DER object onto a token with pkcs11-tool. */
export async function importObject(
  hsm: SoftHsm,
  token: string,
  pin: string,
  file: string,
  type: 'privkey' | 'cert',
  id: string,
  label: string,
): Promise<void> {
  await cmd(
    'pkcs11-tool',
    [
      '--module',
      SOFTHSM_MODULE,
      '--token-label',
      token,
      '--login',
      '--pin',
      pin,
      '--write-object',
      file,
      '--type',
      type,
      '--id',
      id,
      '--label',
      label,
    ],
    hsm.env,
  );
}
