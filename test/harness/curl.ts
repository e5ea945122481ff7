// Runs the real curl and returns its exit code and output, never throwing on a non-zero
// code: tests assert on the code (7 = refused, 97 = SOCKS failure, 56 = recv error…).
import { spawn } from 'node:child_process';
import process from 'node:process';

export interface CurlResult {
  /** curl's exit code (0 = success); -1 if it was killed by the timeout. */
  code: number;
  stdout: string;
  stderr: string;
  /** stdout as bytes, for binary bodies. */
  body: Buffer;
}

export interface CurlOptions {
  /** Kill curl after this long (default 20 s); also passed as --max-time. */
  timeoutMs?: number;
  /** Extra environment. The proxy variables of the caller's environment are removed. */
  env?: NodeJS.ProcessEnv;
  /** Data written to curl's stdin (for `--data-binary @-`, `-T -`). */
  input?: string | Buffer;
}

const PROXY_VARS = [
  'http_proxy',
  'https_proxy',
  'all_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'ALL_PROXY',
  'NO_PROXY',
];

/** `curl -sS --max-time … ARGS`; the caller's proxy variables never leak in. */
export function curl(args: readonly string[], opts: CurlOptions = {}): Promise<CurlResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of PROXY_VARS) delete env[v];
  Object.assign(env, opts.env);
  const child = spawn(
    'curl',
    ['-sS', '--max-time', String(Math.max(1, Math.ceil(timeoutMs / 1000))), ...args],
    { env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.on('error', () => {}); // curl may exit before reading its input
  child.stdin.end(opts.input ?? '');
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 5_000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(killer);
      reject(new Error(`curl: cannot start: ${e.message} (apt-get install curl)`));
    });
    child.once('close', (code) => {
      clearTimeout(killer);
      const body = Buffer.concat(out);
      resolve({
        code: code ?? -1,
        stdout: body.toString(),
        stderr: Buffer.concat(err).toString(),
        body,
      });
    });
  });
}
