// The SSH backend against a real OpenSSH sshd on loopback: host key verification
// (plain, hashed, several key types, mismatch, unknown host), channel sharing,
// reconnection, timeouts and the bastion's own failures.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createSshConnector, type SshConnector } from '../../../proxy/connect/ssh.js';
import { ConnectError } from '../../../proxy/types.js';
import { freePort, requireTool, startProcess, tmpDir, which } from '../../harness/index.js';
import { keygen, line, type Sshd, startSshd } from './sshd.js';

const run = promisify(execFile);
const haveSshd = which('sshd') !== undefined && which('ssh-keygen') !== undefined;

/** A Node origin that answers "hello <what it read>" after the client half-closes. */
async function origin() {
  let accepted = 0;
  const srv = net.createServer((s) => {
    accepted++;
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => s.end(`hello ${Buffer.concat(chunks).toString()}`));
    s.on('error', () => {});
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

/** A TCP forwarder in front of sshd: counts connections and can cut them all. */
async function tcpRelay(to: number) {
  const live = new Set<net.Socket>();
  let accepted = 0;
  const srv = net.createServer((a) => {
    accepted++;
    const b = net.connect(to, '127.0.0.1');
    for (const s of [a, b]) {
      live.add(s);
      s.on('error', () => {});
      s.on('close', () => live.delete(s));
    }
    a.pipe(b).pipe(a);
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    accepted: () => accepted,
    live: () => live.size,
    cut: () => {
      for (const s of live) s.destroy();
    },
    /** Silently stops forwarding (a dead path without any reset), connections stay open. */
    freeze: () => {
      for (const s of live) {
        s.unpipe();
        s.pause();
      }
    },
    close: () => {
      for (const s of live) s.destroy();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

async function roundTrip(stream: Duplex, text: string): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  stream.end(text);
  await once(stream, 'end');
  return Buffer.concat(chunks).toString();
}

function signal(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms);
}

async function rejectsWith(p: Promise<unknown>, reason: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConnectError, `expected a ConnectError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('SSH bastion backend (OpenSSH sshd)', {
  skip: !haveSshd && 'needs sshd (apt-get install openssh-server openssh-client)',
}, () => {
  let sshd: Sshd;
  let web: Awaited<ReturnType<typeof origin>>;
  const connectors: SshConnector[] = [];
  const make = (...args: Parameters<typeof createSshConnector>) => {
    const c = createSshConnector(...args);
    connectors.push(c);
    return c;
  };
  // Suite-wide resources (sshd, its folder) are stopped by the suite's own after().
  const stoppers: (() => void | Promise<void>)[] = [];
  const owner = { after: (fn: () => void | Promise<void>) => void stoppers.push(fn) };

  before(async () => {
    sshd = await startSshd(owner);
    web = await origin();
  });
  after(async () => {
    for (const c of connectors) c.close();
    await web?.close();
    for (const stop of stoppers.reverse()) await stop();
  });

  test('a known_hosts whose key differs refuses, and nothing reaches the origin', async (t) => {
    const dir = tmpDir(t);
    await keygen(join(dir, 'other'), 'ed25519');
    const [kt, b64] = readFileSync(join(dir, 'other.pub'), 'utf8').split(' ');
    const kh = sshd.knownHosts('wrong', [`[127.0.0.1]:${sshd.port} ${kt} ${b64}`]);
    const before = web.accepted();
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /host key for \[127\.0\.0\.1\]:\d+ does not match known_hosts .*wrong.*SHA256:/,
    );
    assert.equal(web.accepted(), before);
  });

  test('a host missing from known_hosts is refused (no trust on first use)', async () => {
    // Port 22 form does not name [host]:port, and another host's line does not count.
    const kh = sshd.knownHosts('other-host', [
      line(sshd, 'ed25519', '127.0.0.1'),
      line(sshd, 'ed25519', 'bastion.example'),
    ]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const logins = sshd.logins();
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /is not in known_hosts/,
    );
    assert.equal(sshd.logins(), logins, 'no SSH session was even attempted');
  });

  test('a revoked host key is refused even when also listed', async () => {
    const kh = sshd.knownHosts('revoked', [
      line(sshd, 'ed25519'),
      `@revoked ${line(sshd, 'ed25519', '*')}`,
    ]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /@revoked/,
    );
  });

  test('@cert-authority lines: a host listed only that way is refused (host certificates unsupported)', async (t) => {
    const dir = tmpDir(t);
    await keygen(join(dir, 'ca'), 'ed25519');
    const [kt, b64] = readFileSync(join(dir, 'ca.pub'), 'utf8').split(' ');
    const kh = sshd.knownHosts('ca-only', [
      `@cert-authority [127.0.0.1]:${sshd.port} ${kt} ${b64}`,
    ]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const logins = sshd.logins();
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /only @cert-authority keys for \[127\.0\.0\.1\]:\d+: SSH host certificates are not supported/,
    );
    assert.equal(sshd.logins(), logins, 'refused before connecting');
  });

  test('@cert-authority lines never make a key pass, even the very key the server shows', async (t) => {
    // The server's own host key written as a CA: OpenSSH would only accept certificates
    // it signed, never the plain key.
    const asCa = `@cert-authority * ${line(sshd, 'ed25519', '').trim()}`;
    const only = sshd.knownHosts('key-as-ca', [asCa]);
    const c1 = make(sshd.backend(only), { connectTimeoutMs: 5000 });
    await rejectsWith(
      c1.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /host certificates are not supported/,
    );
    // Beside a plain entry with another key: that entry decides (mismatch).
    const dir = tmpDir(t);
    await keygen(join(dir, 'other'), 'ed25519');
    const [kt, b64] = readFileSync(join(dir, 'other.pub'), 'utf8').split(' ');
    const mixed = sshd.knownHosts('ca-and-wrong', [asCa, `[127.0.0.1]:${sshd.port} ${kt} ${b64}`]);
    const c2 = make(sshd.backend(mixed), { connectTimeoutMs: 5000 });
    const before = web.accepted();
    await rejectsWith(
      c2.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /does not match known_hosts/,
    );
    assert.equal(web.accepted(), before);
  });

  test('@revoked: a revoked key is refused for a hashed entry too, and an unrelated revocation does not block', async (t) => {
    const hashed = sshd.knownHosts('revoked-hashed', [line(sshd, 'ed25519')]);
    await run('ssh-keygen', ['-H', '-f', hashed]);
    const text = readFileSync(hashed, 'utf8');
    assert.match(text, /^\|1\|/m);
    const revokedToo = sshd.knownHosts('revoked-hashed-2', [
      ...text.split('\n').filter((l) => l.startsWith('|1|')),
      `@revoked ${line(sshd, 'ed25519', 'elsewhere.example')}`,
    ]);
    const c1 = make(sshd.backend(revokedToo), { connectTimeoutMs: 5000 });
    await rejectsWith(
      c1.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /is marked @revoked/,
    );
    const dir = tmpDir(t);
    await keygen(join(dir, 'gone'), 'ed25519');
    const [kt, b64] = readFileSync(join(dir, 'gone.pub'), 'utf8').split(' ');
    const unrelated = sshd.knownHosts('revoked-unrelated', [
      line(sshd, 'ed25519'),
      `@revoked * ${kt} ${b64}`,
    ]);
    const c2 = make(sshd.backend(unrelated), { connectTimeoutMs: 5000 });
    const ch = await c2.connect({ host: '127.0.0.1', port: web.port }, signal());
    assert.equal(await roundTrip(ch, 'ok'), 'hello ok');
  });

  test('reaches a Node origin through the bastion (plain known_hosts entry)', async () => {
    const kh = sshd.knownHosts('plain', ['# comment', line(sshd, 'ed25519')]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
    assert.equal(await roundTrip(s, 'through ssh'), 'hello through ssh');
  });

  for (const type of ['ecdsa', 'rsa'] as const) {
    test(`verifies a server whose only listed key is ${type} (offers that algorithm)`, async () => {
      const kh = sshd.knownHosts(`only-${type}`, [line(sshd, type)]);
      const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
      const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s, type), `hello ${type}`);
    });
  }

  test('hashed known_hosts entries (ssh-keygen -H) work', async (t) => {
    if (!requireTool(t, 'ssh-keygen')) return;
    const kh = sshd.knownHosts('hashed', [line(sshd, 'rsa'), line(sshd, 'ed25519')]);
    await run('ssh-keygen', ['-q', '-H', '-f', kh]);
    const text = readFileSync(kh, 'utf8');
    assert.match(text, /^\|1\|/m);
    assert.doesNotMatch(text, /127\.0\.0\.1/);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
    assert.equal(await roundTrip(s, 'hashed'), 'hello hashed');
  });

  test('20 channels share one SSH connection (one TCP connection to sshd)', async () => {
    const relay = await tcpRelay(sshd.port);
    try {
      const kh = sshd.knownHosts('shared', [line(sshd, 'ed25519', `[127.0.0.1]:${relay.port}`)]);
      let connections = 0;
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port: relay.port } }), {
        connectTimeoutMs: 5000,
        onConnection: () => connections++,
      });
      const loginsBefore = sshd.logins();
      const answers = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
          return roundTrip(s, String(i));
        }),
      );
      assert.deepEqual(
        answers,
        Array.from({ length: 20 }, (_, i) => `hello ${i}`),
      );
      assert.equal(relay.accepted(), 1, 'one TCP connection to sshd');
      assert.equal(connections, 1);
      assert.equal(sshd.logins() - loginsBefore, 1, 'sshd authenticated exactly one connection');
      // Still one connection for a later request.
      const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s, 'later'), 'hello later');
      assert.equal(relay.accepted(), 1);
    } finally {
      await relay.close();
    }
  });

  test('a destination the bastion cannot reach is refused, the connection survives', async () => {
    const kh = sshd.knownHosts('dead', [line(sshd, 'ed25519')]);
    let connections = 0;
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000, onConnection: () => connections++ });
    const dead = await freePort();
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: dead }, signal()),
      'refused',
      /could not open a channel to 127\.0\.0\.1:\d+/,
    );
    const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
    assert.equal(await roundTrip(s, 'ok'), 'hello ok');
    assert.equal(connections, 1);
  });

  test('a name the bastion cannot resolve is a DNS failure', async () => {
    const kh = sshd.knownHosts('nxdomain', [line(sshd, 'ed25519')]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    await rejectsWith(
      c.connect({ host: 'no-such-host.invalid', port: 80 }, signal()),
      'dns',
      /could not open a channel to no-such-host\.invalid:80/,
    );
  });

  test('a wrong user key is refused with an authentication error', async (t) => {
    const dir = tmpDir(t);
    await keygen(join(dir, 'stranger'), 'ed25519');
    const kh = sshd.knownHosts('auth', [line(sshd, 'ed25519')]);
    const c = make(sshd.backend(kh, { identityFile: join(dir, 'stranger') }), {
      connectTimeoutMs: 5000,
    });
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /authentication as .* failed/,
    );
  });

  test('ssh-agent authentication (agent = true, SSH_AUTH_SOCK)', async (t) => {
    const agentBin = requireTool(t, 'ssh-agent', 'openssh-client');
    if (!agentBin || !requireTool(t, 'ssh-add', 'openssh-client')) return;
    const dir = tmpDir(t);
    const sock = join(dir, 'agent.sock');
    await startProcess(agentBin, ['-D', '-a', sock], {
      t,
      readyWhen: /SSH_AUTH_SOCK/,
      name: 'ssh-agent',
    }).catch(async () => {
      // Some versions print nothing with -D: wait for the socket instead.
    });
    for (let i = 0; i < 50; i++) {
      try {
        await run('ssh-add', [sshd.userKey], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const kh = sshd.knownHosts('agent', [line(sshd, 'ed25519')]);
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = sock;
    try {
      const c = make(sshd.backend(kh, { identityFile: undefined, agent: true }), {
        connectTimeoutMs: 5000,
      });
      const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s, 'agent'), 'hello agent');
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  });

  test('agent = true without SSH_AUTH_SOCK and without a key is a clear error', async () => {
    const kh = sshd.knownHosts('noagent', [line(sshd, 'ed25519')]);
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      const c = make(sshd.backend(kh, { identityFile: undefined, agent: true }), {
        connectTimeoutMs: 5000,
      });
      await rejectsWith(
        c.connect({ host: '127.0.0.1', port: web.port }, signal()),
        'internal',
        /SSH_AUTH_SOCK is not set/,
      );
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });

  test('the SSH handshake is bounded by the connect timeout', async () => {
    // A server that accepts and never says a word.
    const silent = net.createServer((s) => s.on('error', () => {}));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const kh = sshd.knownHosts('silent', [line(sshd, 'ed25519', `[127.0.0.1]:${port}`)]);
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port } }), {
        connectTimeoutMs: 300,
      });
      const t0 = Date.now();
      await rejectsWith(
        c.connect({ host: '127.0.0.1', port: web.port }, signal()),
        'timeout',
        /handshake .* timed out after 300 ms/,
      );
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      silent.close();
    }
  });

  test('a closed bastion port is refused', async () => {
    const port = await freePort();
    const kh = sshd.knownHosts('closed', [line(sshd, 'ed25519', `[127.0.0.1]:${port}`)]);
    const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port } }), {
      connectTimeoutMs: 2000,
    });
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'refused',
      /refused the connection/,
    );
  });

  test('an aborted request is reported as its abort, without waiting', async () => {
    const kh = sshd.knownHosts('abort', [line(sshd, 'ed25519')]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const ac = new AbortController();
    ac.abort(new ConnectError('timeout', 'client gone'));
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, ac.signal),
      'timeout',
      /client gone/,
    );
  });

  test('close() ends the SSH connection once its last channel closes; later requests fail', async () => {
    const kh = sshd.knownHosts('close', [line(sshd, 'ed25519')]);
    const c = make(sshd.backend(kh), { connectTimeoutMs: 5000 });
    const s = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
    c.close();
    // The relay in flight carries on.
    assert.equal(await roundTrip(s, 'after close'), 'hello after close');
    await rejectsWith(
      c.connect({ host: '127.0.0.1', port: web.port }, signal()),
      'internal',
      /is closed/,
    );
  });

  test('close() while the SSH handshake is running: the request fails, no connection is left', async () => {
    const relay = await tcpRelay(sshd.port);
    try {
      const kh = sshd.knownHosts('close-early', [
        line(sshd, 'ed25519', `[127.0.0.1]:${relay.port}`),
      ]);
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port: relay.port } }), {
        connectTimeoutMs: 5000,
      });
      const pending = c.connect({ host: '127.0.0.1', port: web.port }, signal());
      await new Promise((r) => setTimeout(r, 20)); // the TCP connection is open, the handshake not done
      c.close();
      await rejectsWith(pending, 'internal', /is closed/);
      for (let i = 0; i < 50 && relay.live() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(relay.live(), 0, 'the SSH connection was ended');
    } finally {
      await relay.close();
    }
  });

  test('reconnects after the SSH connection drops', async () => {
    const relay = await tcpRelay(sshd.port);
    try {
      const kh = sshd.knownHosts('reconnect', [line(sshd, 'ed25519', `[127.0.0.1]:${relay.port}`)]);
      let connections = 0;
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port: relay.port } }), {
        connectTimeoutMs: 5000,
        onConnection: () => connections++,
      });
      const s1 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s1, 'one'), 'hello one');
      relay.cut();
      await new Promise((r) => setTimeout(r, 50));
      const s2 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s2, 'two'), 'hello two');
      assert.equal(connections, 2);
      assert.equal(relay.accepted(), 2);
    } finally {
      await relay.close();
    }
  });

  test('keepalives notice a silent dead path and the next request reconnects', async () => {
    const relay = await tcpRelay(sshd.port);
    try {
      const kh = sshd.knownHosts('keepalive', [line(sshd, 'ed25519', `[127.0.0.1]:${relay.port}`)]);
      let connections = 0;
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port: relay.port } }), {
        connectTimeoutMs: 3000,
        keepaliveIntervalMs: 100,
        onConnection: () => connections++,
      });
      const s1 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s1, 'one'), 'hello one');
      relay.freeze();
      await new Promise((r) => setTimeout(r, 800)); // > 3 unanswered keepalives
      const s2 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s2, 'two'), 'hello two');
      assert.equal(connections, 2);
      assert.equal(relay.accepted(), 2);
    } finally {
      await relay.close();
    }
  });

  test('a connection that died unnoticed is replaced on the next request', async () => {
    const relay = await tcpRelay(sshd.port);
    try {
      const kh = sshd.knownHosts('silent-drop', [
        line(sshd, 'ed25519', `[127.0.0.1]:${relay.port}`),
      ]);
      let connections = 0;
      const c = make(sshd.backend(kh, { targetAddress: { host: '127.0.0.1', port: relay.port } }), {
        connectTimeoutMs: 5000,
        onConnection: () => connections++,
      });
      const s1 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s1, 'one'), 'hello one');
      // Cut and ask at once: the request races the client noticing the reset.
      relay.cut();
      const s2 = await c.connect({ host: '127.0.0.1', port: web.port }, signal());
      assert.equal(await roundTrip(s2, 'two'), 'hello two');
      assert.equal(connections, 2);
    } finally {
      await relay.close();
    }
  });
});
