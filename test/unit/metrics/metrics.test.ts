// The metrics room with a real state: what the pipeline reports shows in the exposition,
// label values stay bounded, histograms are cumulative, Accept negotiation, and the
// reload refusal of a moved endpoint (docs/reference/metrics.md).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { loadConfig } from '../../../proxy/config/index.js';
import { keysNeedingRestart } from '../../../proxy/config/restart-keys.js';
import { createMetrics, MAX_NAMES, NO_POLICY, OTHER } from '../../../proxy/metrics/metrics.js';
import { wantsOpenMetrics } from '../../../proxy/metrics/server.js';
import { createState } from '../../../proxy/state/index.js';
import { config, Lines, Records, tempDir } from '../pipeline/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());

const ZERO = { accepted: 0, active: 0 };

async function metricsFor(extra = 'watch-acl = false') {
  const acl = tmp.write(`m${Math.random()}.acl`, 'policy all { action allow }\n');
  const cfg = tmp.write(`m${Math.random()}.toml`, config(acl, extra));
  const state = await createState({ configPath: cfg, log: new Lines(), audit: new Records() });
  after(() => state.close());
  const byProtocol = {
    socks5: { accepted: 3, active: 1 },
    http1: { ...ZERO },
    http2: { ...ZERO },
    tls: { ...ZERO },
  };
  const m = createMetrics({
    listener: { byProtocol, refused: 2, handshakeTimeouts: 1 },
    pipeline: { active: 1 },
    state,
    refusals: { suppressed: 7 },
  });
  return { m, state, cfg, byProtocol };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('what the pipeline reports and the sources read at scrape time', async () => {
  const { m, state, byProtocol } = await metricsFor();
  m.observer.decision('allow', 'web', 12);
  m.observer.decision('allow', 'web', 3);
  m.observer.decision('deny', null, 700);
  m.observer.connected('direct', 4);
  m.observer.connected('corp', 300);
  m.observer.connectFailed('refused');
  m.observer.closed(100, 2000);
  m.handedOver(2);
  await state.reload('signal');
  const t = (await m.render(false)).body;
  assert.equal(value(t, 'portail_decisions_total{action="allow",policy="web"}'), 2);
  assert.equal(value(t, `portail_decisions_total{action="deny",policy="${NO_POLICY}"}`), 1);
  // A policy's other actions are not shown until they happen; "no policy" always is.
  assert.equal(value(t, 'portail_decisions_total{action="deny",policy="web"}'), undefined);
  assert.equal(value(t, `portail_decisions_total{action="allow",policy="${NO_POLICY}"}`), 0);
  assert.equal(value(t, 'portail_acl_evaluation_seconds_bucket{le="0.00001"}'), 1);
  assert.equal(value(t, 'portail_acl_evaluation_seconds_bucket{le="0.000025"}'), 2);
  assert.equal(value(t, 'portail_acl_evaluation_seconds_bucket{le="+Inf"}'), 3);
  assert.equal(value(t, 'portail_acl_evaluation_seconds_count'), 3);
  assert.equal(value(t, 'portail_connect_seconds_bucket{backend="direct",le="0.005"}'), 1);
  assert.equal(value(t, 'portail_connect_seconds_bucket{backend="corp",le="0.25"}'), 0);
  assert.equal(value(t, 'portail_connect_seconds_bucket{backend="corp",le="0.5"}'), 1);
  assert.equal(value(t, 'portail_connect_seconds_sum{backend="corp"}'), 0.3);
  assert.equal(value(t, 'portail_connect_errors_total{kind="refused"}'), 1);
  assert.equal(value(t, 'portail_connect_errors_total{kind="dns"}'), 0);
  assert.equal(value(t, 'portail_bytes_total{direction="up"}'), 100);
  assert.equal(value(t, 'portail_bytes_total{direction="down"}'), 2000);
  assert.equal(value(t, 'portail_reloads_total{result="ok"}'), 1);
  assert.equal(value(t, 'portail_reloads_total{result="failed"}'), 0);
  assert.equal(value(t, 'portail_relays_handed_over_total'), 2);
  assert.equal(value(t, 'portail_connections_accepted_total{protocol="socks5"}'), 3);
  assert.equal(value(t, 'portail_connections_active{protocol="socks5"}'), 1);
  assert.equal(value(t, 'portail_connections_refused_total'), 2);
  assert.equal(value(t, 'portail_handshake_timeouts_total'), 1);
  assert.equal(value(t, 'portail_refusals_suppressed_total'), 7);
  assert.equal(value(t, 'portail_pkcs11_token_disabled'), 0);
  assert.equal(value(t, 'portail_relays_active'), 1);
  // Read again at the next scrape: counters follow their sources.
  byProtocol.socks5.accepted = 10;
  const t2 = (await m.render(false)).body;
  assert.equal(value(t2, 'portail_connections_accepted_total{protocol="socks5"}'), 10);
});

test(`policy and backend names beyond the first ${MAX_NAMES} share "${OTHER}"`, async () => {
  const { m } = await metricsFor();
  for (let i = 0; i < MAX_NAMES + 50; i++) {
    m.observer.decision('deny', `p${i}`, 1);
    m.observer.connected(`b${i}`, 1);
  }
  const t = (await m.render(false)).body;
  assert.equal(value(t, `portail_decisions_total{action="deny",policy="${OTHER}"}`), 50);
  assert.equal(value(t, `portail_decisions_total{action="deny",policy="p${MAX_NAMES - 1}"}`), 1);
  assert.equal(
    value(t, `portail_decisions_total{action="deny",policy="p${MAX_NAMES}"}`),
    undefined,
  );
  const series = new Set(
    t
      .split('\n')
      .filter((l) => l.startsWith('portail_decisions_total{'))
      .map((l) => /policy="([^"]*)"/.exec(l)?.[1]),
  );
  assert.ok(series.size <= MAX_NAMES + 2, `${series.size} policy label values`);
  // "direct" is made at start, so MAX_NAMES - 1 other backends get their own series.
  assert.equal(value(t, `portail_connect_seconds_count{backend="${OTHER}"}`), 51);
});

