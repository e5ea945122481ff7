// Shared pieces of the chaining tests: an origin that answers with the address the
// connection came from (each upstream has its own 127.0.0.x outgoing address), curl
// through portail, the control-plane CLIs, and a loopback port that never accepts.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type CurlResult,
  curl,
  freePort,
  type Owner,
  type Started,
  startProcess,
  which,
} from '../../harness/index.js';

export interface Origin {
  port: number;
  /** Source address of every connection the origin received, in order. */
  seen: string[];
}

/** An HTTP origin on 127.0.0.1 answering `from ADDRESS`. */
export async function origin(t: Owner): Promise<Origin> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    res.setHeader('connection', 'close');
    res.end(`from ${req.socket.remoteAddress}`);
  });
  server.on('connection', (s: net.Socket) => seen.push(String(s.remoteAddress)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, seen };
}

export type ClientKind = 'socks5' | 'http-forward' | 'http-connect';

/** curl to the origin through portail, speaking `kind`. */
export function via(
  kind: ClientKind,
  proxyPort: number,
  originPort: number,
  timeoutMs = 15_000,
): Promise<CurlResult> {
  const proxy = `127.0.0.1:${proxyPort}`;
  const url = `http://127.0.0.1:${originPort}/`;
  const args =
    kind === 'socks5'
      ? ['--socks5-hostname', proxy, url]
      : kind === 'http-forward'
        ? ['-x', `http://${proxy}`, url]
        : ['-x', `http://${proxy}`, '--proxytunnel', url];
  return curl(args, { timeoutMs });
}

const PORTAILCTL = fileURLToPath(new URL('../../../rpc/portailctl.js', import.meta.url));
const PORTAIL = fileURLToPath(new URL('../../../proxy/cli/portail.js', import.meta.url));

async function run(args: string[]) {
  try {
    const r = await promisify(execFile)(process.execPath, args, { encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

export const portailctl = (socket: string, ...args: string[]) =>
  run([PORTAILCTL, '--socket', socket, ...args]);

export const portailRpc = (socket: string, ...args: string[]) =>
  run([PORTAIL, 'rpc', '--rpc-socket', socket, ...args]);

/**
 * A loopback port whose listener never accepts: a stopped process with a full
 * backlog, so that new SYNs are dropped and a connect hangs until its timeout.
 */
export async function blackholePort(t: Owner): Promise<number> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      `const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  t.after(() => {
    for (const s of fillers) s.destroy();
    child.kill('SIGKILL');
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  child.kill('SIGSTOP');
  // Fill the accept queue until a connect no longer completes.
  for (let i = 0; i < 64; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    const ok = await Promise.race([
      once(s, 'connect').then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
    ]);
    if (!ok) return port;
  }
  throw new Error('could not fill the backlog of the stopped listener');
}

/** A port with nothing listening (connections refused). */
export async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

/** A dnsmasq on loopback that answers 127.0.0.1 for every name under internal.test, nothing else. */
export async function startDnsmasq(t: Owner): Promise<{ port: number; proc: Started }> {
  const port = await freePort();
  const proc = await startProcess(
    which('dnsmasq') as string,
    [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--log-facility=-',
      '--address=/internal.test/127.0.0.1',
      `--port=${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--user=root',
    ],
    // dnsmasq answers on TCP too, so an accepted connection means it is serving.
    { t, readyWhen: { port, host: '127.0.0.1' }, name: 'dnsmasq' },
  );
  return { port, proc };
}
