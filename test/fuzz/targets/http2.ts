// Fuzz target "http2": structure-aware HTTP/2 inputs (../h2-input.ts) fed to the real
// listener and HTTP/2 front-end over in-memory connections, with a pipeline that
// accepts, denies or refuses at random delays, as the real one may. Tunnels it accepts
// echo and are closed after a short life, standing for the relay's idle-timeout.

import type { Socket } from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import { CLOSE_GRACE_MS } from '../../../proxy/listen/http2.js';
import { createProxyListener } from '../../../proxy/listen/listener.js';
import type { Pipeline, ProxyRequest } from '../../../proxy/types.js';
import { ACCEPTED_PORT, DENIED_PORT, type H2Input, h2Input } from '../h2-input.js';
import { memPair } from '../mem-socket.js';
import type { FuzzReport, FuzzTarget } from '../target.js';

export interface Http2TargetOptions {
  /** handshake-timeout of the listener under test (default 100 ms). */
  handshakeTimeoutMs?: number;
  /** How long an accepted tunnel lives (default 100 ms). */
  tunnelLifeMs?: number;
}

export function createHttp2Target(opts: Http2TargetOptions = {}): FuzzTarget<H2Input> {
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 100;
  const tunnelLifeMs = opts.tunnelLifeMs ?? 100;
  const internalErrors: string[] = [];
  let decisions = 0;
  /** Connections not closed yet, with their input (to show a leak's cause). */
  const live = new Map<object, H2Input>();

  const pipeline: Pipeline = {
    async tunnel(req: ProxyRequest) {
      // Answers at different moments: at once, after a microtask, after an I/O turn.
      const n = decisions++;
      if (n % 3 === 1) await Promise.resolve();
      else if (n % 3 === 2) await tick();
      const port = req.target.port;
      if (port !== ACCEPTED_PORT) {
        req.reject(
          port === DENIED_PORT
            ? { reason: 'denied', message: 'fuzz: denied' }
            : { reason: 'refused', message: 'fuzz: refused' },
        );
        return;
      }
      let stream: ReturnType<ProxyRequest['accept']>;
      try {
        stream = req.accept({ address: '127.0.0.1', port: ACCEPTED_PORT });
      } catch {
        return; // as the real pipeline: the client went away before the reply
      }
      stream.on('error', () => {});
      stream.pipe(stream);
      const life = setTimeout(() => stream.destroy(), tunnelLifeMs);
      stream.once('close', () => clearTimeout(life));
    },
    async forward() {
      return { ok: false, refusal: { reason: 'bad-request', message: 'fuzz: no forward' } };
    },
    associate() {
      return { reason: 'unsupported-command', message: 'fuzz: no UDP' };
    },
  };

  const listener = createProxyListener({
    pipeline,
    handshakeTimeoutMs,
    maxConnections: 1_000_000,
    onError: (err, where) => internalErrors.push(`${where}: ${err.stack ?? err.message}`),
  });

  return {
    name: 'http2',
    arbitrary: h2Input,
    async run(input) {
      const { server, client } = memPair();
      live.set(server, input);
      server.once('close', () => live.delete(server));
      listener.handleSocket(server as unknown as Socket);
      for (const chunk of input.chunks) {
        client.write(chunk);
        await tick();
      }
      await tick();
      if (input.ending === 'reset') client.destroy();
      else if (input.ending === 'fin') client.end();
      // 'linger': the client stays, silent, without its FIN: the deadlines must act.
      if (input.ending !== 'reset') client.resume();
    },
    get open() {
      return listener.active;
    },
    async finish(): Promise<FuzzReport> {
      // The longest chain of deadlines: a refused answer held back (grace), then idle
      // (handshake-timeout), then GOAWAY and its grace; or a tunnel's life then the same.
      const bound = tunnelLifeMs + 2 * CLOSE_GRACE_MS + handshakeTimeoutMs + 1000;
      const start = Date.now();
      while (listener.active > 0 && Date.now() - start < bound) {
        await new Promise((r) => setTimeout(r, 20));
      }
      return {
        internalErrors: [...internalErrors],
        leaks: listener.active,
        leaked: [...live.values()].slice(0, 5).map((i) => this.describe(i)),
        drainMs: Date.now() - start,
      };
    },
    describe(input) {
      return JSON.stringify({
        ending: input.ending,
        chunks: input.chunks.map((c) => c.toString('hex')),
      });
    },
  };
}
