// SSH bastion backend: each request is a `direct-tcpip` channel through one shared SSH
// connection (like OpenSSH's ControlMaster), opened on first use, kept alive with
// keepalives, and opened again on the next request after it drops. The server's host
// key must be listed in the backend's known_hosts: never trust on first use.
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, ServerHostKeyAlgorithm } from 'ssh2';
import { formatHostPort } from '../../common/host-port.js';
import type { BackendConfig } from '../config/types.js';
import { abortError, raceAbort } from '../net/abort.js';
import { ConnectError, type Target } from '../types.js';
import {
  blobType,
  fingerprint,
  hostKeyAlgorithms,
  keysFor,
  knownHostsName,
  parseKnownHosts,
  verifyHostKey,
} from './ssh-known-hosts.js';

/**
 * Opens the TCP connection to the bastion (resolving its name with `[dns] resolvers`
 * when set, like a direct exit). Without it, ssh2 connects with the system resolver.
 */
export type SshDial = (
  addr: { host: string; port: number },
  signal: AbortSignal,
) => Promise<net.Socket>;

export interface SshConnector {
  /** `dial` is used when this request has to open the SSH connection. */
  connect(target: Target, signal: AbortSignal, dial?: SshDial): Promise<Duplex>;
  close(): void;
}

export interface SshConnectorOptions {
  /** TCP connect + SSH handshake + authentication, and each channel open (config `connect-timeout`). */
  connectTimeoutMs: number;
  /** SSH keepalive period (default 15 s); the connection is dropped after 3 unanswered. */
  keepaliveIntervalMs?: number;
  /** Called once per SSH connection established (for status and tests). */
  onConnection?: () => void;
}

/** Host key algorithms ssh2 can verify (ssh-dss left out: OpenSSH dropped it). */
const SUPPORTED_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4254 5.1). */
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;
const OPEN_CONNECT_FAILED = 2;

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Why a channel could not be opened, as the bastion told us. */
function channelError(
  err: Error & { reason?: unknown },
  label: string,
  bastion: string,
): ConnectError {
  const desc = err.message.replace(/^\(SSH\) Channel open failure: /, '');
  const text = `SSH bastion ${bastion} could not open a channel to ${label}: ${desc || 'no reason given'}`;
  if (err.reason === OPEN_ADMINISTRATIVELY_PROHIBITED) return new ConnectError('refused', text);
  if (err.reason === OPEN_CONNECT_FAILED) {
    if (/refused/i.test(desc)) return new ConnectError('refused', text);
    if (/timed? ?out/i.test(desc)) return new ConnectError('timeout', text);
    if (/resolve|not known|unknown host|name|nodename/i.test(desc))
      return new ConnectError('dns', text);
    return new ConnectError('unreachable', text);
  }
  return new ConnectError('internal', text);
}

/** A channel-open failure caused by the SSH connection itself (worth one retry on a new one). */
function connectionLost(err: unknown): boolean {
  if (err instanceof ConnectError) return false;
  const reason = (err as { reason?: unknown })?.reason;
  return typeof reason !== 'number';
}

// ssh2 is loaded when a first SSH connection is established, not by every daemon
// (docs/performance.md, "Footprint"); kept once loaded.
let ssh2: typeof import('ssh2') | undefined;

