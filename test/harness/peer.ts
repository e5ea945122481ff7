// What every real peer helper returns.
import type { Started } from './process.js';

export interface Peer {
  /** Address and port it listens on. */
  host: string;
  port: number;
  /** Leader of its process group (workers included in stop, CPU and RSS figures). */
  pid: number;
  /** Its private folder: generated config, pid file, logs. */
  dir: string;
  process: Started;
  /** Stops the whole process group; also done automatically when the owner ends. */
  stop(): Promise<void>;
}

/** Root runs peers that drop privileges to a system user; it must be able to read their files. */
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
