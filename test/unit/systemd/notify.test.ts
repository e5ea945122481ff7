// sd_notify messages as systemd receives them: a real datagram socket stands for
// NOTIFY_SOCKET and gets the text and the passed fds.
import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  barrier,
  fdStore,
  fdStoreRemove,
  formatNotify,
  notify,
  notifySocket,
  ready,
  reloading,
  startWatchdog,
  status,
  stopping,
} from '../../../systemd/notify.js';
import { type FakeSocket, fakeSocket } from './helpers.js';

let sock: FakeSocket;
let saved: string | undefined;
beforeEach(() => {
  saved = process.env.NOTIFY_SOCKET;
  sock = fakeSocket();
  process.env.NOTIFY_SOCKET = sock.path;
});
afterEach(() => {
  if (saved === undefined) delete process.env.NOTIFY_SOCKET;
  else process.env.NOTIFY_SOCKET = saved;
  sock.close();
});

const next = () => sock.recv(1000)?.data.toString();

describe('outside systemd', () => {
  test('every call is a no-op returning false when NOTIFY_SOCKET is unset', () => {
    delete process.env.NOTIFY_SOCKET;
    assert.equal(notify({ READY: 1 }), false);
    assert.equal(ready('x'), false);
    assert.equal(fdStore('proxy', [0]), false);
    assert.equal(barrier(10), false);
    assert.equal(startWatchdog({ env: { WATCHDOG_USEC: '1000000' } })?.stop(), undefined);
    assert.equal(sock.recv(0), null);
  });

  test('an address we cannot serve is an error, not a silent no-op', () => {
    assert.throws(() => notifySocket({ socketPath: 'vsock:2:1234' }), /unsupported NOTIFY_SOCKET/);
  });
});

describe('formatNotify', () => {
  test('refuses invalid keys and empty messages', () => {
    assert.throws(() => formatNotify({}), TypeError);
    assert.throws(() => formatNotify({ ready: 1 }), TypeError);
    assert.throws(() => formatNotify({ 'READY=1\nX': 1 }), TypeError);
  });

  test('a value cannot inject another assignment', () => {
    assert.equal(formatNotify({ STATUS: 'bad file\nREADY=1\r\n' }), 'STATUS=bad file READY=1 \n');
  });
});

describe('state messages', () => {
  test('READY, STOPPING, STATUS and free assignments', () => {
    assert.equal(ready('serving'), true);
    assert.equal(next(), 'READY=1\nSTATUS=serving\n');
    stopping();
    assert.equal(next(), 'STOPPING=1\n');
    status('3 connections');
    assert.equal(next(), 'STATUS=3 connections\n');
    notify({ ERRNO: 2, BUSERROR: 'org.x.Failed' });
    assert.equal(next(), 'ERRNO=2\nBUSERROR=org.x.Failed\n');
  });

  test('RELOADING carries MONOTONIC_USEC read from CLOCK_MONOTONIC', () => {
    const before = process.hrtime.bigint() / 1000n;
    reloading('reloading');
    const after = process.hrtime.bigint() / 1000n;
    const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=reloading\n$/.exec(next() ?? '');
    assert.ok(m, 'message shape');
    const usec = BigInt(m[1]);
    assert.ok(usec >= before && usec <= after);
  });

  test('a send failure is thrown, so that the caller knows', () => {
    process.env.NOTIFY_SOCKET = `${sock.path}.missing`;
    assert.throws(() => ready(), { code: 'ENOENT' });
  });
});

describe('file descriptor store', () => {
  test('FDSTORE=1 with FDNAME passes the fds', () => {
    const fd = openSync(new URL(import.meta.url).pathname, 'r');
    try {
      assert.equal(fdStore('proxy', [fd]), true);
      const d = sock.recv(1000);
      assert.equal(d?.data.toString(), 'FDSTORE=1\nFDNAME=proxy\n');
      assert.equal(d?.fds.length, 1);
      assert.equal(fstatSync(d?.fds[0] ?? -1).ino, fstatSync(fd).ino);
      for (const f of d?.fds ?? []) closeSync(f);
      fdStoreRemove('proxy');
      assert.equal(next(), 'FDSTOREREMOVE=1\nFDNAME=proxy\n');
    } finally {
      closeSync(fd);
    }
  });

  test('names systemd would reject are refused here', () => {
    for (const bad of ['', 'a:b', 'tab\there', 'x'.repeat(256), 'é']) {
      assert.throws(() => fdStore(bad, [0]), TypeError, bad);
    }
    assert.equal(fdStore('proxy', []), false, 'nothing to store');
    assert.equal(sock.recv(0), null);
  });
});

describe('watchdog', () => {
  test('not enabled: no WATCHDOG_USEC, garbage, zero, or another WATCHDOG_PID', () => {
    assert.equal(startWatchdog({ env: {} }), null);
    assert.equal(startWatchdog({ env: { WATCHDOG_USEC: 'soon' } }), null);
    assert.equal(startWatchdog({ env: { WATCHDOG_USEC: '0' } }), null);
    assert.equal(startWatchdog({ env: { WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' } }), null);
    assert.equal(sock.recv(50), null);
  });

  test('pings at half the interval, unsets the variables, and stops', async () => {
    const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) };
    const w = startWatchdog({ env });
    assert.ok(w);
    assert.equal(w.intervalMs, 50);
    assert.deepEqual(env, {});
    await new Promise((r) => setTimeout(r, 180));
    w.stop();
    const pings = sock.drainText();
    assert.ok(pings.length >= 2 && pings.length <= 5, `${pings.length} pings`);
    assert.ok(pings.every((p) => p === 'WATCHDOG=1\n'));
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(sock.recv(0), null, 'no ping after stop()');
  });

  test('a failing ping goes to onError and the timer goes on', async () => {
    process.env.NOTIFY_SOCKET = `${sock.path}.missing`;
    const errors: string[] = [];
    const w = startWatchdog({
      env: { WATCHDOG_USEC: '40000' },
      onError: (e) => errors.push(String((e as NodeJS.ErrnoException).code)),
    });
    await new Promise((r) => setTimeout(r, 70));
    w?.stop();
    assert.ok(errors.length >= 2);
    assert.ok(errors.every((c) => c === 'ENOENT'));
  });
});
