// Shared pieces of the control-socket tests: a ControlBackend made of plain data that
// records what it is asked, a server on a unix socket in a temporary folder, and a raw
// client that speaks bytes.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCred } from '../../../rpc/authorize.js';
import { bindControlSocket } from '../../../rpc/bind.js';
import {
  BackendNotFound,
  type BackendSpec,
  type ControlBackend,
  type DenialRecord,
  type ExplainRequest,
  type ExplainResult,
  ImmutableBackend,
  InvalidBackend,
  InvalidRequest,
  type ReloadResult,
  type StatusInfo,
} from '../../../rpc/control-api.js';
import {
  type ControlServer,
  type ControlServerOptions,
  createControlServer,
} from '../../../rpc/server.js';
import { encodeMessage, VarlinkDecoder } from '../../../rpc/varlink-codec.js';

interface FakeBackendEntry {
  id: string;
  dynamic: boolean;
  spec?: BackendSpec;
}

export class FakeBackend implements ControlBackend {
  calls: string[] = [];
  defaultBackend: string | null = 'par01';
  backends: FakeBackendEntry[] = [
    {
      id: 'par01',
      dynamic: false,
      spec: {
        targetAddress: '127.0.0.1:1081',
        identityAware: true,
        tlsServerName: 'gw1.example.com',
      },
    },
    {
      id: 'squid',
      dynamic: false,
      spec: { targetAddress: '127.0.0.1:3128', identityAware: false },
    },
    { id: 'dyn', dynamic: true },
  ];
  nextReload: ReloadResult = { ok: true, diagnostics: '', aclHash: 'ab'.repeat(32) };
  explainRequests: ExplainRequest[] = [];
  explainAnswer: ExplainResult = {
    action: 'deny',
    policy: 'eng_git',
    reason: 'denied by policy eng_git',
    routes: ['corp'],
    backends: ['par01'],
    local: false,
    tags: [],
    failed: [
      {
        policy: 'eng_git',
        action: 'allow',
        clause: 'require',
        expression: 'device.trust_level >= 2',
        result: 'false',
        comparisons: [
          {
            text: 'device.trust_level >= 2',
            attribute: 'device.trust_level',
            seen: '1',
            result: 'false',
          },
        ],
      },
    ],
    missing: [],
    explanation:
      'denied by policy eng_git\n  policy eng_git: require device.trust_level >= 2 — false',
    redacted: false,
  };
  denials: DenialRecord[] = [
    {
      time: new Date('2024-05-01T10:00:00Z'),
      uid: 1000,
      user: 'alice',
      host: 'a.example.com',
      port: 443,
      policy: 'deny_all',
      reason: 'denied by policy deny_all',
      explanation: 'denied by policy deny_all',
      protocol: 'socks5',
      traceId: 't1',
    },
    {
      time: new Date('2024-05-01T10:01:00Z'),
      uid: 1001,
      user: 'bob',
      host: 'b.example.com',
      port: 80,
      policy: null,
      reason: 'no policy matched',
      explanation: 'no policy matched',
    },
    {
      time: new Date('2024-05-01T10:02:00Z'),
      uid: 1000,
      user: 'alice',
      host: 'c.example.com',
      port: 22,
      policy: 'ssh',
      reason: 'denied by policy ssh',
      explanation: 'denied by policy ssh',
      process: '/usr/bin/ssh',
    },
  ];
  denialQueries: [number | null, number][] = [];
  throwOnStatus: Error | undefined;
  statusInfo: StatusInfo = {
    version: '9.9.9',
    pid: 4242,
    startedAt: new Date(Date.now() - 3_723_000),
    configFile: '/etc/portail/portail.toml',
    listeners: [
      { name: 'proxy', address: '127.0.0.1:1080', source: 'bound' },
      { name: 'control', address: '/run/portail/control', source: 'systemd' },
    ],
    acl: {
      file: '/etc/portail/filter.acl',
      hash: 'cd'.repeat(32),
      loadedAt: new Date('2024-05-01T09:00:00Z'),
      loaded: true,
    },
    explainAcl: null,
    activeConnections: 7,
    defaultBackend: 'par01',
    lastReload: {
      ok: false,
      at: new Date('2024-05-01T09:30:00Z'),
      diagnostics: 'filter.acl:3:5: error: expected "{"',
    },
  };

