// Run-time state with real files: atomic reloads, invalid files leaving the previous
// rules in force, watch-acl with its debounce, the default backend.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createState, StartupError } from '../../../proxy/state/index.js';
import { BackendNotFound } from '../../../rpc/control-api.js';
import { config, Lines, Records, sleep, tempDir } from '../pipeline/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());

let n = 0;
function files(acl: string, extraConfig = 'watch-acl = false', aclName?: string) {
  n++;
  const aclPath = tmp.write(aclName ?? `s${n}.acl`, acl);
  const cfg = tmp.write(`s${n}.toml`, config(aclPath, extraConfig));
  return { aclPath, cfg };
}

async function start(cfg: string, debounce?: number) {
  const records = new Records();
  const log = new Lines();
  const state = await createState({
    configPath: cfg,
    log,
    audit: records,
    watchDebounceMs: debounce,
  });
  return { state, records, log };
}

test('a bad configuration is fatal at start, with file:line:column', async () => {
  const cfg = tmp.write('bad.toml', 'filter-acl-rules-path = "x.acl"\nhandshake-timout = 3\n');
  await assert.rejects(
    () => createState({ configPath: cfg, log: new Lines(), audit: new Records() }),
    (err: unknown) => {
      assert.ok(err instanceof StartupError);
      assert.match(err.text, /bad\.toml:2:1: error: .*handshake-timout/);
      return true;
    },
  );
});

test('an invalid ACL on reload changes nothing; the reload record carries the diagnostic', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n');
  const { state, records } = await start(cfg);
  const before = state.current();
  tmp.write(aclPath.split('/').pop() as string, 'policy a {\n  action alow\n}\n');
  const res = await state.reload('rpc');
  assert.equal(res.ok, false);
  assert.match(res.diagnostics, /s\d+\.acl:2:10: error/);
  assert.equal(state.current(), before, 'the previous snapshot stays in force');
  const rec = records.of('reload')[0];
  assert.equal(rec.result, 'failed');
  assert.equal(rec.action, null, 'a reload record is never a denial');
  assert.match(String(rec.diagnostics), /s\d+\.acl:2:10/);
  assert.equal(state.lastReload?.ok, false);
});

test('an invalid explain ACL fails the whole reload (atomic)', async () => {
  n++;
  const aclPath = tmp.write(`s${n}.acl`, 'policy a { action allow }\n');
  const explainPath = tmp.write(`s${n}-explain.acl`, 'policy e { action allow }\n');
  const cfg = tmp.write(
    `s${n}.toml`,
    config(aclPath, `watch-acl = false\nexplain-acl-rules-path = ${JSON.stringify(explainPath)}`),
  );
  const { state } = await start(cfg);
  const before = state.current();
  tmp.write(aclPath.split('/').pop() as string, 'policy b { action deny }\n');
  tmp.write(explainPath.split('/').pop() as string, 'policy e { action }\n');
  const res = await state.reload('rpc');
  assert.equal(res.ok, false);
  assert.equal(state.current(), before);
  assert.equal(state.current().acl?.policies[0].name, 'a');
});

test('a bad configuration on reload keeps the previous one', async () => {
  const { cfg } = files('policy a { action allow }\n');
  const { state } = await start(cfg);
  const before = state.current();
  tmp.write(cfg.split('/').pop() as string, 'max-connections = "many"\n');
  const res = await state.reload('signal');
  assert.equal(res.ok, false);
  assert.match(res.diagnostics, /max-connections/);
  assert.equal(state.current(), before);
});

test('a valid reload swaps a new snapshot; the old one is untouched', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n');
  const { state, records } = await start(cfg);
  const old = state.current();
  tmp.write(aclPath.split('/').pop() as string, 'policy b { action deny }\n');
  const res = await state.reload('signal');
  assert.equal(res.ok, true);
  const now = state.current();
  assert.notEqual(now, old);
  assert.equal(now.generation, old.generation + 1);
  assert.equal(old.acl?.policies[0].name, 'a');
  assert.equal(now.acl?.policies[0].name, 'b');
  assert.notEqual(now.aclHash, old.aclHash);
  assert.equal(res.aclHash, now.aclHash);
  const rec = records.of('reload')[0];
  assert.equal(rec.result, 'ok');
  assert.equal(rec.trigger, 'signal');
});

