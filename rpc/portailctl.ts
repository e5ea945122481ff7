#!/usr/bin/env node
// portailctl: talks to a running daemon's control socket (docs/reference/control.md, "portailctl").
// Exit codes: 0 success, 1 refused or failed (message on stderr), 2 usage error,
// 3 daemon unreachable.
import { Command, CommanderError } from 'commander';
import { formatHostPort, parseHostPort } from '../common/host-port.js';
import { ProtocolError, UnreachableError, VarlinkClient } from './client.js';
import { formatBackends, formatDenials, formatExplain, formatStatus } from './ctl-format.js';
import { Socks5Error, socks5Connect } from './socks5-connect.js';
import { VarlinkError } from './varlink-codec.js';
import { packageInfo } from './version.js';

export const DEFAULT_SOCKET = '/run/portail/control';
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

type Obj = Record<string, unknown>;

class UsageError extends Error {}

/** A failure already worded for the user, with its exit code. */
class Failure extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly json?: Obj,
  ) {
    super(message);
  }
}

interface Globals {
  socket?: string;
  json?: boolean;
}

function socketPath(g: Globals): string {
  return g.socket || process.env.PORTAIL_CONTROL_SOCKET || DEFAULT_SOCKET;
}

/** What a refusal means for each privileged command. */
const NEEDS: Record<string, string> = {
  'io.portail.Control.Reload':
    'reloading needs root or membership of [rpc] trusted-groups or admin-groups',
  'fr.gouv.portail.Control.SetDefaultBackend':
    'changing the default backend needs root or membership of [rpc] trusted-groups or admin-groups',
  'io.portail.Control.RecentDenials': 'you may only see your own denials',
};

function explainError(method: string, e: VarlinkError): string {
  const p = e.parameters;
  const name = e.error.slice(e.error.lastIndexOf('.') + 1);
  switch (name) {
    case 'PermissionDenied':
      return `permission denied: ${NEEDS[method] ?? 'not allowed'}`;
    case 'BackendNotFound': {
      const available = Array.isArray(p.available_backends) ? p.available_backends.join(', ') : '';
      return `no backend named "${p.provided_backend}" (available: ${available || 'none'})`;
    }
    case 'ReloadFailed':
      return `reload failed; the previous configuration and rules stay in force:\n${p.diagnostics}`;
    case 'InvalidRequest':
    case 'InvalidBackend':
      return String(p.reason);
    case 'InvalidParameter':
      return `the daemon rejected the parameter "${p.parameter}"`;
    case 'InterfaceNotFound':
    case 'MethodNotFound':
      return `the daemon does not offer ${method} (is it an older version?)`;
    case 'InternalError':
      return `the daemon failed: ${p.message}`;
    default:
      return `${e.error}${Object.keys(p).length ? ` ${JSON.stringify(p)}` : ''}`;
  }
}

async function call(g: Globals, method: string, params: Obj = {}): Promise<Obj> {
  const path = socketPath(g);
  let client: VarlinkClient;
  try {
    client = await VarlinkClient.connect(path);
  } catch (e) {
    throw new Failure((e as Error).message, EXIT_UNREACHABLE, {
      error: 'unreachable',
      socket: path,
    });
  }
  try {
    return await client.call(method, params);
  } catch (e) {
    if (e instanceof VarlinkError) {
      throw new Failure(explainError(method, e), EXIT_FAILED, {
        error: e.error,
        parameters: e.parameters,
      });
    }
    if (e instanceof ProtocolError)
      throw new Failure(e.message, EXIT_FAILED, { error: 'protocol' });
    throw e;
  } finally {
    client.close();
  }
}

function print(g: Globals, json: Obj | unknown[], human: string): void {
  process.stdout.write(g.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
}

function parseUid(text: string): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0xfffffffe) {
    throw new UsageError(`--uid: "${text}" is not a uid`);
  }
  return Number(text);
}

function parseAttrs(list: string[]): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    const key = eq > 0 ? kv.slice(0, eq) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(key)) {
      throw new UsageError(`--attr: expected key=value with a dotted attribute name, got "${kv}"`);
    }
    if (key in attrs) throw new UsageError(`--attr: "${key}" given twice`);
    attrs[key] = kv.slice(eq + 1);
  }
  return attrs;
}

