export type { BuildResult, Snapshot, SnapshotServices } from './snapshot.js';
export { backendMap, buildSnapshot } from './snapshot.js';
export type { ReloadResult, ReloadTrigger, State, StateOptions, SwapListener } from './state.js';
export { createState, StartupError } from './state.js';
export { type AclWatcher, createAclWatcher, WATCH_DEBOUNCE_MS } from './watch.js';
