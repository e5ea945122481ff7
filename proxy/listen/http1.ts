// HTTP/1.1 front-end: node's http.Server parses (fed with the detected socket through
// emit('connection'), never listening itself) with bounds on the request head;
// CONNECT (authority-form only) goes to pipeline.tunnel, absolute-form `http://`
// requests to pipeline.forward with keep-alive. Addressed to the proxy itself, only
// `GET /proxy.pac` is answered (the proxy auto-config, docs/usage.md "Browsers and
// desktops"); anything else is a 400.
import http from 'node:http';
import type { Socket } from 'node:net';
import { formatHostPort } from '../../common/host-port.js';
import { type PacEntry, pacScript } from '../../common/pac.js';
import { answerAndClose } from './close.js';
import type { FrontEndContext, HandshakeLimits } from './frontend.js';
import { forwardHttp, sendRefusal } from './http-forward.js';
import { rawResponse, refusalAnswer } from './http-refusal.js';
import { parseAuthority } from './target.js';
import { runTunnel } from './tunnel.js';

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1');
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/;

interface ConnectionState {
  ctx: FrontEndContext;
  /** Requests received whose response is not finished yet. */
  inFlight: number;
  tunnelled: boolean;
}

export interface Http1FrontEnd {
  serve(socket: Socket, ctx: FrontEndContext): void;
  /** handshake-timeout changed by a reload. */
  setTimeout(ms: number): void;
}

