// The one fake allowed here: a Pipeline that records what the front-ends hand it and
// connects to real servers on loopback, so that these tests check the wire formats
// alone. (End-to-end tests with the real pipeline belong to the daemon's suite.)
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type {
  AssociationHandle,
  DatagramSession,
  ForwardOutcome,
  Pipeline,
  ProxyRequest,
  Refusal,
  Target,
} from '../../../proxy/types.js';

export type Recorded = Omit<ProxyRequest, 'accept' | 'reject'>;
/** undefined = allow; a Refusal = refuse with it. */
export type Policy = (req: Recorded) => Refusal | undefined;

/** Names the fake resolves itself, proving the name reached the pipeline unresolved. */
export const FAKE_HOSTS = new Map([
  ['echo.portail.test', '127.0.0.1'],
  ['xn--bcher-kva.portail.test', '127.0.0.1'],
]);

export interface Finished {
  bytesUp: number;
  bytesDown: number;
  closeReason: string;
}

function strip(req: Recorded): Recorded {
  const { target, protocol, cmd, client, http, cert } = req;
  return { target, protocol, cmd, client, http, cert };
}

export class FakePipeline implements Pipeline {
  readonly tunnels: Recorded[] = [];
  readonly forwards: Recorded[] = [];
  readonly datagrams: Recorded[] = [];
  readonly finished: Finished[] = [];
  policy: Policy = () => undefined;
  /** Delay before answering (to hold a request in the pipeline). */
  delayMs = 0;
  /** Open upstream sockets, destroyed by close(). */
  private readonly sockets = new Set<net.Socket>();

  async tunnel(req: ProxyRequest): Promise<void> {
    this.tunnels.push(strip(req));
    if (this.delayMs) await sleep(this.delayMs);
    const refusal = this.policy(req);
    if (refusal) {
      req.reject(refusal);
      return;
    }
    let upstream: net.Socket;
    try {
      upstream = await this.connect(req.target);
    } catch (err) {
      req.reject({ reason: 'refused', message: (err as Error).message });
      return;
    }
    let client: Duplex;
    try {
      client = req.accept({ address: upstream.localAddress ?? '', port: upstream.localPort ?? 0 });
    } catch {
      // As the real pipeline: the client went away before the reply.
      upstream.destroy();
      return;
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async forward(req: Recorded): Promise<ForwardOutcome> {
    this.forwards.push(strip(req));
    if (this.delayMs) await sleep(this.delayMs);
    const refusal = this.policy(req);
    if (refusal) return { ok: false, refusal };
    try {
      const upstream = await this.connect(req.target);
      return { ok: true, upstream, finish: (stats) => this.finished.push(stats) };
    } catch (err) {
      return { ok: false, refusal: { reason: 'refused', message: (err as Error).message } };
    }
  }

  /** Each destination goes through `policy` like a tunnel; direct exit, system resolver. */
  async associate(req: Recorded, _handle: AssociationHandle): Promise<DatagramSession | Refusal> {
    return {
      idleTimeoutMs: 0,
      decide: async (target) => {
        const r = { ...req, target };
        this.datagrams.push(strip(r));
        return this.policy(r) === undefined ? { send: true } : { send: false };
      },
      resolve: async (host) => [
        FAKE_HOSTS.get(host) ?? (await lookup(host, { all: true }))[0]?.address ?? host,
      ],
      undeliverable() {},
      closed() {},
    };
  }

  private connect(target: Target): Promise<net.Socket> {
    const host = FAKE_HOSTS.get(target.host) ?? target.host;
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port: target.port });
      s.once('connect', () => {
        s.removeListener('error', reject);
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