async function cmdReload(g: Globals): Promise<void> {
  const r = await call(g, 'io.portail.Control.Reload');
  const diag = String(r.diagnostics ?? '').trim();
  if (diag && !g.json) process.stderr.write(`${diag}\n`);
  print(
    g,
    { ok: true, ...r },
    `reloaded${r.acl_hash ? ` (ACL sha256 ${String(r.acl_hash).slice(0, 12)}…)` : ''}`,
  );
}

async function cmdStatus(g: Globals): Promise<void> {
  const s = await call(g, 'io.portail.Control.Status');
  print(g, s, formatStatus(s));
}

async function cmdBackends(g: Globals): Promise<void> {
  const r = await call(g, 'fr.gouv.portail.Control.ListBackends');
  // Health (back-off state) comes from our Status; upstream's ListBackends stays as is.
  const s = await call(g, 'io.portail.Control.Status');
  const health = (s.backends as Obj[] | undefined) ?? [];
  print(
    g,
    { ...r, health },
    formatBackends((r.backends as Obj[]) ?? [], health.length ? health : undefined),
  );
}

async function cmdSetDefault(g: Globals, id: string | null): Promise<void> {
  await call(g, 'fr.gouv.portail.Control.SetDefaultBackend', { backend_id: id });
  print(
    g,
    { ok: true, default_backend: id },
    id === null ? 'default backend unset (direct exit)' : `default backend: ${id}`,
  );
}

async function cmdExplain(
  g: Globals,
  target: string,
  o: { user?: string; uid?: string; attr: string[] },
): Promise<void> {
  // The host is the daemon's to judge (a destination, IDNA included).
  const hp = parseHostPort(target, { portOptional: true, host: 'any' });
  if ('error' in hp) throw new UsageError(`explain: ${hp.error}`);
  const params: Obj = { host: hp.host, port: hp.port ?? 443, attrs: parseAttrs(o.attr) };
  if (o.user !== undefined) params.user = o.user;
  if (o.uid !== undefined) params.uid = parseUid(o.uid);
  const r = await call(g, 'io.portail.Control.Explain', params);
  print(g, r, formatExplain(r, formatHostPort({ host: hp.host, port: hp.port ?? 443 })));
}

async function cmdWhy(g: Globals, o: { last?: string }): Promise<void> {
  let last = 20;
  if (o.last !== undefined) {
    if (!/^\d{1,4}$/.test(o.last) || Number(o.last) < 1 || Number(o.last) > 1000) {
      throw new UsageError(`--last: expected a number from 1 to 1000, got "${o.last}"`);
    }
    last = Number(o.last);
  }
  const r = await call(g, 'io.portail.Control.RecentDenials', { last });
  print(g, r, formatDenials((r.denials as Obj[]) ?? [], process.getuid?.()));
}

/** The first proxy listener, as a local client reaches it (a wildcard means loopback). */
function proxyAddress(status: Obj): { host: string; port: number } {
  const listeners = (status.listeners as Obj[]) ?? [];
  const proxy = listeners.find((l) => l.name === 'proxy');
  if (!proxy) throw new Failure('the daemon reports no proxy listener', EXIT_FAILED);
  const hp = parseHostPort(String(proxy.address));
  if ('error' in hp)
    throw new Failure(`the daemon reports an unusable proxy address: ${hp.error}`, EXIT_FAILED);
  if (hp.host === '0.0.0.0') return { host: '127.0.0.1', port: hp.port };
  if (hp.host === '::') return { host: '::1', port: hp.port };
  return hp;
}

