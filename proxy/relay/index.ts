export type { Closable } from './registry.js';
export { RelayRegistry } from './registry.js';
export type { CloseReason, DetachedRelay, Relay, RelayOptions, RelayStats } from './relay.js';
export { relay } from './relay.js';
