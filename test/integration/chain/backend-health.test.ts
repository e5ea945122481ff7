// Backend health in ours (io.portail.Control) status and `portailctl backends`: a real
// State from a real configuration, a real refused connection through the backend (the
// candidate loop reports it as the pipeline does), then the control backend's answer
// in wire form and as portailctl prints it.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { tryCandidates } from '../../../proxy/connect/failover.js';
import { createControlBackend } from '../../../proxy/daemon/control.js';
import { createState } from '../../../proxy/state/index.js';
import { healthWire } from '../../../rpc/control-api.js';
import { formatBackends, formatStatus } from '../../../rpc/ctl-format.js';
import { config, Lines, Records, tempDir } from '../../unit/pipeline/helpers.js';
import { deadPort, origin } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());

test('a dead backend shows as UNHEALTHY after one failed attempt; a working one stays healthy', async (t) => {
  const dead = await deadPort();
  const o = await origin(t);
  const acl = tmp.write('h.acl', 'policy all { action allow }\n');
  const cfg = tmp.write(
    'h.toml',
    config(
      acl,
      `watch-acl = false\n[backends.dead]\ntype = "socks5"\ntarget-address = "127.0.0.1:${dead}"\n[backends.spare]\ntype = "socks5"\ntarget-address = "127.0.0.1:${dead}"\n`,
    ),
  );
  const state = await createState({ configPath: cfg, log: new Lines(), audit: new Records() });
  t.after(() => state.close());
  const control = createControlBackend({
    state,
    startedAt: new Date(),
    listeners: () => [],
    activeConnections: () => 0,
    reload: () => state.reload('rpc'),
  });

  // Before any attempt nothing is known against either backend.
  const before = control.status().backends ?? [];
  assert.deepEqual(
    before.map((h) => [h.name, h.healthy]),
    [
      ['dead', true],
      ['spare', true],
    ],
  );

  const snap = state.current();
  const r = await tryCandidates(
    ['dead'],
    (name) =>
      state.backends.connect(
        snap,
        name,
        { host: '127.0.0.1', port: o.port },
        { protocol: 'socks5', signal: AbortSignal.timeout(5000) },
      ),
    state.backends,
  );
  assert.equal(r.ok, false, 'nothing listens on the dead backend');

  const s = control.status();
  const dh = s.backends?.find((h) => h.name === 'dead');
  assert.equal(dh?.healthy, false);
  assert.equal(dh?.consecutiveFailures, 1);
  assert.ok(dh?.retryAt && dh.retryAt.getTime() > Date.now(), 'a retry time in the future');
  assert.match(String(dh?.lastError), /refused|ECONNREFUSED/i);
  assert.equal(s.backends?.find((h) => h.name === 'spare')?.healthy, true);
  assert.equal(control.listBackends().find((b) => b.id === 'dead')?.health?.healthy, false);

  // As portailctl prints it (wire form: snake_case, RFC 3339 times).
  const wire = (s.backends ?? []).map(healthWire);
  const status = formatStatus({
    version: '0',
    pid: 1,
    uptime_seconds: 0,
    started_at: 'now',
    listeners: [],
    acl: null,
    active_connections: 0,
    default_backend: null,
    last_reload: null,
    backends: wire,
  });
  assert.match(status, /^backend dead: +UNHEALTHY \(1 failure, retry at \d{4}-.*\)$/m);
  assert.match(status, /refused/i);
  assert.match(status, /^backend spare: +healthy$/m);
  const table = formatBackends(
    [
      { id: 'dead', current: false, dynamic: false, spec: { target_address: `127.0.0.1:${dead}` } },
      {
        id: 'spare',
        current: false,
        dynamic: false,
        spec: { target_address: `127.0.0.1:${dead}` },
      },
    ],
    wire,
  );
  assert.match(table, /^BACKEND .* HEALTH$/m);
  assert.match(table, /^dead .* UNHEALTHY \(1 failure/m);
  assert.match(table, /^spare .* healthy$/m);
  // Without health (upstream's ListBackends alone) the table is as before.
  assert.doesNotMatch(formatBackends([{ id: 'dead', spec: null }]), /HEALTH/);
});