async function cmdConnect(g: Globals, host: string, portText: string): Promise<number> {
  const hp = parseHostPort(host, { portOptional: true, host: 'any' });
  if ('error' in hp || hp.port !== undefined)
    throw new UsageError(`connect: invalid host "${host}"`);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) throw new UsageError(`connect: invalid port "${portText}"`);
  // JSON output would corrupt the byte stream: errors go to stderr only.
  let status: Obj;
  try {
    status = await call(g, 'io.portail.Control.Status');
  } catch (e) {
    if (e instanceof Failure) throw new Failure(e.message, e.code);
    throw e;
  }
  const proxy = proxyAddress(status);
  let socket: Awaited<ReturnType<typeof socks5Connect>>;
  try {
    socket = await socks5Connect(proxy.host, proxy.port, hp.host, port);
  } catch (e) {
    if (e instanceof Socks5Error)
      throw new Failure(e.message, e.unreachable ? EXIT_UNREACHABLE : EXIT_FAILED);
    throw e;
  }
  return new Promise<number>((resolve) => {
    let failed = false;
    socket.on('error', (e) => {
      failed = true;
      process.stderr.write(`portailctl: connection lost: ${e.message}\n`);
    });
    process.stdout.on('error', () => socket.destroy());
    socket.pipe(process.stdout);
    process.stdin.pipe(socket);
    socket.resume();
    socket.on('close', () => {
      const done = () => resolve(failed ? EXIT_FAILED : EXIT_OK);
      if (process.stdout.writableNeedDrain) process.stdout.once('drain', done);
      else done();
    });
  });
}

function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('portailctl');
  const g = () => program.opts<Globals>();
  program
    .description('control a running portail daemon')
    .version(packageInfo().version)
    .option(
      '--socket <path>',
      `control socket (default: $PORTAIL_CONTROL_SOCKET or ${DEFAULT_SOCKET})`,
    )
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) })
    .showSuggestionAfterError();

  program
    .command('reload')
    .description(
      're-read configuration, ACLs and lists atomically; fails (exit 1) if anything is invalid',
    )
    .action(() => cmdReload(g()));
  program
    .command('status')
    .description('version, uptime, listeners, ACL, connections, default backend, last reload')
    .action(() => cmdStatus(g()));
  program
    .command('backends')
    .description('list the configured backends')
    .action(() => cmdBackends(g()));
  program
    .command('set-default-backend')
    .description('use this backend when no route matches')
    .argument('<id>', 'backend name')
    .action((id: string) => cmdSetDefault(g(), id));
  program
    .command('unset-default-backend')
    .description('no default backend: exit directly when no route matches')
    .action(() => cmdSetDefault(g(), null));
  program
    .command('explain')
    .description('dry-run the ACL for a request and say why')
    .argument('<host[:port]>', 'destination (port 443 when absent; IPv6 in brackets with a port)')
    .option('--user <name>', 'on behalf of this user (default: you)')
    .option('--uid <n>', 'on behalf of this uid (default: yours)')
    .option(
      '--attr <key=value>',
      'a context attribute (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action((target: string, o: { user?: string; uid?: string; attr: string[] }) =>
      cmdExplain(g(), target, o),
    );
  program
    .command('why')
    .description('your recent denials and why (root: everyone’s)')
    .option('--last <n>', 'how many (default 20, at most 1000)')
    .action((o: { last?: string }) => cmdWhy(g(), o));
  program
    .command('connect')
    .description(
      "relay stdin/stdout to HOST PORT through the proxy (ssh -o ProxyCommand='portailctl connect %h %p')",
    )
    .argument('<host>')
    .argument('<port>')
    .action(async (host: string, port: string) => setExit(await cmdConnect(g(), host, port)));
  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => {
    code = c;
  });
  const json = () => program.opts<Globals>().json === true;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 || e.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`portailctl: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof Failure) {
      process.stderr.write(`portailctl: ${e.message}\n`);
      if (json() && e.json)
        process.stdout.write(`${JSON.stringify({ ok: false, ...e.json }, null, 2)}\n`);
      return e.code;
    }
    if (e instanceof UnreachableError) {
      process.stderr.write(`portailctl: ${e.message}\n`);
      return EXIT_UNREACHABLE;
    }
    process.stderr.write(`portailctl: ${(e as Error).message}\n`);
    return EXIT_FAILED;
  }
}

const exitCode = await main(process.argv.slice(2));
// Let stdout drain before exiting (piped output must not be cut).
if (process.stdout.writableLength === 0) process.exit(exitCode);
else process.stdout.once('drain', () => process.exit(exitCode));
