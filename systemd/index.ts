// portail's systemd integration. It knows no protocol and no policy: it hands sockets
// and messages between the daemon and systemd. Linux only; the native parts live in
// systemd/native/ (built by `npm install`) and load on first use.
//
// Start (in this order):
//   const passed = listenFds();                 // Map name → fds; env LISTEN_* cleared
//   const relays = recoverConnections(passed);  // stored connections + metadata, taken
//                                               // out of `passed`, removed from the store
//   for (const fd of passed.get('proxy') ?? []) await serverFromFd(fd, { server });
//   ...names 'control' and 'gateway' likewise; bind yourself what is missing, then
//   storeListeners('proxy', [socketFd(server)])  // survives restarts and crashes
//   for (const r of relays) { const [a, b] = r.fds.map((fd) => adoptSocket(fd)); ... }
//   ready('serving on 127.0.0.1:1080');  startWatchdog();
// Reload:   reloading('reloading');  ...;  ready('serving (reloaded)')
// Stop:     stopping('stopping');
//   handing relays over (restart): const d = await detachSockets([client, upstream]);
//   storeConnections([{ name: traceId, fds: d.map((x) => x.fd), meta: { unread… } }]);
//   then destroy() every socket (never end()) and exit.
// Status:   status('12 connections');   Any other assignment: notify({ KEY: value }).
// Audit:    const j = createJournalWriter();
//           j.write({ MESSAGE: 'deny example.com:443', PRIORITY: 5, PORTAIL_ACTION: 'deny' });
//           pino(opts, createJournalWriter())   // JSON lines → MESSAGE/PRIORITY/PORTAIL_*
// Control:  peerCred(socket) → { pid, uid, gid } of a unix-socket client.
// Outside systemd (no NOTIFY_SOCKET / LISTEN_FDS) every call is a cheap no-op returning
// false or empty; nothing needs the addon until systemd is really there.
export {
  checkSocket,
  listenFds,
  type PassedFd,
  parseListenEnv,
  type SocketKind,
  serverFromFd,
} from './activation.js';
export {
  adoptSocket,
  type DetachedSocket,
  detachSockets,
  type RecoveredConnection,
  recoverConnections,
  type StoredConnection,
  socketFd,
  storeConnections,
  storeListeners,
} from './fdstore.js';
export {
  createJournalWriter,
  encodeJournalEntry,
  type JournalFields,
  type JournalWriter,
  journalFieldName,
  journalFieldsFromRecord,
} from './journald.js';
export {
  barrier,
  fdStore,
  fdStoreRemove,
  monotonicUsec,
  type NotifyState,
  notify,
  ready,
  reloading,
  startWatchdog,
  status,
  stopping,
  type Watchdog,
} from './notify.js';
export { type PeerCred, peerCred } from './peercred.js';
