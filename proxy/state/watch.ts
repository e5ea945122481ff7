// watch-acl: reload when an ACL or list file changes. fs.watch on the files' folders
// (not the files: editors replace a file by renaming a new one over it, which a watch
// on the old inode never sees), filtered by name, debounced so that a burst of writes
// (an editor's save, a generated list being rewritten) costs one reload.
import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

export const WATCH_DEBOUNCE_MS = 500;

export interface AclWatcher {
  /** Watch exactly these files from now on (folders are added and dropped as needed). */
  setFiles(files: Iterable<string>): void;
  close(): void;
}

export function createAclWatcher(
  onChange: () => void,
  opts: { debounceMs?: number; onError?: (dir: string, err: Error) => void } = {},
): AclWatcher {
  const debounceMs = opts.debounceMs ?? WATCH_DEBOUNCE_MS;
  /** folder → names of interest in it, and its watcher. */
  const dirs = new Map<string, { names: Set<string>; watcher: FSWatcher | null }>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const fire = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) onChange();
    }, debounceMs);
  };

  function open(dir: string, names: Set<string>) {
    try {
      const w = watch(dir, { persistent: true }, (_event, filename) => {
        // No name (some platforms) = cannot tell: assume it is ours.
        if (filename === null || names.has(filename.toString())) fire();
      });
      w.on('error', (err) => opts.onError?.(dir, err));
      return w;
    } catch (err) {
      // The folder does not exist (yet): nothing to watch there.
      opts.onError?.(dir, err as Error);
      return null;
    }
  }

  return {
    setFiles(files) {
      if (closed) return;
      const wanted = new Map<string, Set<string>>();
      for (const f of files) {
        const d = dirname(f);
        let names = wanted.get(d);
        if (!names) {
          names = new Set();
          wanted.set(d, names);
        }
        names.add(basename(f));
      }
      for (const [d, entry] of dirs) {
        if (!wanted.has(d)) {
          entry.watcher?.close();
          dirs.delete(d);
        }
      }
      for (const [d, names] of wanted) {
        const entry = dirs.get(d);
        if (entry) {
          // Same Set object is captured by the watcher callback: update it in place.
          entry.names.clear();
          for (const n of names) entry.names.add(n);
          if (entry.watcher === null) entry.watcher = open(d, entry.names);
        } else {
          dirs.set(d, { names, watcher: open(d, names) });
        }
      }
    },
    close() {
      closed = true;
      clearTimeout(timer);
      for (const e of dirs.values()) e.watcher?.close();
      dirs.clear();
    },
  };
}
