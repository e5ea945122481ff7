export { DEFAULT_PROXY_ADDRESS, parseBindAddress } from './bind.js';
export type { DaemonOptions, RunningDaemon } from './daemon.js';
export { SHUTDOWN_GRACE_MS, StartupError, startDaemon } from './daemon.js';
