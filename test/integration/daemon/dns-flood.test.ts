// Regression test for a DNS pile-up (docs/security.md, "Name resolution"): thousands of
// SOCKS5 CONNECTs by name, abandoned by their clients while the nameserver stays silent,
// must not stop later requests. The daemon runs with the system resolver (no `[dns]
// resolvers`) in a private mount namespace whose /etc/resolv.conf names our DNS server
// on 127.x.y.z:53: no query leaves loopback. Checked: the daemon's memory stays bounded,
// requests to IP literals are served during and after the flood, and a name resolves
// again within seconds once the server answers.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startDnsServer } from '../../harness/dns-server.js';
import { procStat, sleep } from '../../harness/index.js';
import { privateResolv, requirePrivateMount } from '../../harness/private-resolv.js';
import { echo, readBytes, socksConnect, startPortail, tcpServer } from './portail.js';

const FLOOD = Number(process.env.PORTAIL_DNS_FLOOD ?? 15_000);
const CONCURRENCY = 500;
const DNS_TIMEOUT_S = 2;

/** A SOCKS5 CONNECT to `host`:`port` whose client leaves once the request is sent. */
function abandonedConnect(proxyPort: number, host: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(proxyPort, '127.0.0.1');
    const name = Buffer.from(host);
    const req = Buffer.concat([
      Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]),
      name,
      Buffer.from([port >> 8, port & 0xff]),
    ]);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve();
    };
    const timer = setTimeout(finish, 3000);
    s.on('error', finish);
    s.on('close', finish);
    s.once('connect', () => s.write(req));
    // The method reply means the request was read: the client gives up (FIN) now.
    s.once('data', () => setImmediate(finish));
  });
}

/** A request to an IP literal through the proxy: true when the echo came back. */
async function literalWorks(proxyPort: number, echoPort: number): Promise<boolean> {
  let s: net.Socket | undefined;
  try {
    s = await socksConnect(proxyPort, '127.0.0.1', echoPort);
    s.write('ping');
    return (await readBytes(s, 4, 5000)).toString() === 'ping';
  } catch {
    return false;
  } finally {
    s?.destroy();
  }
}

/** A request by name: true when the echo came back. */
async function nameWorks(proxyPort: number, host: string, echoPort: number): Promise<boolean> {
  let s: net.Socket | undefined;
  try {
    s = await socksConnect(proxyPort, host, echoPort);
    s.write('pong');
    return (await readBytes(s, 4, 3000)).toString() === 'pong';
  } catch {
    return false;
  } finally {
    s?.destroy();
  }
}

test('a flood of abandoned lookups by name: bounded memory, literals served, names resolve again within seconds', {
  timeout: 240_000,
}, async (t) => {
  if (!requirePrivateMount(t)) return;
  // An address of our own on loopback, port 53 (resolv.conf cannot name another port).
  const host = `127.53.${(process.pid % 250) + 1}.${1 + Math.floor(Math.random() * 250)}`;
  const dns = await startDnsServer(t, {
    host,
    port: 53,
    mode: { kind: 'silent' },
    wildcard: { a: ['127.0.0.1'], ttl: 30 },
    // The flood's names stay unanswered (a broken authority), whatever the mode.
    rules: [{ match: /^flood-/, mode: { kind: 'silent' } }],
  });
  const ns = privateResolv(t, `nameserver ${host}\noptions timeout:1 attempts:1\n`);
  const target = await tcpServer(t, echo);
  const p = await startPortail(t, {
    prefix: ns.prefix,
    config: `[dns]\ntimeout = ${DNS_TIMEOUT_S}\n`,
  });
  const pid = p.proc.pid;
  const rss = () => procStat(pid)?.rssBytes ?? 0;

  assert.ok(await literalWorks(p.port, target.port), 'an IP literal works before the flood');
  const before = rss();
  let peak = before;

  // IP-literal probes all along the flood.
  let flooding = true;
  const probes: boolean[] = [];
  const prober = (async () => {
    while (flooding) {
      probes.push(await literalWorks(p.port, target.port));
      peak = Math.max(peak, rss());
      await sleep(200);
    }
  })();

  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < FLOOD) {
      const i = next++;
      await abandonedConnect(p.port, `flood-${i}.test`, target.port);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const floodMs = Date.now() - started;
  flooding = false;
  await prober;
  peak = Math.max(peak, rss());

  // The server answers again (the flood's names excepted): a new name must work soon.
  dns.setMode({ kind: 'answer' });
  const after = Date.now();
  let resolvedAfterMs = -1;
  while (Date.now() - after < 20_000) {
    if (await nameWorks(p.port, 'after.test', target.port)) {
      resolvedAfterMs = Date.now() - after;
      break;
    }
    await sleep(250);
  }
  const literalAfter = await literalWorks(p.port, target.port);
  peak = Math.max(peak, rss());
  const failedProbes = probes.filter((ok) => !ok).length;
  t.diagnostic(
    `flood of ${FLOOD} in ${floodMs} ms; rss ${(before / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MiB; ` +
      `literal probes ${probes.length - failedProbes}/${probes.length} ok; name resolved ${resolvedAfterMs} ms after the flood; ` +
      `${dns.queries} DNS questions`,
  );

  assert.ok(resolvedAfterMs >= 0, 'a name resolves again after the flood (within 20 s)');
  assert.ok(
    resolvedAfterMs < (DNS_TIMEOUT_S + 3) * 1000,
    `a name resolves again within seconds of the flood, took ${resolvedAfterMs} ms`,
  );
  assert.ok(literalAfter, 'an IP literal works after the flood');
  assert.ok(probes.length >= 3, `IP literals were probed during the flood (${probes.length})`);
  assert.equal(
    failedProbes,
    0,
    `IP-literal requests failed during the flood: ${failedProbes}/${probes.length}`,
  );
  assert.ok(
    peak - before < 160 * 2 ** 20,
    `RSS grew by ${((peak - before) / 2 ** 20).toFixed(0)} MiB`,
  );
  assert.doesNotMatch(p.proc.output(), /MaxListenersExceededWarning/);
});
