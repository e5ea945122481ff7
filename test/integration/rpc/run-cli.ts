// Runs a compiled command line (portailctl, the `portail rpc` harness) as a child
// process, optionally as another user (setpriv), and collects its exit code and output.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const PORTAILCTL = fileURLToPath(new URL('../../../rpc/portailctl.js', import.meta.url));
export const RPC_HARNESS = fileURLToPath(new URL('./rpc-cli-harness.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  stdin?: string | Buffer;
  /** Write `stdin` but leave it open (the child decides when to stop). */
  keepStdinOpen?: boolean;
  /** Run as this user, with this primary group and the user's supplementary groups
   * (`setpriv --reuid --regid --init-groups`). */
  user?: {
    name: string;
    group: string /** Exactly these supplementary groups instead. */;
    groups?: string;
  };
  timeoutMs?: number;
}

export function runCli(script: string, args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORTAIL_CONTROL_SOCKET: undefined,
    ...opts.env,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const [cmd, argv] = opts.user
    ? [
        'setpriv',
        [
          '--reuid',
          opts.user.name,
          '--regid',
          opts.user.group,
          ...(opts.user.groups === undefined ? ['--init-groups'] : ['--groups', opts.user.groups]),
          '--',
          process.execPath,
          script,
          ...args,
        ],
      ]
    : [process.execPath, [script, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv as string[], {
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    child.stdin.on('error', () => {});
    if (opts.keepStdinOpen) {
      if (opts.stdin !== undefined) child.stdin.write(opts.stdin);
    } else if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}
