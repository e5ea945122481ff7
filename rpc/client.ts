// A small Varlink client for portailctl and `portail rpc`: one connection, calls
// answered in order.
import net from 'node:net';
import {
  asReply,
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeMessage,
  VarlinkDecoder,
  VarlinkError,
} from './varlink-codec.js';

/** The daemon could not be reached (no socket, nobody listening, no permission, timeout). */
export class UnreachableError extends Error {
  constructor(
    readonly path: string,
    override readonly cause: Error,
  ) {
    super(`cannot reach the portail daemon at ${path}: ${describe(cause)}`);
    this.name = 'UnreachableError';
  }
}

/** The connection broke or the daemon answered something that is not Varlink. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

function describe(err: Error & { code?: string }): string {
  switch (err.code) {
    case 'ENOENT':
      return 'no such socket (is the daemon running?)';
    case 'ECONNREFUSED':
      return 'connection refused (is the daemon running?)';
    case 'EACCES':
      return 'permission denied on the socket';
    case 'ETIMEDOUT':
      return 'timed out';
    default:
      return err.message;
  }
}

interface Pending {
  resolve(parameters: Record<string, unknown>): void;
  reject(err: Error): void;
}

export class VarlinkClient {
  private readonly decoder = new VarlinkDecoder(DEFAULT_MAX_MESSAGE_BYTES * 16);
  private readonly pending: Pending[] = [];
  private broken: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const d of this.decoder.push(chunk)) {
        if (!d.ok) {
          this.fail(new ProtocolError(`invalid reply from the daemon (${d.failure.kind})`));
          return;
        }
        const reply = asReply(d.message);
        const waiter = this.pending.shift();
        if (!waiter) continue;
        if (!reply) waiter.reject(new ProtocolError('invalid reply from the daemon'));
        else if (reply.error) waiter.reject(new VarlinkError(reply.error, reply.parameters));
        else waiter.resolve(reply.parameters ?? {});
      }
    });
    socket.on('error', (e) =>
      this.fail(new ProtocolError(`connection to the daemon failed: ${e.message}`)),
    );
    socket.on('close', () => this.fail(new ProtocolError('the daemon closed the connection')));
  }

  static connect(path: string, timeoutMs = 10_000): Promise<VarlinkClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new UnreachableError(path, Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
        );
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new VarlinkClient(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new UnreachableError(path, e));
      });
    });
  }

  /** Calls `method`; resolves with the reply's parameters, rejects with a VarlinkError. */
  call(method: string, parameters: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encodeMessage({ method, parameters }));
    });
  }

  close(): void {
    this.broken ??= new ProtocolError('client closed');
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.broken ??= err;
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

/** Connects, makes one call, closes. */
export async function callOnce(
  path: string,
  method: string,
  parameters: Record<string, unknown> = {},
  timeoutMs?: number,
): Promise<Record<string, unknown>> {
  const client = await VarlinkClient.connect(path, timeoutMs);
  try {
    return await client.call(method, parameters);
  } finally {
    client.close();
  }
}
