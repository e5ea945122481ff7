// startProcess: readiness by port and by output, errors that say why, and cleanup of the
// whole process group when the owning test ends — including when it fails, and when the
// test file's process exits without stopping what it started.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  freePort,
  groupAlive,
  groupMembers,
  requireTool,
  sleep,
  startProcess,
  tmpDir,
} from '../../harness/index.js';

const harnessUrl = new URL('../../harness/index.js', import.meta.url).href;

/** A shell that starts a grandchild (sleep) and prints its pid, then waits. */
const FAMILY = ['-c', 'sleep 300 & echo "grandchild $!"; echo ready; wait'];

async function waitGone(pgid: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

describe('startProcess', () => {
  test('a process that exits before it is ready: rejected with its output', async (t) => {
    await assert.rejects(
      startProcess('sh', ['-c', 'echo "bad config line 3" >&2; exit 3'], {
        t,
        readyWhen: /never/,
      }),
      /exited \(3\) before it was ready[\s\S]*bad config line 3/,
    );
  });

  test('a command that does not exist: rejected, says it cannot start', async (t) => {
    await assert.rejects(
      startProcess('/nonexistent/portail-no-such-tool', [], { t, readyWhen: /x/ }),
      /cannot start/,
    );
  });

  test('not ready in time: rejected, and the whole group is killed', async (t) => {
    const port = await freePort();
    const pidFile = join(tmpDir(t), 'pid');
    await assert.rejects(
      startProcess('sh', ['-c', `echo $$ > ${pidFile}; sleep 300 & wait`], {
        t,
        readyWhen: port,
        timeoutMs: 300,
        killGraceMs: 200,
      }),
      /not ready after 300 ms \(waiting for 127\.0\.0\.1:\d+\)/,
    );
    const pgid = Number(readFileSync(pidFile, 'utf8')); // sh leads its own group
    assert.notEqual(pgid, process.pid);
    assert.ok(await waitGone(pgid), 'process group still alive');
  });

  test('ready when a port accepts, and when output matches', async (t) => {
    const port = await freePort();
    const server = `require('net').createServer(s=>s.end('ok')).listen(${port},'127.0.0.1',()=>console.log('listening'))`;
    const byPort = await startProcess(process.execPath, ['-e', server], { t, readyWhen: port });
    assert.ok(byPort.pid > 0);
    await byPort.stop();
    const byText = await startProcess(process.execPath, ['-e', server], {
      t,
      readyWhen: /listening/,
    });
    assert.match(byText.output(), /listening/);
  });

  test('output(): the last 256 KiB of a chatty child, or of its output file', async (t) => {
    // 600 KiB in lines, then a marker: what is kept is the end, at most 256 KiB.
    const script = 'for i in $(seq 1 6000); do printf "%0100d\\n" $i; done; echo END; sleep 30';
    const p = await startProcess('sh', ['-c', script], { t, readyWhen: /END/ });
    const out = p.output();
    assert.ok(out.endsWith('END\n'), out.slice(-50));
    assert.ok(out.length <= 256 * 1024 && out.length > 200 * 1024, String(out.length));
    await p.stop();
    const dir = tmpDir(t);
    const file = join(dir, 'out.log');
    const q = await startProcess('sh', ['-c', 'echo to-the-file; echo oops >&2; sleep 30'], {
      t,
      readyWhen: /oops/,
      outputFile: file,
    });
    assert.match(readFileSync(file, 'utf8'), /to-the-file\noops/);
    assert.match(q.output(), /to-the-file/);
  });

  test('stop() kills grandchildren too', async (t) => {
    const p = await startProcess('sh', FAMILY, { t, readyWhen: /ready/ });
    const grandchild = Number(/grandchild (\d+)/.exec(p.output())?.[1]);
    assert.ok(grandchild > 0);
    assert.ok(groupMembers(p.pid).some((m) => m.pid === grandchild));
    await p.stop();
    assert.ok(await waitGone(p.pid), 'group still alive after stop()');
    await p.stop(); // idempotent
  });

  test('stop() escalates to SIGKILL when SIGTERM is ignored', async (t) => {
    const p = await startProcess(
      'sh',
      ['-c', "trap '' TERM; echo ready; while :; do sleep 1; done"],
      {
        t,
        readyWhen: /ready/,
        killGraceMs: 200,
      },
    );
    const t0 = Date.now();
    await p.stop();
    assert.ok(await waitGone(p.pid, 1000));
    assert.ok(Date.now() - t0 < 2000);
  });

  test('a test process interrupted by SIGTERM kills what it started, then dies of it', async (t) => {
    const dir = tmpDir(t);
    const pidFile = join(dir, 'pid');
    const file = join(dir, 'interrupted.mjs');
    writeFileSync(
      file,
      `import { writeFileSync } from 'node:fs';
import { startProcess } from ${JSON.stringify(harnessUrl)};
const p = await startProcess('sh', ${JSON.stringify(FAMILY)}, { readyWhen: /ready/ });
writeFileSync(${JSON.stringify(pidFile)}, String(p.pid));
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, [file], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) =>
      child.once('exit', (_c, sig) => r(sig)),
    );
    let pgid = 0;
    for (let i = 0; i < 200 && !pgid; i++) {
      await sleep(25);
      try {
        pgid = Number(readFileSync(pidFile, 'utf8'));
      } catch {
        // not written yet
      }
    }
    assert.ok(pgid > 0, 'the child never started its process');
    assert.ok(groupAlive(pgid));
    child.kill('SIGTERM');
    assert.equal(await exited, 'SIGTERM');
    assert.ok(await waitGone(pgid), `process group ${pgid} survived SIGTERM of its starter`);
  });

  // The guarantee that matters most: a failing test must not leave servers behind.
  for (const variant of ['owner', 'no-owner'] as const) {
    test(`a failing test file leaves nothing running (${variant})`, async (t) => {
      if (!requireTool(t, 'sh')) return;
      const dir = tmpDir(t);
      const pidFile = join(dir, 'pid');
      const file = join(dir, 'fails.test.mjs');
      writeFileSync(
        file,
        `import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { startProcess } from ${JSON.stringify(harnessUrl)};
test('deliberately fails', async (t) => {
  const p = await startProcess('sh', ${JSON.stringify(FAMILY)}, { ${variant === 'owner' ? 't, ' : ''}readyWhen: /ready/ });
  writeFileSync(${JSON.stringify(pidFile)}, String(p.pid));
  throw new Error('deliberate failure');
});
`,
      );
      // Run the file directly (it is its own test runner); drop the runner's marker so
      // the child does not think it is nested inside this file's run.
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20_000, env });
      assert.equal(r.status, 1, `the inner test should fail:\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /deliberate failure/);
      const pgid = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(await waitGone(pgid), `process group ${pgid} survived the failing test`);
    });
  }
});
