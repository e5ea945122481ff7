// Binding the control socket by path (when systemd did not pass one): the folder is
// created, a stale socket left by a crashed daemon is replaced, a live one is not, and
// the socket is made connectable by everyone — authorization is by peer credentials.
import { mkdirSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';

export interface BindOptions {
  /** Socket file mode (default 0o666). */
  mode?: number;
}

function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** A listening server on `path`, half-open sockets allowed (answers outlive a client's end()). */
export async function bindControlSocket(path: string, opts: BindOptions = {}): Promise<net.Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isSocket()) {
      throw new Error(`${path} exists and is not a socket; refusing to replace it`);
    }
    if (await probe(path)) {
      throw Object.assign(new Error(`${path}: another daemon is already listening there`), {
        code: 'EADDRINUSE',
      });
    }
    await unlink(path);
  }
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, opts.mode ?? 0o666);
  return server;
}
