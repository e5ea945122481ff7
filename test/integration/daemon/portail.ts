// Starts the real daemon (`node dist/proxy/cli/portail.js daemon …`) on a free loopback
// port with a generated configuration and ACL, audit records in a file the test reads.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SocksClient } from 'socks';
import { type Owner, type Started, sleep, startProcess, tmpDir } from '../../harness/index.js';

export const PORTAIL = fileURLToPath(new URL('../../../proxy/cli/portail.js', import.meta.url));
export const PORTAILCTL = fileURLToPath(new URL('../../../rpc/portailctl.js', import.meta.url));

/** Runs `portailctl --socket SOCKET ARGS…`; its exit code and output, whatever the code. */
export async function portailctl(
  socket: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(
      process.execPath,
      [PORTAILCTL, '--socket', socket, ...args],
      {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

export interface AuditLine {
  event: string;
  [k: string]: unknown;
}

export interface Portail {
  proc: Started;
  dir: string;
  port: number;
  /** HOST:PORT of each listener, as the ready line printed them. */
  addresses: string[];
  aclPath: string;
  configPath: string;
  auditPath: string;
  records(): AuditLine[];
  waitRecord(pred: (r: AuditLine) => boolean, timeoutMs?: number): Promise<AuditLine>;
  writeAcl(text: string): void;
  signal(sig: NodeJS.Signals): void;
}

export interface PortailOptions {
  acl?: string | null;
  /** Extra top-level configuration lines. */
  config?: string;
  /** Default: one IPv4 loopback listener on a free port. */
  bind?: string[];
  env?: NodeJS.ProcessEnv;
  files?: Record<string, string>;
  /** Extra daemon arguments (a function receives the daemon's temp folder). */
  args?: string[] | ((dir: string) => string[]);
  /** A command the daemon runs under (e.g. a private /etc/resolv.conf: harness/private-resolv.ts). */
  prefix?: string[];
}

export async function startPortail(t: Owner, opts: PortailOptions = {}): Promise<Portail> {
  const dir = tmpDir(t);
  const aclPath = join(dir, 'filter.acl');
  const auditPath = join(dir, 'audit.jsonl');
  if (opts.acl !== null) writeFileSync(aclPath, opts.acl ?? 'policy all { action allow }\n');
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), text);
  const configPath = join(dir, 'portail.toml');
  writeFileSync(
    configPath,
    `filter-acl-rules-path = "filter.acl"\n${opts.config ?? ''}\n[log]\naudit = "file:${auditPath}"\n`,
  );
  const binds = opts.bind ?? ['127.0.0.1:0'];
  const prefix = opts.prefix ?? [];
  const proc = await startProcess(
    prefix[0] ?? process.execPath,
    [
      ...(prefix.length > 0 ? [...prefix.slice(1), process.execPath] : []),
      PORTAIL,
      'daemon',
      '--config',
      configPath,
      ...binds.flatMap((b) => ['--bind-proxy-address', b]),
      ...(typeof opts.args === 'function' ? opts.args(dir) : (opts.args ?? [])),
    ],
    {
      t,
      readyWhen: /portail: listening on .+\n/,
      name: 'portail',
      env: opts.env,
      killGraceMs: 3000,
    },
  );
  const m = /portail: listening on (.+)\n/.exec(proc.output()) as RegExpExecArray;
  const addresses = m[1].split(', ');
  const port = Number(/:(\d+)$/.exec(addresses[0])?.[1]);
  const records = () =>
    existsSync(auditPath)
      ? readFileSync(auditPath, 'utf8')
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as AuditLine)
      : [];
  return {
    proc,
    dir,
    port,
    addresses,
    aclPath,
    configPath,
    auditPath,
    records,
    async waitRecord(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = records().find(pred);
        if (r) return r;
        if (Date.now() > deadline) {
          throw new Error(
            `no matching audit record; have:\n${records()
              .map((x) => JSON.stringify(x))
              .join('\n')}\noutput:\n${proc.output().slice(-3000)}`,
          );
        }
        await sleep(20);
      }
    },
    writeAcl(text) {
      writeFileSync(aclPath, text);
    },
    signal(sig) {
      process.kill(proc.pid, sig);
    },
  };
}

/** A SOCKS5 CONNECT through portail; the socket is the tunnel. */
export async function socksConnect(
  proxyPort: number,
  host: string,
  port: number,
  proxyHost = '127.0.0.1',
): Promise<net.Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: proxyHost, port: proxyPort, type: 5 },
    command: 'connect',
    destination: { host, port },
    timeout: 5000,
  });
  socket.setNoDelay(true);
  // Half-close tests: a FIN from the far end must not end our direction.
  socket.allowHalfOpen = true;
  return socket;
}

/** A loopback TCP server with its connections, closed when the test ends. */
export async function tcpServer(
  t: Owner,
  onConn: (s: net.Socket) => void,
  host = '127.0.0.1',
): Promise<{ port: number; server: net.Server; connections: () => number }> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, host);
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, server, connections: () => count };
}

export function echo(s: net.Socket) {
  s.pipe(s);
}

/** Reads until `n` bytes arrived (or the stream ended). */
export async function readBytes(s: net.Socket, n: number, timeoutMs = 3000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`only ${got} of ${n} bytes after ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) finish();
    };
    const finish = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const cleanup = () => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', finish);
    };
    s.on('data', onData);
    s.on('end', finish);
  });
}

/** Resolves when the socket is closed, with whether it saw an error (a reset). */
export function closed(s: net.Socket): Promise<{ error: string | null }> {
  return new Promise((resolve) => {
    let error: string | null = null;
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    if (s.destroyed) resolve({ error });
    else s.once('close', () => resolve({ error }));
  });
}
