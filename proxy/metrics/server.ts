// The `/metrics` endpoint (docs/reference/metrics.md, docs/security.md "The metrics
// endpoint"): `GET` and `HEAD /metrics` only, no request body ever read, short
// timeouts, few connections and few scrapes at a time. Whoever can reach the address can
// read the metrics: bind it to loopback or a management network.
import http from 'node:http';
import type { Metrics } from './metrics.js';

/** Connections open at once; more are closed by the kernel-side accept. */
export const MAX_CONNECTIONS = 16;
/** Scrapes being rendered at once; more get 503. */
export const MAX_SCRAPES = 4;
/** Headers, the whole request, and an idle keep-alive connection. */
export const TIMEOUT_MS = 5000;

const TEXT = 'text/plain; charset=utf-8';

/** True when the Accept header prefers OpenMetrics to the Prometheus text format. */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  let om = -1;
  let text = -1;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      if (p.startsWith('q=')) {
        const v = Number(p.slice(2));
        q = Number.isFinite(v) ? v : 0;
      }
    }
    if (type === 'application/openmetrics-text') om = Math.max(om, q);
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text;
}

export function createMetricsServer(
  metrics: Pick<Metrics, 'render'>,
  onError: (err: Error) => void,
): http.Server {
  let scraping = 0;
  const server = http.createServer(
    {
      requestTimeout: TIMEOUT_MS,
      headersTimeout: TIMEOUT_MS,
      keepAliveTimeout: TIMEOUT_MS,
      // How often the timeouts above are enforced (Node's default: 30 s).
      connectionsCheckingInterval: 1000,
      maxHeaderSize: 8192,
    },
    (req, res) => {
      const cl = req.headers['content-length'];
      const hasBody =
        req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
      const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
        // A request with a body is never read: its connection is not reused.
        if (hasBody) res.shouldKeepAlive = false;
        res.writeHead(status, {
          'content-type': TEXT,
          'content-length': Buffer.byteLength(text),
          ...headers,
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      };
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') return answer(404, 'not found: metrics are at /metrics\n');
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return answer(405, 'method not allowed\n', { allow: 'GET, HEAD' });
      if (hasBody) return answer(400, 'a scrape has no body\n');
      if (scraping >= MAX_SCRAPES)
        return answer(503, 'too many scrapes at once\n', { 'retry-after': '1' });
      scraping++;
      metrics
        .render(wantsOpenMetrics(req.headers.accept))
        .then(
          ({ contentType, body }) => {
            if (res.destroyed) return;
            res.writeHead(200, {
              'content-type': contentType,
              'content-length': Buffer.byteLength(body),
              'cache-control': 'no-store',
            });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          (err: Error) => {
            onError(err);
            if (!res.destroyed) answer(500, 'cannot render the metrics\n');
          },
        )
        .finally(() => {
          scraping--;
        });
    },
  );
  server.maxConnections = MAX_CONNECTIONS;
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}
