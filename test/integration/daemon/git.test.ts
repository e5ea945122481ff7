// `git clone` of a repository served over dumb HTTP (static files after `git
// update-server-info`, from a Node server on loopback) through portail, with git's own
// proxy support: HTTP proxy and SOCKS5 with remote name resolution.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireTool, tmpDir } from '../../harness/index.js';
import { startPortail } from './portail.js';

test('git clone over HTTP through portail (http and socks5h proxies)', async (t) => {
  const git = requireTool(t, 'git');
  if (!git) return;
  const dir = tmpDir(t);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'T',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 'T',
    GIT_COMMITTER_EMAIL: 't@example.com',
  };
  for (const v of [
    'http_proxy',
    'https_proxy',
    'all_proxy',
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'ALL_PROXY',
  ])
    delete env[v];
  // Asynchronous: the origin server lives in this process and must keep serving.
  const run = async (args: string[], cwd = dir) =>
    (await promisify(execFile)(git, args, { cwd, env, encoding: 'utf8' })).stdout;
  await run(['init', '-q', '-b', 'main', 'work']);
  const work = join(dir, 'work');
  execFileSync('sh', ['-c', 'for i in $(seq 1 50); do echo "line $i" > f$i.txt; done'], {
    cwd: work,
  });
  await run(['add', '.'], work);
  await run(['commit', '-q', '-m', 'first'], work);
  const head = (await run(['rev-parse', 'HEAD'], work)).trim();
  await run(['clone', '-q', '--bare', 'work', 'repo.git']);
  await run(['update-server-info'], join(dir, 'repo.git'));

  // Static files only: git falls back to the dumb protocol.
  const root = join(dir, 'repo.git');
  let served = 0;
  const server = http.createServer((req, res) => {
    const path = normalize(decodeURIComponent((req.url ?? '/').split('?')[0])).replace(
      /^\/repo\.git/,
      '',
    );
    const file = join(root, path);
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.statusCode = 404;
      res.end();
      return;
    }
    served++;
    res.setHeader('content-type', 'application/octet-stream');
    createReadStream(file).pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const p = await startPortail(t, { acl: `policy git { when port == ${port} action allow }\n` });

  for (const [i, proxy] of [
    `http://127.0.0.1:${p.port}`,
    `socks5h://127.0.0.1:${p.port}`,
  ].entries()) {
    const dest = `clone${i}`;
    await run([
      '-c',
      `http.proxy=${proxy}`,
      'clone',
      '-q',
      `http://localhost:${port}/repo.git`,
      dest,
    ]);
    assert.equal((await run(['rev-parse', 'HEAD'], join(dir, dest))).trim(), head);
    assert.ok(existsSync(join(dir, dest, 'f50.txt')));
  }
  assert.ok(served > 0);
  const decisions = p.records().filter((r) => r.event === 'decision');
  assert.ok(decisions.length >= 2);
  assert.ok(decisions.every((d) => d.action === 'allow' && d.host === 'localhost'));
  assert.ok(
    decisions.some((d) => d.protocol === 'http') && decisions.some((d) => d.protocol === 'socks5'),
  );
});
