// Plain absolute-form HTTP forwarding (`GET http://host/path`): the pipeline decides
// and connects, then this file does the exchange on the upstream it got — request in
// origin-form without hop-by-hop fields, response streamed back — so that the client
// connection stays alive for its next request. One upstream per request: each request
// is a separate decision.
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { formatHostPort } from '../../common/host-port.js';
import type { ForwardOutcome, HttpFacts, Target } from '../types.js';
import type { FrontEndContext } from './frontend.js';
import { refusalAnswer } from './http-refusal.js';
import { INTERNAL_REFUSAL } from './tunnel.js';

/** Fields that describe one connection, never forwarded (RFC 9110 7.6.1), plus ours. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
/** Request fields rewritten here: Host comes from the URI, Expect was answered by us. */
const REQUEST_REWRITTEN = new Set(['host', 'expect']);

const VIA = '1.1 portail';

/** Raw header list without hop-by-hop fields and those the Connection field names. */
export function endToEndHeaders(raw: readonly string[], drop: ReadonlySet<string>): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1].split(',')) named.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || drop.has(name) || named.has(name)) continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

export function hostHeader(target: Target): string {
  return target.port === 80 ? formatHostPort(target).replace(/:80$/, '') : formatHostPort(target);
}

export function sendRefusal(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  refusal: Parameters<typeof refusalAnswer>[0],
  status?: number,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const answer = refusalAnswer(refusal, { isConnect: false, accept: req.headers.accept, status });
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

export async function forwardHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: FrontEndContext,
  target: Target,
  facts: HttpFacts,
  pathAndQuery: string,
  expectsContinue: boolean,
): Promise<void> {
  let outcome: ForwardOutcome;
  try {
    outcome = await ctx.pipeline.forward({
      target,
      protocol: 'http',
      cmd: 'forward',
      client: ctx.client,
      cert: ctx.cert,
      http: facts,
    });
  } catch (err) {
    ctx.reportError(err, 'forward');
    outcome = { ok: false, refusal: INTERNAL_REFUSAL };
  }
  if (!outcome.ok) {
    sendRefusal(req, res, outcome.refusal);
    return;
  }
  const { upstream, finish } = outcome;
  if (res.destroyed || req.destroyed) {
    upstream.destroy();
    finish({ bytesUp: 0, bytesDown: 0, closeReason: 'client_error' });
    return;
  }
  // Only now, with the destination allowed and connected, may the client send its body.
  if (expectsContinue) res.writeContinue();
  exchange(req, res, ctx, target, pathAndQuery, upstream, finish);
}

function exchange(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: FrontEndContext,
  target: Target,
  pathAndQuery: string,
  upstream: Duplex,
  finish: Extract<ForwardOutcome, { ok: true }>['finish'],
): void {
  let bodyUp = 0;
  let bodyDown = 0;
  let finished = false;
  const done = (closeReason: string) => {
    if (finished) return;
    finished = true;
    const counted = upstream instanceof net.Socket;
    const stats = {
      bytesUp: counted ? upstream.bytesWritten : bodyUp,
      bytesDown: counted ? upstream.bytesRead : bodyDown,
      closeReason,
    };
    upstream.destroy();
    finish(stats);
  };

  const headers = [
    'Host',
    hostHeader(target),
    ...endToEndHeaders(req.rawHeaders, REQUEST_REWRITTEN),
  ];
  // The client's framing is gone (node decoded it): a chunked body is chunked again.
  if (req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
  // One upstream per request: tell the origin so it need not wait for another.
  headers.push('Via', VIA, 'Connection', 'close');

  const upReq = http.request({
    createConnection: () => upstream as net.Socket,
    method: req.method,
    path: pathAndQuery,
    headers,
    setHost: false,
    maxHeaderSize: ctx.limits.maxResponseHeaderBytes,
  });

  req.on('data', (chunk: Buffer) => {
    bodyUp += chunk.length;
  });
  req.pipe(upReq);
  req.on('error', () => upReq.destroy());

  upReq.on('response', (ures) => {
    const out = endToEndHeaders(ures.rawHeaders, new Set());
    out.push('Via', VIA);
    try {
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage, out);
    } catch (err) {
      // A field node's parser accepted but its writer refuses: not forwardable.
      ctx.reportError(err, 'forward-response-head');
      ures.destroy();
      sendRefusal(req, res, {
        reason: 'internal',
        message: 'invalid response from the origin server',
      });
      done('upstream_error');
      return;
    }
    ures.on('data', (chunk: Buffer) => {
      bodyDown += chunk.length;
    });
    ures.pipe(res);
    ures.on('close', () => {
      // Cut short by the origin: the client must see a truncated response, not a complete one.
      if (!ures.complete) {
        res.destroy();
        done('upstream_error');
      }
    });
  });

  upReq.on('error', () => {
    if (!res.headersSent) {
      sendRefusal(req, res, {
        reason: 'unreachable',
        message: 'the origin server closed the connection or sent an invalid response',
      });
    } else {
      res.destroy();
    }
    done('upstream_error');
  });

  res.on('finish', () => done('completed'));
  res.on('close', () => {
    if (!res.writableFinished) {
      upReq.destroy();
      done('client_error');
    }
  });
}
