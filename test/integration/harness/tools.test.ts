// The small helpers: which/requireTool (and the skip message CI turns into a failure),
// freePort, tmpDir, sha256File, curl's error codes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  curl,
  freePort,
  requireFile,
  requireTool,
  sha256File,
  tmpDir,
  which,
} from '../../harness/index.js';

function skipRecorder() {
  const messages: string[] = [];
  return { messages, ctx: { skip: (m?: string) => void messages.push(m ?? '') } };
}

describe('which / requireTool', () => {
  test('a missing tool: undefined, and the test is skipped naming the package', () => {
    assert.equal(which('portail-no-such-tool'), undefined);
    const { messages, ctx } = skipRecorder();
    assert.equal(requireTool(ctx, 'portail-no-such-tool', 'portail-pkg'), undefined);
    assert.deepEqual(messages, ['needs portail-no-such-tool (apt-get install portail-pkg)']);
  });

  test('the package name comes from the table when not given', () => {
    const { messages, ctx } = skipRecorder();
    // danted lives in dante-server: the message must say so even where it is missing.
    const path = requireTool({ skip: ctx.skip }, 'danted');
    if (path === undefined) {
      assert.deepEqual(messages, ['needs danted (apt-get install dante-server)']);
    } else {
      assert.deepEqual(messages, []);
      assert.match(path, /\/danted$/);
    }
  });

  test('a present tool: its absolute path, no skip; sbin is searched too', () => {
    const { messages, ctx } = skipRecorder();
    const sh = requireTool(ctx, 'sh');
    assert.ok(sh?.startsWith('/'));
    assert.deepEqual(messages, []);
    const saved = process.env.PATH;
    process.env.PATH = '/usr/bin:/bin';
    try {
      // ip is in /usr/sbin or /sbin on Debian (iproute2), found without them on PATH.
      if (existsSync('/usr/sbin/ip') || existsSync('/sbin/ip')) assert.ok(which('ip'));
    } finally {
      process.env.PATH = saved;
    }
  });

  test('requireFile: skip names the file and the package', () => {
    const { messages, ctx } = skipRecorder();
    assert.equal(requireFile(ctx, '/nonexistent/pkcs11.so', 'libengine-pkcs11-openssl'), undefined);
    assert.deepEqual(messages, [
      'needs /nonexistent/pkcs11.so (apt-get install libengine-pkcs11-openssl)',
    ]);
  });
});

describe('freePort / tmpDir / sha256File', () => {
  test('freePort: a port nobody listens on, that we can bind', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((r) => srv.close(() => r()));
  });

  test('tmpDir is removed when its owner ends', async (t) => {
    let dir = '';
    await t.test('owner', (t2) => {
      dir = tmpDir(t2);
      writeFileSync(join(dir, 'f'), 'x');
      assert.ok(existsSync(dir));
    });
    assert.equal(existsSync(dir), false, 'tmpDir outlived its test');
  });

  test('sha256File streams a file; a missing file rejects', async (t) => {
    const dir = tmpDir(t);
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 0x61);
    writeFileSync(join(dir, 'a'), data);
    assert.equal(await sha256File(join(dir, 'a')), createHash('sha256').update(data).digest('hex'));
    await assert.rejects(sha256File(join(dir, 'missing')), /ENOENT/);
  });
});

describe('curl', () => {
  test('refused: exit code 7, message on stderr, never a throw', async (t) => {
    if (!requireTool(t, 'curl')) return;
    const port = await freePort();
    const r = await curl([`http://127.0.0.1:${port}/`]);
    assert.equal(r.code, 7);
    assert.match(r.stderr, /Failed to connect|Connection refused|Couldn't connect/);
    assert.equal(r.stdout, '');
  });

  test('the caller’s proxy variables do not leak into curl', async (t) => {
    if (!requireTool(t, 'curl')) return;
    const srv = net.createServer((s) =>
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'),
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const { port } = srv.address() as net.AddressInfo;
    const deadProxy = `http://127.0.0.1:${await freePort()}`;
    const saved = { http_proxy: process.env.http_proxy, ALL_PROXY: process.env.ALL_PROXY };
    process.env.http_proxy = deadProxy;
    process.env.ALL_PROXY = deadProxy;
    try {
      const r = await curl([`http://127.0.0.1:${port}/`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'ok');
      // …but an explicit env option is honoured.
      const viaDead = await curl([`http://127.0.0.1:${port}/`], { env: { http_proxy: deadProxy } });
      assert.equal(viaDead.code, 7);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('timeout: curl is stopped and reports code 28', async (t) => {
    if (!requireTool(t, 'curl')) return;
    const srv = net.createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => {
      srv.close();
    });
    const { port } = srv.address() as net.AddressInfo;
    const t0 = Date.now();
    const r = await curl([`http://127.0.0.1:${port}/`], { timeoutMs: 1000 });
    assert.equal(r.code, 28);
    assert.ok(Date.now() - t0 < 4000);
  });
});
