// Real pieces for pipeline and state tests: configuration and ACL files in a temp
// folder, loopback TCP servers, and a front-end stand-in that builds the ProxyRequest
// from a real accepted socket (the Pipeline interface is the contract under test).
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditWriter, Log } from '../../../proxy/audit/logging.js';
import type { AuditRecord } from '../../../proxy/audit/record.js';
import type { ProxyRequest, Refusal, Target } from '../../../proxy/types.js';

export function tempDir(): {
  dir: string;
  write(name: string, text: string): string;
  cleanup(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'portail-test-'));
  return {
    dir,
    write(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export class Records implements AuditWriter {
  readonly all: AuditRecord[] = [];
  write(r: AuditRecord) {
    this.all.push(r);
  }
  of(event: AuditRecord['event']) {
    return this.all.filter((r) => r.event === event);
  }
  /** Waits for a record matching `pred` (close records follow socket events). */
  async waitFor(pred: (r: AuditRecord) => boolean, timeoutMs = 3000): Promise<AuditRecord> {
    const t0 = Date.now();
    for (;;) {
      const found = this.all.find(pred);
      if (found) return found;
      if (Date.now() - t0 > timeoutMs) throw new Error('no such audit record');
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export class Lines implements Log {
  readonly lines: string[] = [];
  debug(m: string) {
    this.lines.push(`debug: ${m}`);
  }
  info(m: string) {
    this.lines.push(`info: ${m}`);
  }
  warn(m: string) {
    this.lines.push(`warn: ${m}`);
  }
  error(m: string) {
    this.lines.push(`error: ${m}`);
  }
}

export async function listen(
  onConn: (s: net.Socket) => void,
  host = '127.0.0.1',
): Promise<{ server: net.Server; port: number; close(): void }> {
  const server = net.createServer({ allowHalfOpen: true }, onConn);
  server.listen(0, host);
  await once(server, 'listening');
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** An echo origin. */
export function echoServer(host = '127.0.0.1') {
  return listen((s) => {
    s.on('error', () => {});
    s.pipe(s);
  }, host);
}

export interface Client {
  /** The end-user's side. */
  user: net.Socket;
  req: ProxyRequest;
  refusal: Promise<Refusal>;
  accepted: Promise<{ address: string; port: number }>;
}

/**
 * A client connected through a loopback "proxy port": `req` is what a front-end would
 * hand the pipeline for `target`, with accept/reject recording the outcome.
 */
export async function client(
  target: Target,
  extra: Partial<Omit<ProxyRequest, 'accept' | 'reject' | 'target'>> = {},
): Promise<Client & { close(): void }> {
  let accepted!: net.Socket;
  const front = await listen((s) => {
    accepted = s;
  });
  const user = net.connect({ port: front.port, host: '127.0.0.1', allowHalfOpen: true });
  user.on('error', () => {});
  await once(user, 'connect');
  while (!accepted) await new Promise((r) => setTimeout(r, 1));
  accepted.on('error', () => {});
  let onRefusal!: (r: Refusal) => void;
  let onAccept!: (b: { address: string; port: number }) => void;
  const refusal = new Promise<Refusal>((r) => {
    onRefusal = r;
  });
  const acceptedP = new Promise<{ address: string; port: number }>((r) => {
    onAccept = r;
  });
  const req: ProxyRequest = {
    target,
    protocol: 'socks5',
    cmd: 'tcp_connect',
    client: {
      ip: user.localAddress ?? '127.0.0.1',
      port: user.localPort ?? 0,
      localIp: accepted.localAddress ?? '127.0.0.1',
      localPort: accepted.localPort ?? 0,
      auth: 'none',
    },
    ...extra,
    accept(bound) {
      onAccept(bound);
      return accepted;
    },
    reject(r) {
      onRefusal(r);
      accepted.destroy();
    },
  };
  return {
    user,
    req,
    refusal,
    accepted: acceptedP,
    close() {
      user.destroy();
      front.close();
    },
  };
}

export function config(aclFile: string | null, extra = ''): string {
  return `${aclFile ? `filter-acl-rules-path = ${JSON.stringify(aclFile)}\n` : ''}${extra}\n`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
