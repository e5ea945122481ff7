// A real microsocks SOCKS5 server (no authentication) on loopback.
import { join } from 'node:path';
import type { Owner } from './cleanup.js';
import type { Peer } from './peer.js';
import { freePort } from './ports.js';
import { startProcess } from './process.js';
import { tmpDir } from './tmp.js';
import { which } from './tools.js';

export interface MicrosocksOptions {
  port?: number;
  host?: string;
  /** Source address of its outgoing connections (e.g. 127.0.0.11). */
  bindOutgoing?: string;
  t?: Owner;
}

export async function startMicrosocks(opts: MicrosocksOptions = {}): Promise<Peer> {
  const bin = which('microsocks');
  if (!bin) throw new Error('needs microsocks (apt-get install microsocks)');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dir = tmpDir(opts.t, 'portail-microsocks-');
  const args = ['-i', host, '-p', String(port)];
  if (opts.bindOutgoing) args.push('-b', opts.bindOutgoing);
  const p = await startProcess(bin, args, {
    t: opts.t,
    readyWhen: { port, host },
    name: 'microsocks',
    // It logs a line per connection: to a file, not through the timing process.
    outputFile: join(dir, 'microsocks.log'),
  });
  return { host, port, pid: p.pid, dir, process: p, stop: p.stop };
}