test('list files are re-read on reload', async () => {
  tmp.write('blocked.txt', 'a.example\n');
  const { cfg } = files(
    'policy b { when host in file("blocked.txt") action deny }\npolicy a { action allow }\n',
  );
  const { state } = await start(cfg);
  const files1 = state.current().files;
  assert.ok(files1.some((f) => f.endsWith('blocked.txt')));
  tmp.write('blocked.txt', 'a.example\nb.example\n');
  const res = await state.reload('rpc');
  assert.equal(res.ok, true);
  tmp.write('blocked.txt', '');
  tmp.write('blocked.txt', 'not a host name!\n');
  // Invalid list lines are warnings (acl-lang's choice): the reload succeeds and says so.
  const res2 = await state.reload('rpc');
  assert.equal(res2.ok, true);
});

test('concurrent reloads run one after the other', async () => {
  const { cfg } = files('policy a { action allow }\n');
  const { state } = await start(cfg);
  const g = state.current().generation;
  const [a, b] = await Promise.all([state.reload('rpc'), state.reload('signal')]);
  assert.ok(a.ok && b.ok);
  assert.equal(state.current().generation, g + 2);
});

test('watch-acl: a change reloads after the quiet period, a burst costs one reload', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n', 'watch-acl = true');
  const { state, records } = await start(cfg, 150);
  state.startWatching();
  try {
    const name = aclPath.split('/').pop() as string;
    for (let i = 0; i < 5; i++) {
      tmp.write(name, `policy p${i} { action allow }\n`);
      await sleep(30);
    }
    assert.equal(records.of('reload').length, 0, 'nothing before the quiet period');
    await records.waitFor((r) => r.event === 'reload');
    await sleep(400);
    assert.equal(records.of('reload').length, 1);
    assert.equal(state.current().acl?.policies[0].name, 'p4');
    assert.equal(records.of('reload')[0].trigger, 'watch');
    // An invalid save is reported and ignored; fixing it reloads again.
    tmp.write(name, 'policy broken {\n');
    await records.waitFor((r) => r.event === 'reload' && r.result === 'failed');
    assert.equal(state.current().acl?.policies[0].name, 'p4');
    tmp.write(name, 'policy fixed { action allow }\n');
    await records.waitFor(
      (r) => r.event === 'reload' && r.result === 'ok' && r !== records.of('reload')[0],
    );
    assert.equal(state.current().acl?.policies[0].name, 'fixed');
  } finally {
    state.close();
  }
});

test('watch-acl: an ACL missing at start is picked up once written; other files are ignored', async () => {
  n++;
  const aclPath = `${tmp.dir}/late${n}.acl`;
  const cfg = tmp.write(`s${n}.toml`, config(aclPath, 'watch-acl = true'));
  const { state, records } = await start(cfg, 100);
  state.startWatching();
  try {
    assert.equal(state.current().acl, null);
    assert.equal(records.of('error').length, 1);
    tmp.write('unrelated.txt', 'x');
    await sleep(300);
    assert.equal(records.of('reload').length, 0, 'an unrelated file does not reload');
    tmp.write(aclPath.split('/').pop() as string, 'policy a { action allow }\n');
    await records.waitFor((r) => r.event === 'reload' && r.result === 'ok');
    assert.equal(state.current().acl?.policies[0].name, 'a');
  } finally {
    state.close();
  }
});

test('watch-acl = false: changes are not picked up', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n');
  const { state, records } = await start(cfg, 50);
  state.startWatching();
  tmp.write(aclPath.split('/').pop() as string, 'policy b { action allow }\n');
  await sleep(300);
  assert.equal(records.of('reload').length, 0);
  state.close();
});