  async reload(): Promise<ReloadResult> {
    this.calls.push('reload');
    return this.nextReload;
  }
  status(): StatusInfo {
    this.calls.push('status');
    if (this.throwOnStatus) throw this.throwOnStatus;
    return { ...this.statusInfo, defaultBackend: this.defaultBackend };
  }
  listBackends() {
    this.calls.push('listBackends');
    return this.backends.map((b) => ({
      id: b.id,
      current: b.id === this.defaultBackend,
      dynamic: b.dynamic,
      ...(b.spec ? { spec: b.spec } : {}),
    }));
  }
  setDefaultBackend(id: string | null): void {
    this.calls.push(`setDefaultBackend:${id}`);
    if (id !== null && !this.backends.some((b) => b.id === id)) {
      throw new BackendNotFound(
        id,
        this.backends.map((b) => b.id),
      );
    }
    this.defaultBackend = id;
  }
  updateDynamicBackend(id: string, spec: BackendSpec): void {
    this.calls.push(`updateDynamicBackend:${id}`);
    const b = this.backends.find((x) => x.id === id);
    if (!b)
      throw new BackendNotFound(
        id,
        this.backends.map((x) => x.id),
      );
    if (!b.dynamic) throw new ImmutableBackend(id);
    if (!/^[^:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/.test(spec.targetAddress)) {
      throw new InvalidBackend(`"${spec.targetAddress}": expected HOST:PORT`);
    }
    b.spec = spec;
  }
  explain(req: ExplainRequest): ExplainResult {
    this.calls.push('explain');
    this.explainRequests.push(req);
    if (req.host === 'bad..host') throw new InvalidRequest('"bad..host" is not a valid host name');
    return this.explainAnswer;
  }
  recentDenials(uid: number | null, last: number): DenialRecord[] {
    this.calls.push('recentDenials');
    this.denialQueries.push([uid, last]);
    return this.denials.filter((d) => uid === null || d.uid === uid).slice(-last);
  }
}

export interface TestServer {
  dir: string;
  path: string;
  backend: FakeBackend;
  control: ControlServer;
  refused: { method: string; creds: PeerCred | null }[];
  errors: unknown[];
  close(): Promise<void>;
}

/** A control server on a fresh unix socket (folder and socket open to everyone). */
export async function startServer(
  over: Partial<ControlServerOptions> & { backend?: FakeBackend } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portail-rpc-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'control');
  const backend = over.backend ?? new FakeBackend();
  const refused: TestServer['refused'] = [];
  const errors: unknown[] = [];
  const listener = await bindControlSocket(path);
  const control = createControlServer({
    authorize: () => true,
    onRefused: (call, creds) => refused.push({ method: call.method, creds }),
    onError: (e) => errors.push(e),
    ...over,
    backend,
  });
  control.attach(listener);
  return {
    dir,
    path,
    backend,
    control,
    refused,
    errors,
    async close() {
      control.close();
      await new Promise<void>((r) => listener.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A client that writes raw bytes and reads NUL-terminated replies. */
export class RawClient {
  private readonly decoder = new VarlinkDecoder(64 * 1024 * 1024);
  private readonly replies: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const d of this.decoder.push(chunk)) {
        if (d.ok) this.replies.push(d.message);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  write(data: Buffer | string): void {
    this.socket.write(data);
  }

  send(message: Record<string, unknown>): void {
    this.socket.write(encodeMessage(message as { method: string }));
  }

  /** The next reply; rejects if the connection closes first or after timeoutMs. */
  async next(timeoutMs = 3000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no reply');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.replies.shift() as Record<string, unknown>;
  }

  async call(
    method: string,
    parameters?: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    this.send(parameters === undefined ? { method } : { method, parameters });
    return this.next();
  }

  /** Resolves once the server has closed the connection. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('still open');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