export function createHttp1FrontEnd(
  limits: HandshakeLimits,
  handshakeTimeoutMs: number,
  /** `[pac] direct`, read at each /proxy.pac request (a reload applies at once). */
  pacDirect: () => readonly PacEntry[] = () => [],
): Http1FrontEnd {
  const states = new WeakMap<Socket, ConnectionState>();
  const parseErrors = new WeakSet<Socket>();
  const server = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    requireHostHeader: false,
    // Our own deadline (handshakeStart) bounds idle keep-alive and slow heads; this
    // only advertises it in the Keep-Alive field.
    keepAliveTimeout: handshakeTimeoutMs,
    requestTimeout: 0,
    joinDuplicateHeaders: false,
  });
  // Node drops fields beyond maxHeadersCount silently; one more lets us see the excess.
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  const tooManyHeaders = (req: http.IncomingMessage) =>
    req.rawHeaders.length / 2 > limits.maxHeaderCount;

  const onRequest = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    expectsContinue: boolean,
  ) => {
    const st = states.get(req.socket);
    if (st === undefined) {
      req.socket.destroy();
      return;
    }
    st.inFlight++;
    st.ctx.handshakeDone();
    res.once('close', () => {
      st.inFlight--;
      if (st.inFlight === 0 && !st.tunnelled && !req.socket.destroyed) st.ctx.handshakeStart();
    });
    // Refused before the pipeline saw it: audited as malformed (rate-limited).
    const bad = (message: string, status?: number) => {
      st.ctx.reportMalformed('http', message);
      sendRefusal(req, res, { reason: 'bad-request', message }, status);
    };
    if (tooManyHeaders(req)) {
      res.shouldKeepAlive = false;
      bad('too many header fields', 431);
      return;
    }
    const target0 = req.url ?? '';
    if (target0 === '/proxy.pac' || target0.startsWith('/proxy.pac?')) {
      servePac(req, res, st.ctx, pacDirect());
      return;
    }
    const m = ABSOLUTE_FORM.exec(target0);
    if (m === null) {
      bad('this is a proxy: name the destination (GET http://host/path, or CONNECT host:port)');
      return;
    }
    const scheme = m[1].toLowerCase();
    if (scheme !== 'http') {
      bad(
        scheme === 'https'
          ? 'https:// requests must use CONNECT (tunnel) through this proxy'
          : `unsupported scheme "${scheme}"`,
      );
      return;
    }
    const target = parseAuthority(m[2], 80);
    if (target === null || m[2] === '') {
      bad('malformed host in the request URI');
      return;
    }
    // Dot segments resolved and unsafe characters encoded: the ACL checks exactly the
    // path that is sent on.
    const rest = m[3] === '' ? '/' : m[3].startsWith('?') ? `/${m[3]}` : m[3];
    let url: URL;
    try {
      url = new URL(`http://portail.invalid${rest}`);
    } catch {
      bad('malformed request URI');
      return;
    }
    const facts = {
      method: req.method ?? 'GET',
      scheme,
      path: url.pathname,
      query: url.search.slice(1),
    };
    forwardHttp(req, res, st.ctx, target, facts, url.pathname + url.search, expectsContinue).catch(
      (err: unknown) => {
        st.ctx.reportError(err, 'forward');
        res.destroy();
      },
    );
  };
  server.on('request', (req, res) => onRequest(req, res, false));
  // 100-continue is answered only once the destination is allowed (http-forward.ts).
  server.on('checkContinue', (req, res) => onRequest(req, res, true));

  server.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const st = states.get(socket);
    if (st === undefined) {
      socket.destroy();
      return;
    }
    st.tunnelled = true;
    st.ctx.handshakeDone();
    socket.setTimeout(0);
    const refuse = (refusal: Parameters<typeof refusalAnswer>[0], status?: number) =>
      answerAndClose(
        socket,
        rawResponse(
          refusalAnswer(refusal, { isConnect: true, accept: req.headers.accept, status }),
        ),
      );
    if (tooManyHeaders(req)) {
      st.ctx.reportMalformed('http', 'CONNECT with too many header fields');
      refuse({ reason: 'bad-request', message: 'too many header fields' }, 431);
      return;
    }
    const target = parseAuthority(req.url ?? '', 443);
    if (target === null) {
      const message = 'CONNECT needs an authority: host:port or [v6]:port';
      st.ctx.reportMalformed('http', message);
      refuse({ reason: 'bad-request', message });
      return;
    }
    // Bytes the client sent after its request head belong to the tunnel.
    if (head.length > 0) socket.unshift(head);
    runTunnel(
      st.ctx,
      { target, protocol: 'http', cmd: 'connect', client: st.ctx.client, cert: st.ctx.cert },
      {
        accept() {
          socket.write(ESTABLISHED);
          return socket;
        },
        reject(refusal) {
          refuse(refusal);
        },
      },
    );
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (parseErrors.has(socket)) return;
    parseErrors.add(socket);
    // A response in progress cannot be followed by an error answer; nor can a dead socket.
    const busy = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
    if (!socket.writable || busy || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : 400;
    const message = status === 431 ? 'request header too large' : 'malformed HTTP request';
    states.get(socket)?.ctx.reportMalformed('http', `${message} (${err.code ?? err.message})`);
    const answer = refusalAnswer(
      { reason: 'bad-request', message },
      { isConnect: false, accept: undefined, status },
    );
    socket.end(rawResponse(answer));
    const timer = setTimeout(() => socket.destroy(), 2000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });

  return {
    setTimeout(ms) {
      server.keepAliveTimeout = ms;
    },
    serve(socket, ctx) {
      states.set(socket, { ctx, inFlight: 0, tunnelled: false });
      server.emit('connection', socket);
    },
  };
}

/** GET (or HEAD) /proxy.pac: the script naming the address this client reached. */
function servePac(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: FrontEndContext,
  direct: readonly PacEntry[],
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.shouldKeepAlive = false;
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('portail: /proxy.pac is read with GET\n');
    return;
  }
  const here = formatHostPort({ host: ctx.client.localIp, port: ctx.client.localPort });
  const body = pacScript(direct, here);
  res.writeHead(200, {
    'content-type': 'application/x-ns-proxy-autoconfig',
    'content-length': Buffer.byteLength(body),
    // The [pac] section may change at the next reload.
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