test('OpenMetrics and Prometheus text alternate without losing the `_total` names', async () => {
  const { m } = await metricsFor();
  const om = await m.render(true);
  assert.match(om.contentType, /^application\/openmetrics-text; version=1\.0\.0/);
  assert.match(om.body, /^# TYPE portail_bytes counter$/m);
  assert.match(om.body, /^portail_bytes_total\{direction="up"\} 0$/m);
  assert.match(om.body, /# EOF\n$/);
  const text = await m.render(false);
  assert.match(text.contentType, /^text\/plain; version=0\.0\.4/);
  assert.match(text.body, /^# TYPE portail_bytes_total counter$/m);
  // Concurrent renderings of both kinds are serialised: each is whole and of its kind.
  const both = await Promise.all([m.render(true), m.render(false), m.render(true)]);
  assert.match(both[0].body, /# EOF\n$/);
  assert.match(both[1].body, /^# TYPE portail_bytes_total counter$/m);
  assert.doesNotMatch(both[1].body, /# EOF/);
  assert.match(both[2].body, /^# TYPE portail_bytes counter$/m);
  // No gauge named like a counter (promtool refuses them).
  assert.doesNotMatch(text.body, /# TYPE \S+_total gauge/);
});

test('Accept negotiation: OpenMetrics only when preferred', () => {
  assert.equal(wantsOpenMetrics(undefined), false);
  assert.equal(wantsOpenMetrics('text/plain'), false);
  assert.equal(wantsOpenMetrics('*/*'), false);
  assert.equal(wantsOpenMetrics('application/openmetrics-text'), true);
  assert.equal(
    wantsOpenMetrics(
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
    ),
    true,
  );
  assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0, text/plain'), false);
  assert.equal(wantsOpenMetrics('text/plain;q=0.9, application/openmetrics-text;q=0.5'), false);
  assert.equal(wantsOpenMetrics('application/openmetrics-text;q=bogus'), false);
});

test('a reload cannot move or remove [metrics] listen: it names the key', async () => {
  const acl = tmp.write('k.acl', 'policy all { action allow }\n');
  const a = await loadConfig(
    tmp.write('k1.toml', config(acl, '[metrics]\nlisten = "127.0.0.1:9469"')),
  );
  const b = await loadConfig(tmp.write('k2.toml', config(acl, '[metrics]\nlisten = "[::1]:9469"')));
  const none = await loadConfig(tmp.write('k3.toml', config(acl, '')));
  assert.deepEqual(keysNeedingRestart(a, a), []);
  assert.deepEqual(keysNeedingRestart(a, b), ['[metrics] listen (127.0.0.1:9469 -> [::1]:9469)']);
  assert.deepEqual(keysNeedingRestart(a, none), ['[metrics] listen (127.0.0.1:9469 -> none)']);
  assert.deepEqual(keysNeedingRestart(none, a), ['[metrics] listen (none -> 127.0.0.1:9469)']);
});
