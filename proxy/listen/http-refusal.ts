// HTTP answers to a refusal, shared by HTTP/1.1 and HTTP/2 (docs/reference/wire.md,
// "Refusal bodies"): the status for each reason, and a short body that is the refusal's
// message, as text/plain unless the client's Accept names text/html. Refusals are never
// cached by the client.
import { STATUS_CODES } from 'node:http';
import type { Refusal, RejectReason } from '../types.js';

export function statusFor(refusal: Refusal, isConnect: boolean): number {
  // A redirect can only be followed by a plain HTTP client: a CONNECT client would
  // not show a 302 to its user, so it gets a 403 naming the URI.
  if (refusal.redirect !== undefined) return isConnect ? 403 : 302;
  return statusForReason(refusal.reason);
}

export function statusForReason(reason: RejectReason): number {
  switch (reason) {
    case 'denied':
      return 403;
    case 'bad-request':
    case 'unsupported-address':
      return 400;
    case 'unsupported-command':
      return 501;
    case 'timeout':
      return 504;
    case 'overloaded':
      return 503;
    default:
      // dns, unreachable, refused, internal: the proxy could not get an answer upstream.
      return 502;
  }
}

/** RFC 9209 Proxy-Status error types, so that tools can tell refusals apart. */
function proxyStatusError(reason: RejectReason): string {
  switch (reason) {
    case 'denied':
      return 'http_request_denied';
    case 'dns':
      return 'dns_error';
    case 'unreachable':
      return 'destination_unavailable';
    case 'refused':
      return 'connection_refused';
    case 'timeout':
      return 'connection_timeout';
    case 'bad-request':
    case 'unsupported-address':
    case 'unsupported-command':
      return 'http_request_error';
    default:
      return 'proxy_internal_error';
  }
}

/** Does the Accept header name text/html (with a non-zero weight)? */
export function acceptsHtml(accept: string | string[] | undefined): boolean {
  const text = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  for (const range of text.split(',')) {
    const [type, ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    if (type !== 'text/html') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A URI from the ACL may hold non-ASCII text or spaces: percent-encode them for a header. */
function headerSafeUri(uri: string): string {
  return uri.replace(/[^\x21-\x7e]/gu, (c) => {
    try {
      return encodeURIComponent(c);
    } catch {
      return ''; // lone surrogate
    }
  });
}

export interface RefusalAnswer {
  status: number;
  /** Header fields, Content-Length included. */
  headers: Record<string, string>;
  body: Buffer;
}

export function refusalAnswer(
  refusal: Refusal,
  opts: { isConnect: boolean; accept: string | string[] | undefined; status?: number },
): RefusalAnswer {
  const status = opts.status ?? statusFor(refusal, opts.isConnect);
  const message = refusal.message.trim() || (STATUS_CODES[status] ?? 'refused');
  const uri = refusal.redirect === undefined ? undefined : headerSafeUri(refusal.redirect);
  const html = acceptsHtml(opts.accept);
  let body: string;
  if (html) {
    const title = `${status} ${STATUS_CODES[status] ?? ''}`.trim();
    const link =
      uri === undefined ? '' : `<p><a href="${escapeHtml(uri)}">${escapeHtml(uri)}</a></p>`;
    body =
      `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
      `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${link}</body></html>\n`;
  } else {
    body = uri === undefined || message.includes(uri) ? `${message}\n` : `${message}\n${uri}\n`;
  }
  const bytes = Buffer.from(body, 'utf8');
  const headers: Record<string, string> = {
    'Content-Type': html ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
    'Content-Length': String(bytes.length),
    'Cache-Control': 'no-store',
    'Proxy-Status': `portail; error=${proxyStatusError(refusal.reason)}`,
  };
  if (uri !== undefined && status === 302) headers.Location = uri;
  return { status, headers, body: bytes };
}

/** A complete HTTP/1.1 response for a raw socket (after CONNECT, or a parse error). */
export function rawResponse(answer: RefusalAnswer): Buffer {
  let head = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) head += `${name}: ${value}\r\n`;
  head += 'Connection: close\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), answer.body]);
}
