// portail's systemd integration. It knows no protocol and no policy: it hands sockets
// and messages between the daemon and systemd. Linux only; the native parts live in
// systemd/native/ (built by `npm install`) and load on first use. docs/operations.md
// says what an operator sees; this is how the daemon drives it.
//
// Start, in this order:
//   const passed = listenFds();                // Map name → fds (socket units and fd
//                                              // store alike); LISTEN_* cleared
//   const relays = recoverConnections(passed); // stored relays + their metadata, taken
//                                              // out of `passed`, removed from the store
//   for (const fd of passed.get('proxy') ?? []) await serverFromFd(fd, { server });
//     … 'control' and 'gateway' likewise (serverFromFd checks the kind of socket);
//   for a name systemd did not pass, bind it yourself, then
//     storeListeners('proxy', [socketFd(server)]);  // back as 'proxy' after a restart
//     or a crash. Store only what you bound: a socket unit keeps its own sockets.
//   for (const r of relays) { const [client, upstream] = r.fds.map((fd) => adoptSocket(fd));
//     write r.meta's saved bytes first, then relay as usual }
//   ready('serving on 127.0.0.1:1080'); startWatchdog();
// Reload: reloading('reloading'); …; ready('serving (reloaded)') — also when rejected.
// Stop:   stopping('stopping'); close the servers (the stored sockets stay open, new
//   clients wait in the backlog); let accepted connections finish their handshake;
//   per plain-TCP relay: const d = await detachSockets([client, upstream]);
//     (stops reading both, returns the fds and the bytes read but not yet forwarded)
//   storeConnections([{ name: traceId, fds: d.map((x) => x.fd), meta: { … } }, …]);
//   then destroy() every socket — never end(), which sends FIN — and exit.
// Any time: status('12 connections'); notify({ KEY: 'value' }) for anything else.
// Audit:  const journal = createJournalWriter();   // never throws, never blocks > 500 ms
//         journal.write({ MESSAGE: 'deny example.com:443', PRIORITY: 5, PORTAIL_ACTION: 'deny' });
//         pino(opts, createJournalWriter())   // JSON lines → MESSAGE, PRIORITY, PORTAIL_*
//         journalFieldName('bytes_up') === 'PORTAIL_BYTES_UP'
// Control socket: peerCred(socket) → { pid, uid, gid } of the unix-socket client.
// Outside systemd (no NOTIFY_SOCKET, no LISTEN_FDS) the notify and store calls return
// false or nothing and need no addon; the journal writer reports ENOENT to onError.
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
