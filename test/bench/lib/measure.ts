// What the benchmarks share: order statistics and a timed curl download.
import { spawn } from 'node:child_process';
import type { Endpoint } from './socks5-client.js';

export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Nearest-rank percentile (p in 0–100). */
export function percentile(xs: number[], p: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/**
 * One curl download (through `proxy` with --socks5-hostname, or direct): resolves with
 * the bytes received and the seconds it took; rejects unless exactly `expect` bytes came.
 */
export function curlDownload(
  proxy: Endpoint | undefined,
  url: string,
  expect: number,
): Promise<{ bytes: number; secs: number }> {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{size_download}', '--max-time', '600'];
  if (proxy) args.push('--socks5-hostname', `${proxy.host}:${proxy.port}`);
  args.push(url);
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const c = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.once('error', reject);
    c.once('close', (code) => {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const n = Number(out.trim());
      if (code !== 0 || n !== expect)
        reject(new Error(`curl exited ${code}, ${n} of ${expect} bytes: ${err.trim()}`));
      else resolve({ bytes: n, secs });
    });
  });
}