export function createSshConnector(
  backend: BackendConfig,
  opts: SshConnectorOptions,
): SshConnector {
  const { connectTimeoutMs } = opts;
  if (!(connectTimeoutMs > 0))
    throw new TypeError('connect timeout must be a positive number of milliseconds');
  const keepaliveIntervalMs = opts.keepaliveIntervalMs ?? 15_000;

  let client: Client | undefined;
  let ready: Promise<Client> | undefined;
  let channels = 0;
  let closed = false;

  function drop(c: Client): void {
    if (client !== c) return;
    client = undefined;
    ready = undefined;
  }

  /** After close(): end the connection once the last relayed channel has closed. */
  function endIfIdle(): void {
    if (closed && channels === 0 && client) {
      const c = client;
      drop(c);
      c.end();
    }
  }

  async function establish(dial?: SshDial): Promise<Client> {
    ssh2 ??= (await import('ssh2')).default;
    const { utils, Client: SshClient } = ssh2;
    const addr = backend.targetAddress;
    if (!addr)
      throw new ConnectError('internal', `SSH backend ${backend.name} has no target address yet`);
    const bastion = formatHostPort(addr);
    const name = knownHostsName(addr.host, addr.port);
    const khFile = backend.knownHosts;
    if (!khFile)
      throw new ConnectError('internal', `SSH backend ${backend.name} has no known-hosts file`);
    // Read again for every connection: an edited known_hosts applies without a reload.
    let khText: string;
    try {
      khText = await readFile(khFile, 'utf8');
    } catch (e) {
      throw new ConnectError(
        'internal',
        `cannot read known_hosts ${khFile}: ${(e as Error).message}`,
      );
    }
    const known = keysFor(parseKnownHosts(khText), name);
    if (known.keys.length === 0 && known.certAuthorities > 0) {
      throw new ConnectError(
        'refused',
        `known_hosts ${khFile} lists only @cert-authority keys for ${name}: SSH host certificates are not supported by portail; add the host's own key (ssh-keyscan, checked out of band)`,
      );
    }
    if (known.keys.length === 0) {
      throw new ConnectError(
        'refused',
        `host key for ${name} is not in known_hosts ${khFile} (portail never trusts on first use: check the key and add it)`,
      );
    }
    const algorithms = hostKeyAlgorithms(known.keys, SUPPORTED_HOST_KEY_ALGORITHMS);
    if (algorithms.length === 0) {
      const types = [...new Set(known.keys.map((k) => k.type))].join(', ');
      throw new ConnectError(
        'refused',
        `known_hosts ${khFile} lists for ${name} only key types portail cannot verify (${types})`,
      );
    }

    let privateKey: Buffer | undefined;
    if (backend.identityFile) {
      try {
        privateKey = await readFile(backend.identityFile);
      } catch (e) {
        throw new ConnectError(
          'internal',
          `cannot read identity-file ${backend.identityFile}: ${(e as Error).message}`,
        );
      }
      const parsed = utils.parseKey(privateKey);
      if (parsed instanceof Error) {
        const hint = /passphrase/i.test(parsed.message)
          ? ' (keys with a passphrase: use agent = true)'
          : '';
        throw new ConnectError(
          'internal',
          `identity-file ${backend.identityFile}: ${parsed.message}${hint}`,
        );
      }
    }
    let agent: string | undefined;
    if (backend.agent) {
      agent = process.env.SSH_AUTH_SOCK || undefined;
      if (!agent && !privateKey)
        throw new ConnectError(
          'internal',
          `SSH backend ${backend.name}: agent = true but SSH_AUTH_SOCK is not set`,
        );
    }

    // The TCP connection first, through our resolver: connect-timeout covers it, the
    // handshake and authentication together.
    const started = Date.now();
    let sock: net.Socket | undefined;
    if (dial) {
      const ac = new AbortController();
      const timer = setTimeout(
        () =>
          ac.abort(
            new ConnectError(
              'timeout',
              `SSH bastion ${bastion}: no TCP connection within ${connectTimeoutMs} ms`,
            ),
          ),
        connectTimeoutMs,
      );
      try {
        sock = await dial({ host: addr.host, port: addr.port }, ac.signal);
      } catch (e) {
        const ce = e instanceof ConnectError ? e : new ConnectError('internal', String(e));
        throw new ConnectError(ce.reason, `SSH bastion ${bastion}: ${ce.message}`);
      } finally {
        clearTimeout(timer);
      }
      if (closed) {
        sock.destroy();
        throw new ConnectError('internal', `SSH backend ${backend.name} is closed`);
      }
    }
    const readyTimeout = Math.max(1, connectTimeoutMs - (Date.now() - started));

    const c = new SshClient();
    let hostKeyProblem: string | undefined;
    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      const fail = (e: ConnectError) => {
        if (settled) return;
        settled = true;
        // Ended by close(): say so rather than blame the bastion.
        if (closed) e = new ConnectError('internal', `SSH backend ${backend.name} is closed`);
        drop(c);
        c.end();
        reject(e);
      };
      c.on('ready', () => {
        if (settled) return;
        // close() came while we were still connecting: nobody may use this connection.
        if (closed)
          return fail(new ConnectError('internal', `SSH backend ${backend.name} is closed`));
        settled = true;
        opts.onConnection?.();
        resolve(c);
      });
      c.on('error', (err: Error & { level?: string }) => {
        // After `ready`, errors (keepalive timeout, reset) end the connection: the next
        // request opens a new one; channels in flight see their own close.
        drop(c);
        if (settled) return;
        if (hostKeyProblem) return fail(new ConnectError('refused', hostKeyProblem));
        const code = errnoOf(err);
        if (err.level === 'client-timeout')
          return fail(
            new ConnectError(
              'timeout',
              `SSH handshake with ${bastion} timed out after ${connectTimeoutMs} ms`,
            ),
          );
        if (err.level === 'client-authentication')
          return fail(
            new ConnectError(
              'refused',
              `SSH authentication as ${backend.user} on ${bastion} failed (${err.message})`,
            ),
          );
        if (code === 'ECONNREFUSED')
          return fail(new ConnectError('refused', `SSH bastion ${bastion} refused the connection`));
        if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME')
          return fail(
            new ConnectError('dns', `SSH bastion ${bastion}: cannot resolve ${addr.host}`),
          );
        if (code === 'ETIMEDOUT')
          return fail(new ConnectError('timeout', `SSH bastion ${bastion}: connect timed out`));
        if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
          return fail(
            new ConnectError('unreachable', `SSH bastion ${bastion} is unreachable (${code})`),
          );
        fail(new ConnectError('internal', `SSH connection to ${bastion} failed: ${err.message}`));
      });
      c.on('close', () => {
        drop(c);
        fail(
          new ConnectError(
            'refused',
            `SSH bastion ${bastion} closed the connection during the handshake`,
          ),
        );
      });
      try {
        c.connect({
          ...(sock ? { sock } : { host: addr.host, port: addr.port }),
          username: backend.user ?? '',
          privateKey,
          agent,
          readyTimeout,
          keepaliveInterval: keepaliveIntervalMs,
          keepaliveCountMax: 3,
          algorithms: { serverHostKey: algorithms as ServerHostKeyAlgorithm[] },
          hostVerifier: (key: Buffer) => {
            const verdict = verifyHostKey(known, key);
            if (verdict.ok) return true;
            const presented = `${blobType(key) ?? '?'} ${fingerprint(key)}`;
            hostKeyProblem =
              verdict.why === 'revoked'
                ? `host key for ${name} (${presented}) is marked @revoked in known_hosts ${khFile}`
                : `host key for ${name} does not match known_hosts ${khFile} (server presented ${presented}; possible man-in-the-middle or re-installed server)`;
            return false;
          },
        });
      } catch (e) {
        fail(new ConnectError('internal', `SSH connection to ${bastion}: ${(e as Error).message}`));
      }
      client = c;
    });
  }

  function getClient(signal: AbortSignal, label: string, dial?: SshDial): Promise<Client> {
    ready ??= establish(dial);
    const p = ready;
    // A failed attempt is not cached: the next request tries again.
    p.catch(() => {
      if (ready === p) ready = undefined;
    });
    return raceAbort(p, signal, `SSH connection for ${label}`);
  }

  function openChannel(
    c: Client,
    target: Target,
    label: string,
    signal: AbortSignal,
  ): Promise<Duplex> {
    const addr = backend.targetAddress;
    const bastion = addr ? formatHostPort(addr) : backend.name;
    return new Promise<Duplex>((resolve, reject) => {
      let settled = false;
      const finish = () => {
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        if (settled) return;
        finish();
        reject(abortError(signal, `connect to ${label}`));
      };
      const timer = setTimeout(() => {
        if (settled) return;
        finish();
        reject(
          new ConnectError(
            'timeout',
            `SSH bastion ${bastion}: opening a channel to ${label} timed out after ${connectTimeoutMs} ms`,
          ),
        );
      }, connectTimeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        c.forwardOut('127.0.0.1', 0, target.host, target.port, (err, ch) => {
          if (settled) {
            // Too late (aborted or timed out): SSH cannot cancel an open, so close it.
            ch?.close();
            return;
          }
          finish();
          if (err) return reject(connectionLost(err) ? err : channelError(err, label, bastion));
          channels++;
          ch.once('close', () => {
            channels--;
            endIfIdle();
          });
          resolve(ch);
        });
      } catch (e) {
        // "Not connected": the connection dropped since it was handed out.
        finish();
        reject(e);
      }
    });
  }

  return {
    async connect(target, signal, dial) {
      const label = formatHostPort(target);
      if (closed) throw new ConnectError('internal', `SSH backend ${backend.name} is closed`);
      if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535)
        throw new ConnectError('internal', `invalid destination port in ${label}`);
      if (signal.aborted) throw abortError(signal, `connect to ${label}`);
      const reused = ready !== undefined;
      let c = await getClient(signal, label, dial);
      try {
        return await openChannel(c, target, label, signal);
      } catch (e) {
        if (!connectionLost(e)) throw e;
        drop(c);
        c.end();
        // A reused connection may have died unnoticed: one attempt on a new one.
        if (!reused || closed)
          throw new ConnectError(
            'internal',
            `SSH connection to ${backend.name} lost: ${(e as Error).message}`,
          );
        c = await getClient(signal, label, dial);
        try {
          return await openChannel(c, target, label, signal);
        } catch (e2) {
          if (!connectionLost(e2)) throw e2;
          drop(c);
          c.end();
          throw new ConnectError(
            'internal',
            `SSH connection to ${backend.name} lost: ${(e2 as Error).message}`,
          );
        }
      }
    },
    close() {
      closed = true;
      // Relays in flight keep their channels (a connection keeps the backend it started
      // with); the SSH connection ends with the last of them.
      endIfIdle();
    },
  };
}
