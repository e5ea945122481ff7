// The audit file: appended with one synchronous write per batch (batch.ts). A regular
// file takes a write into the page cache at once, so this is the cheapest way (no
// thread hand-off, no intermediate buffering) and a decision is on disk's way before
// its connection relays a byte. Rotation: reopen() (SIGHUP) starts a new file at the
// same path. A failing write (full disk, revoked permission) is reported once per
// error code and the record dropped: the proxy keeps serving.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface FileSink {
  write(text: string): void;
  reopen(): void;
  close(): void;
}

export function openFileSink(path: string, onError: (err: Error) => void): FileSink {
  // An audit file that cannot be opened is a start-up error, not records lost later.
  const open = () => {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a', 0o640);
  };
  let fd: number;
  try {
    fd = open();
  } catch (err) {
    throw new Error(`cannot open the audit file ${path}: ${(err as Error).message}`);
  }
  const reported = new Set<string>();
  const fail = (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (e as NodeJS.ErrnoException).code ?? e.message;
    if (reported.has(code)) return;
    reported.add(code);
    onError(e);
  };
  return {
    write(text) {
      if (fd < 0) return;
      try {
        // The string is encoded by the write itself (no Buffer per batch). A regular file
        // takes everything at once; a short write (disk nearly full) is continued rather
        // than leaving half a line.
        const total = Buffer.byteLength(text);
        let off = writeSync(fd, text);
        if (off < total) {
          const buf = Buffer.from(text);
          while (off < total) off += writeSync(fd, buf, off);
        }
      } catch (err) {
        fail(err);
      }
    },
    reopen() {
      try {
        const next = open();
        if (fd >= 0) closeSync(fd);
        fd = next;
      } catch (err) {
        fail(err); // keep writing to the old file rather than nowhere
      }
    },
    close() {
      if (fd < 0) return;
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      fd = -1;
    },
  };
}
