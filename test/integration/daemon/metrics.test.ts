// The real daemon's `/metrics` endpoint (docs/reference/metrics.md): counters that move
// with real SOCKS5 and HTTP traffic, OpenMetrics negotiation, everything but GET/HEAD
// /metrics refused, promtool's lint, a bind failure that is fatal, a reload that cannot
// move the endpoint, and a real Prometheus scraping it.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  curl,
  freePort,
  type Owner,
  requireTool,
  sleep,
  startProcess,
  tmpDir,
} from '../../harness/index.js';
import { origin, socks5Connect, startGateway, tlsConnect } from '../gateway/gateway.js';
import { echo, PORTAIL, readBytes, socksConnect, startPortail, tcpServer } from './portail.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  port: number,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/metrics',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The value of one sample (exact label set, in exposition order), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function withMetrics(t: Owner, acl: string) {
  const metricsPort = await freePort();
  const p = await startPortail(t, {
    acl,
    config: `[metrics]\nlisten = "127.0.0.1:${metricsPort}"\n`,
  });
  assert.match(
    p.proc.output(),
    new RegExp(`metrics at http://127\\.0\\.0\\.1:${metricsPort}/metrics`),
  );
  return { p, metricsPort };
}

test('after real SOCKS5 and HTTP traffic, allowed and denied, the counters moved', async (t) => {
  if (!requireTool(t, 'curl')) return;
  const echoSrv = await tcpServer(t, echo);
  const web = await origin(t);
  const { p, metricsPort } = await withMetrics(
    t,
    `policy open { when port == ${echoSrv.port} or port == ${web} action allow }\npolicy shut { action deny }\n`,
  );
  const before = (await request(metricsPort)).body;
  assert.equal(sample(before, 'portail_decisions_total{action="allow",policy="open"}'), undefined);

  // SOCKS5 allowed: 5000 bytes each way, then closed.
  const s = await socksConnect(p.port, '127.0.0.1', echoSrv.port);
  s.write(Buffer.alloc(5000, 1));
  await readBytes(s, 5000);
  s.end();
  await p.waitRecord((r) => r.event === 'close' && r.port === echoSrv.port);
  // SOCKS5 denied.
  await assert.rejects(socksConnect(p.port, '127.0.0.1', 9));
  // HTTP allowed (forward) and denied (CONNECT).
  const ok = await curl(['-x', `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${web}/a`]);
  assert.equal(ok.stdout, 'hello from origin', ok.stderr);
  const no = await curl([
    '-x',
    `http://127.0.0.1:${p.port}`,
    '--proxytunnel',
    'http://127.0.0.1:9/',
  ]);
  assert.notEqual(no.code, 0);
  await p.waitRecord((r) => r.event === 'close' && r.port === web);

  const after = await request(metricsPort);
  assert.equal(after.status, 200);
  assert.match(String(after.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const m = after.body;
  assert.equal(sample(m, 'portail_decisions_total{action="allow",policy="open"}'), 2);
  assert.equal(sample(m, 'portail_decisions_total{action="deny",policy="shut"}'), 2);
  assert.ok((sample(m, 'portail_bytes_total{direction="up"}') ?? 0) >= 5000, m);
  assert.ok(
    (sample(m, 'portail_bytes_total{direction="down"}') ?? 0) >= 5000 + 'hello from origin'.length,
  );
  assert.equal(sample(m, 'portail_connections_accepted_total{protocol="socks5"}'), 2);
  assert.equal(sample(m, 'portail_connections_accepted_total{protocol="http"}'), 2);
  assert.equal(sample(m, 'portail_acl_evaluation_seconds_count'), 4);
  assert.equal(sample(m, 'portail_connect_seconds_count{backend="direct"}'), 2);
  assert.equal(sample(m, 'portail_connections_active{protocol="tls"}'), 0);
  assert.ok((sample(m, 'portail_process_resident_memory_bytes') ?? 0) > 0, 'Node process metrics');
  // No host or user ever appears as a label value.
  assert.doesNotMatch(m, /127\.0\.0\.1/);

  // An exit that cannot be opened: an error by kind.
  const closedPort = await freePort();
  writeFileSync(p.aclPath, `policy open { when port == ${closedPort} action allow }\n`);
  p.signal('SIGHUP');
  await p.waitRecord((r) => r.event === 'reload' && r.result === 'ok');
  await assert.rejects(socksConnect(p.port, '127.0.0.1', closedPort));
  const later = (await request(metricsPort)).body;
  assert.equal(sample(later, 'portail_connect_errors_total{kind="refused"}'), 1);
  assert.equal(sample(later, 'portail_reloads_total{result="ok"}'), 1);
});

test('OpenMetrics when the Accept header asks for it; HEAD; everything else refused', async (t) => {
  const { metricsPort } = await withMetrics(t, 'policy all { action allow }\n');
  const om = await request(metricsPort, {
    headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' },
  });
  assert.equal(om.status, 200);
  assert.match(
    String(om.headers['content-type']),
    /^application\/openmetrics-text; version=1\.0\.0/,
  );
  assert.match(om.body, /# TYPE portail_decisions counter\n/);
  assert.match(om.body, /# EOF\n$/);
  // The next Prometheus-text scrape still has the counters' `_total` names.
  const text = await request(metricsPort, { headers: { accept: 'text/plain' } });
  assert.match(text.body, /# TYPE portail_decisions_total counter\n/);
  assert.doesNotMatch(text.body, /# EOF/);
  const q0 = await request(metricsPort, {
    headers: { accept: 'application/openmetrics-text;q=0,text/plain' },
  });
  assert.match(String(q0.headers['content-type']), /^text\/plain/);

  const head = await request(metricsPort, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  const post = await request(metricsPort, { method: 'POST', body: 'x'.repeat(100) });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  assert.equal((await request(metricsPort, { path: '/' })).status, 404);
  assert.equal((await request(metricsPort, { path: '/metrics/x' })).status, 404);
  const withBody = await request(metricsPort, {
    method: 'GET',
    headers: { 'content-length': '5' },
    body: 'hello',
  });
  assert.equal(withBody.status, 400);
  // A client that sends nothing is closed after the request timeout, not kept forever.
  const idle = net.connect(metricsPort, '127.0.0.1');
  idle.on('error', () => {});
  const start = Date.now();
  await once(idle, 'close');
  assert.ok(Date.now() - start < 15_000);
});

test('promtool check metrics accepts the exposition', async (t) => {
  const promtool = requireTool(t, 'promtool', 'prometheus');
  if (!promtool) return;
  const echoSrv = await tcpServer(t, echo);
  const { p, metricsPort } = await withMetrics(t, 'policy all { action allow }\n');
  const s = await socksConnect(p.port, '127.0.0.1', echoSrv.port);
  s.end();
  await p.waitRecord((r) => r.event === 'close');
  // promtool lints the Prometheus text format only; the OpenMetrics form is parsed by the
  // real Prometheus below (it asks for OpenMetrics first).
  for (const accept of ['text/plain']) {
    const body = (await request(metricsPort, { headers: { accept } })).body;
    const lint: SpawnSyncReturns<string> = spawnSync(promtool, ['check', 'metrics'], {
      input: body,
      encoding: 'utf8',
    });
    assert.equal(lint.status, 0, `${accept}: ${lint.stdout}${lint.stderr}`);
  }
  // The lint fails on a broken exposition: the check above can fail.
  const bad = spawnSync(promtool, ['check', 'metrics'], {
    input: '# TYPE x counter\nx{a="1" 1\n',
    encoding: 'utf8',
  });
  assert.notEqual(bad.status, 0);
});

test('a metrics address that cannot be bound is fatal at start, naming the key', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'filter.acl'), 'policy all { action allow }\n');
  writeFileSync(
    join(dir, 'portail.toml'),
    `filter-acl-rules-path = "filter.acl"\n[metrics]\nlisten = "127.0.0.1:${port}"\n`,
  );
  const r = spawnSync(
    process.execPath,
    [
      PORTAIL,
      'daemon',
      '--config',
      join(dir, 'portail.toml'),
      '--bind-proxy-address',
      '127.0.0.1:0',
    ],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    new RegExp(
      `\\[metrics\\] listen: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`,
    ),
  );
});

test('a reload that moves or removes [metrics] listen is refused, naming the key', async (t) => {
  const { p, metricsPort } = await withMetrics(t, 'policy all { action allow }\n');
  const other = await freePort();
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(p.configPath, 'utf8');
  writeFileSync(p.configPath, text.replace(`127.0.0.1:${metricsPort}`, `127.0.0.1:${other}`));
  p.signal('SIGHUP');
  const r = await p.waitRecord((x) => x.event === 'reload' && x.result === 'failed');
  assert.match(
    String(r.reason),
    new RegExp(
      `\\[metrics\\] listen \\(127\\.0\\.0\\.1:${metricsPort} -> 127\\.0\\.0\\.1:${other}\\)`,
    ),
  );
  // Still served where it was, and the failed reload is counted.
  const m = (await request(metricsPort)).body;
  assert.equal(sample(m, 'portail_reloads_total{result="failed"}'), 1);
});

test('a real Prometheus scrapes the daemon and sees portail_decisions_total move', async (t) => {
  const prometheus = requireTool(t, 'prometheus');
  if (!prometheus) return;
  const echoSrv = await tcpServer(t, echo);
  const { p, metricsPort } = await withMetrics(t, 'policy all { action allow }\n');
  const dir = tmpDir(t);
  const promPort = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: portail\n    static_configs:\n      - targets: ["127.0.0.1:${metricsPort}"]\n`,
  );
  await startProcess(
    prometheus,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    {
      t,
      name: 'prometheus',
      readyWhen: /Server is ready to receive web requests/,
      killGraceMs: 3000,
    },
  );
  const query = async (): Promise<number | undefined> => {
    const r = await request(promPort, {
      path: `/api/v1/query?query=${encodeURIComponent('sum(portail_decisions_total)')}`,
    });
    const j = JSON.parse(r.body) as { data: { result: Array<{ value: [number, string] }> } };
    const v = j.data.result[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  };
  const until = async (pred: (v: number | undefined) => boolean) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const v = await query();
      if (pred(v)) return v;
      if (Date.now() > deadline) throw new Error(`Prometheus answers ${v}`);
      await sleep(250);
    }
  };
  // Series known from the start are there at 0 before any request.
  const first = await until((v) => v !== undefined);
  assert.equal(first, 0);
  for (let i = 0; i < 3; i++) {
    const s = await socksConnect(p.port, '127.0.0.1', echoSrv.port);
    s.end();
  }
  await until((v) => v !== undefined && v >= 3);
  const up = await request(promPort, { path: `/api/v1/query?query=${encodeURIComponent('up')}` });
  assert.match(up.body, /"value":\[[0-9.]+,"1"\]/);
});

test('the same endpoint on a gateway: TLS connections counted as tls', async (t) => {
  if (!requireTool(t, 'openssl')) return;
  const echoSrv = await tcpServer(t, echo);
  const metricsPort = await freePort();
  const gw = await startGateway(t, {
    acl: 'policy all { when client.auth == "tls" action allow }\n',
    top: `[metrics]\nlisten = "127.0.0.1:${metricsPort}"\n`,
  });
  const s = await tlsConnect(gw.port, gw.ca);
  assert.equal(await socks5Connect(s, '127.0.0.1', echoSrv.port), 0x00);
  const open = (await request(metricsPort)).body;
  assert.equal(sample(open, 'portail_connections_accepted_total{protocol="tls"}'), 1);
  assert.equal(sample(open, 'portail_connections_active{protocol="tls"}'), 1);
  // The decrypted SOCKS5 inside is not counted a second time.
  assert.equal(sample(open, 'portail_connections_accepted_total{protocol="socks5"}'), 0);
  assert.equal(sample(open, 'portail_decisions_total{action="allow",policy="all"}'), 1);
  s.destroy();
  await gw.waitRecord((r) => r.event === 'close');
  const deadline = Date.now() + 5000;
  while (
    sample((await request(metricsPort)).body, 'portail_connections_active{protocol="tls"}') !== 0
  ) {
    assert.ok(Date.now() < deadline, 'the TLS connection is still counted open');
    await sleep(50);
  }
});