test('default backend: configured, set, unset, unknown; survives a reload', async () => {
  const backends = `[backends.par01]\ntype = "socks5"\ntarget-address = "127.0.0.1:9"\n[backends.par02]\ntype = "http"\ntarget-address = "127.0.0.1:10"\n`;
  const { cfg } = files(
    'policy a { action allow }\n',
    `watch-acl = false\ndefault-backend = "par01"\n${backends}`,
  );
  const { state } = await start(cfg);
  assert.equal(state.defaultBackend, 'par01');
  state.setDefaultBackend('par02');
  assert.equal(state.defaultBackend, 'par02');
  assert.throws(() => state.setDefaultBackend('nope'), BackendNotFound);
  await state.reload('rpc');
  assert.equal(state.defaultBackend, 'par02', 'a run-time choice survives a reload');
  state.setDefaultBackend(null);
  assert.equal(state.defaultBackend, null);
  // The operator changes the configured default: that wins.
  tmp.write(
    cfg.split('/').pop() as string,
    config(
      state.current().config.filterAclRulesPath ?? '',
      `default-backend = "par02"\n${backends}`,
    ),
  );
  await state.reload('rpc');
  assert.equal(state.defaultBackend, 'par02');
  state.close(); // the new configuration turned watch-acl on (its default)
});

test('a reload whose ACL worker overruns fails with the reason; the previous rules stay', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n');
  const records = new Records();
  const log = new Lines();
  const state = await createState({ configPath: cfg, log, audit: records, aclLoadTimeoutMs: 1 });
  const before = state.current();
  tmp.write(aclPath.split('/').pop() as string, 'policy b { action deny }\n');
  const res = await state.reload('signal');
  assert.equal(res.ok, false);
  assert.match(res.diagnostics, /s\d+\.acl: error: the ACL loader did not finish within 0\.001 s/);
  assert.equal(state.current(), before);
  assert.equal(state.lastReload?.ok, false);
  assert.equal(records.of('reload')[0].result, 'failed');
});

test('an unexpected exception during a reload is a failed reload, never a rejection', async () => {
  const { aclPath, cfg } = files('policy a { action allow }\n');
  const records = new Records();
  const log = new Lines();
  const state = await createState({ configPath: cfg, log, audit: records });
  tmp.write(aclPath.split('/').pop() as string, 'policy b { action deny }\n');
  // The success path's own log line throws (a stand-in for any bug past the build).
  log.info = () => {
    throw new TypeError('boom');
  };
  const res = await state.reload('watch');
  assert.equal(res.ok, false);
  assert.match(res.diagnostics, /internal error during the reload: TypeError: boom/);
  assert.equal(state.lastReload?.ok, false);
  assert.ok(log.lines.some((l) => /^error: reload failed.*\n.*TypeError: boom/.test(l)));
  const r = records.of('reload').at(-1);
  assert.equal(r?.result, 'failed');
  // The chain goes on: the next reload runs.
  log.info = () => {};
  assert.equal((await state.reload('rpc')).ok, true);
  // And so does reloadFailed, for what fails around reload() (daemon's SIGHUP, rpc).
  assert.equal(state.reloadFailed('signal', new Error('reopen: EACCES')).ok, false);
  assert.match(state.lastReload?.diagnostics ?? '', /reopen: EACCES/);
});

test('reloads asked for while one waits share it: at most one runs and one waits', async () => {
  const { cfg } = files('policy a { action allow }\n');
  const { state, records } = await start(cfg);
  const g = state.current().generation;
  const asked = [
    state.reload('rpc'),
    state.reload('signal'),
    state.reload('watch'),
    state.reload('rpc'),
  ];
  const [a, b, c, d] = await Promise.all(asked);
  assert.ok(a.ok && b.ok);
  assert.equal(b, c);
  assert.equal(c, d);
  assert.equal(state.current().generation, g + 2);
  assert.equal(records.of('reload').length, 2);
  // Once idle, a request runs at once again.
  assert.ok((await state.reload('rpc')).ok);
  assert.equal(state.current().generation, g + 3);
});
