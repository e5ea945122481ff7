// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7). A relay socket is bound on the address
// the client reached us on and advertised in the reply (or `public-address`).
// Datagrams are accepted only from the client: the IP address its request named
// (DST.ADDR, when not 0.0.0.0/::), else its TCP peer address; and from the port it named
// (DST.PORT), else the port of its first valid datagram. Each destination is decided
// once by the pipeline and the answer kept (bounded, least recently used evicted);
// denied, fragmented and malformed datagrams are dropped silently, as UDP does, and
// never end the association. Allowed datagrams leave from `outgoing-address` when set.
// Replies are accepted only from the addresses we sent to. The association ends with
// its TCP control connection, after idle-timeout without a datagram relayed either way,
// or when the pipeline closes it (reload, stop); then the pipeline writes its `close`
// record with the payload bytes of both directions.
import dgram from 'node:dgram';
import { isIP, type Socket } from 'node:net';
import { formatHostPort } from '../../common/host-port.js';
import { canonicalIp, socketIp } from '../net/ip.js';
import type { Refusal, Target } from '../types.js';
import { answerAndClose } from './close.js';
import type { FrontEndContext } from './frontend.js';
import {
  type AssociatingPipeline,
  type AssociationCloseReason,
  type AssociationHandle,
  type DatagramSession,
  isRefusal,
  openSession,
} from './socks5-udp-session.js';
import {
  addressFieldLength,
  decodeAddress,
  encodeAddress,
  encodeReply,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  replyCodeFor,
} from './socks5-wire.js';

/** Datagrams held per destination while its decision, or its name's resolution, is pending. */
const MAX_QUEUED = 16;
/** Destinations being decided at once; datagrams to further new ones are dropped. */
const MAX_PENDING = 64;
/** A destination name's resolution is reused this long (the resolver caches by TTL too). */
const RESOLVE_TTL_MS = 30_000;
/** A failed one (timeout, resolver overloaded) only this long: the name is asked again. */
const RESOLVE_RETRY_MS = 5_000;
const NO_ADDRESSES: Promise<string[] | null> = Promise.resolve(null);
/** Reply sources remembered per remembered destination (a name may have several addresses). */
const PEERS_PER_DESTINATION = 4;

interface Destination {
  target: Target;
  state: 'pending' | 'allowed' | 'denied';
  queue: Buffer[];
  /** The addresses the ACL checked (rules reading dst.ip): the only ones sent to. */
  checked?: string[];
  resolved?: { at: number; addresses: Promise<string[] | null>; waiting: number };
  /** undeliverable() was reported for it. */
  reported?: boolean;
}

/**
 * Serves an ASSOCIATE request whose DST.ADDR / DST.PORT were `requestedHost` (null when
 * absent or not an address) and `requestedPort`. Writes the reply on `control`.
 */
export function startUdpAssociation(
  control: Socket,
  ctx: FrontEndContext,
  requestedPort: number,
  requestedHost: string | null = null,
): void {
  const startedAt = Date.now();
  const localIp = socketIp(control.localAddress ?? '');
  const sourceIp = allowedSource(requestedHost, ctx.client.ip);
  let clientPort = requestedPort;
  /** rinfo.address as the kernel spells sourceIp (IPv4-mapped on a dual-stack socket…). */
  let sourceSpelling: string | undefined;
  const destinations = new Map<string, Destination>();
  /** "ip|port" we sent to: the only sources whose datagrams go back to the client. */
  const peers = new Set<string>();
  const maxDestinations = Math.max(1, ctx.limits.maxUdpDestinations);
  const outbound = new Map<4 | 6, dgram.Socket>();
  let relay: dgram.Socket | undefined;
  let session: DatagramSession | undefined;
  let state: 'opening' | 'open' | 'closed' = 'opening';
  let closeReason: AssociationCloseReason = 'completed';
  let pending = 0;
  let bytesUp = 0;
  let bytesDown = 0;
  let lastActivity = performance.now();
  let idleTimer: NodeJS.Timeout | undefined;

  const sessionClosed = (s: DatagramSession) => {
    try {
      s.closed({
        bytesUp,
        bytesDown,
        durationMs: Date.now() - startedAt,
        closeReason,
      });
    } catch (err) {
      ctx.reportError(err, 'socks5-udp close');
    }
  };

  /** Ends everything once; `answer` is written on the control connection first. */
  const teardown = (reason: AssociationCloseReason, answer?: Buffer) => {
    if (state === 'closed') return;
    state = 'closed';
    closeReason = reason;
    clearTimeout(idleTimer);
    for (const s of [relay, ...outbound.values()]) {
      try {
        s?.close();
      } catch {
        // not bound yet, or already closed
      }
    }
    destinations.clear();
    peers.clear();
    if (answer) answerAndClose(control, answer);
    else if (!control.destroyed) control.destroy();
    if (session) sessionClosed(session);
  };

  const handle: AssociationHandle = {
    close: (reason) => teardown(reason),
    forgetDecisions() {
      destinations.clear();
      peers.clear();
    },
  };

  // The control connection carries nothing more; read it only to see it end.
  control.on('data', () => {});
  control.once('end', () => teardown('completed'));
  control.once('close', (hadError) => teardown(hadError ? 'client_error' : 'completed'));
  control.resume();

  const req = {
    target: { host: requestedHost ?? '0.0.0.0', port: requestedPort },
    protocol: 'socks5' as const,
    cmd: 'udp_associate' as const,
    client: ctx.client,
    cert: ctx.cert,
  };
  let opened: Promise<DatagramSession | Refusal>;
  try {
    opened = openSession(ctx.pipeline as AssociatingPipeline, req, handle);
  } catch (err) {
    opened = Promise.reject(err);
  }
  opened.then(
    (answer) => {
      if (isRefusal(answer)) {
        teardown('client_error', encodeReply(replyCodeFor(answer.reason)));
        return;
      }
      session = answer;
      if (state === 'closed') sessionClosed(answer);
      else bindRelay(answer);
    },
    (err: unknown) => {
      ctx.reportError(err, 'socks5-udp associate');
      teardown('client_error', encodeReply(REP_GENERAL_FAILURE));
    },
  );

  function bindRelay(s: DatagramSession) {
    const sock = dgram.createSocket(isIP(localIp) === 6 ? 'udp6' : 'udp4');
    relay = sock;
    sock.on('error', (err) => {
      if (state === 'opening') {
        ctx.reportError(err, 'socks5-udp bind');
        teardown('client_error', encodeReply(REP_GENERAL_FAILURE));
      } else teardown('client_error');
    });
    sock.on('message', onClientDatagram);
    sock.bind({ address: localIp, port: 0 }, () => {
      if (state !== 'opening') return;
      state = 'open';
      const bound = sock.address();
      control.write(
        encodeReply(REP_SUCCEEDED, { address: s.publicAddress ?? bound.address, port: bound.port }),
      );
      touch();
      if (s.idleTimeoutMs > 0) armIdle(s.idleTimeoutMs);
    });
  }

  function touch() {
    lastActivity = performance.now();
  }

  // One timer per association, re-armed only when it fires: datagrams cost a clock read.
  function armIdle(ms: number) {
    idleTimer = setTimeout(() => {
      const timeout = session?.idleTimeoutMs ?? 0;
      const quiet = performance.now() - lastActivity;
      if (quiet >= timeout) teardown('idle_timeout');
      else armIdle(timeout - quiet);
    }, ms);
    idleTimer.unref();
  }

  function onClientDatagram(msg: Buffer, rinfo: dgram.RemoteInfo) {
    if (state !== 'open') return;
    // The kernel spells the client's address the same way each time: canonicalise once.
    if (rinfo.address !== sourceSpelling) {
      if (socketIp(rinfo.address) !== sourceIp) return;
      sourceSpelling = rinfo.address;
    }
    if (clientPort !== 0 && rinfo.port !== clientPort) return;
    // RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA; fragments are not supported: dropped.
    if (msg.length < 5 || msg[0] !== 0 || msg[1] !== 0 || msg[2] !== 0) return;
    const fieldLength = addressFieldLength(msg[3], msg[4]);
    if (fieldLength === undefined || msg.length < 4 + fieldLength + 2) return;
    const host = decodeAddress(msg[3], msg.subarray(4, 4 + fieldLength));
    const port = msg.readUInt16BE(4 + fieldLength);
    if (host === null || port === 0) return;
    if (clientPort === 0) clientPort = rinfo.port;
    const data = msg.subarray(4 + fieldLength + 2);
    const target = { host, port };
    const key = formatHostPort(target);
    let dest = destinations.get(key);
    if (dest === undefined) {
      if (pending >= MAX_PENDING) return;
      dest = { target, state: 'pending', queue: [data] };
      remember(key, dest);
      decide(dest);
      return;
    }
    // Least recently used first in line for eviction.
    destinations.delete(key);
    destinations.set(key, dest);
    if (dest.state === 'pending') {
      if (dest.queue.length < MAX_QUEUED) dest.queue.push(data);
    } else if (dest.state === 'allowed') {
      send(dest, data);
    }
  }

  function remember(key: string, dest: Destination) {
    if (destinations.size >= maxDestinations) {
      const oldest = destinations.keys().next().value;
      if (oldest !== undefined) destinations.delete(oldest);
    }
    destinations.set(key, dest);
  }

  function decide(dest: Destination) {
    const s = session as DatagramSession;
    pending++;
    let verdict: ReturnType<DatagramSession['decide']>;
    try {
      verdict = s.decide(dest.target);
    } catch (err) {
      verdict = Promise.reject(err);
    }
    verdict
      .then(
        (v) => {
          const queued = dest.queue;
          dest.queue = [];
          if (!v.send) {
            dest.state = 'denied';
            return;
          }
          // A decision naming backends comes back as send: false unless the
          // fallback-to-direct rule (docs/acl.md, "Evaluation") allows the direct exit (the
          // pipeline's associate, datagramExit).
          dest.state = 'allowed';
          if (v.addresses !== undefined) dest.checked = v.addresses;
          for (const d of queued) send(dest, d);
        },
        (err: unknown) => {
          ctx.reportError(err, 'socks5-udp decide');
          dest.state = 'denied';
          dest.queue = [];
        },
      )
      .finally(() => {
        pending--;
      });
  }

  function send(dest: Destination, data: Buffer) {
    if (state !== 'open') return;
    const { host } = dest.target;
    if (dest.checked !== undefined) return sendToOneOf(dest, dest.checked, data);
    if (isIP(host) !== 0) return sendToOneOf(dest, [host], data);
    const now = Date.now();
    if (dest.resolved === undefined || now - dest.resolved.at > RESOLVE_TTL_MS) {
      const entry: NonNullable<Destination['resolved']> = {
        at: now,
        addresses: NO_ADDRESSES,
        waiting: 0,
      };
      entry.addresses = (session as DatagramSession).resolve(host).then(
        (all) => all.map(socketIp),
        (err: unknown) => {
          report(dest, `cannot resolve ${host}: ${(err as Error).message}`);
          entry.at = Date.now() - RESOLVE_TTL_MS + RESOLVE_RETRY_MS;
          return null;
        },
      );
      dest.resolved = entry;
    }
    // Promise callbacks run in order: datagrams to one destination keep their order.
    // While the name resolves, as many wait as before a decision; later ones are dropped.
    const r = dest.resolved;
    if (r.waiting >= MAX_QUEUED) return;
    r.waiting++;
    r.addresses.then((all) => {
      r.waiting--;
      if (all !== null) sendToOneOf(dest, all, data);
    });
  }

  /** The first address of the family outgoing-address allows; none = dropped, reported once. */
  function sendToOneOf(dest: Destination, addresses: string[], data: Buffer) {
    if (state !== 'open') return;
    const outgoing = (session as DatagramSession).outgoingAddress;
    const family = outgoing === undefined ? 0 : isIP(outgoing);
    const address = family === 0 ? addresses[0] : addresses.find((a) => isIP(a) === family);
    if (address === undefined) {
      report(
        dest,
        family === 0
          ? `${dest.target.host} has no address`
          : `${dest.target.host} has no IPv${family} address (outgoing-address is ${outgoing})`,
      );
      return;
    }
    const sock = outboundFor(isIP(address) === 6 ? 6 : 4, dest);
    const peer = `${address}|${dest.target.port}`;
    if (!peers.has(peer)) {
      if (peers.size >= maxDestinations * PEERS_PER_DESTINATION) {
        const oldest = peers.values().next().value;
        if (oldest !== undefined) peers.delete(oldest);
      }
      peers.add(peer);
    }
    touch();
    // Per-datagram failures (unreachable, too big) go to the callback, not 'error'.
    sock.send(data, dest.target.port, address, (err) => {
      if (!err) bytesUp += data.length;
    });
  }

  function outboundFor(family: 4 | 6, first: Destination): dgram.Socket {
    let sock = outbound.get(family);
    if (sock !== undefined) return sock;
    const s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    s.on('error', (err) => {
      // Typically outgoing-address is not an address of this host (EADDRNOTAVAIL).
      report(first, `outbound UDP socket: ${err.message}`, true);
      teardown('upstream_error');
    });
    s.on('message', onReply);
    const outgoing = (session as DatagramSession).outgoingAddress;
    // Datagrams sent before the bind completes are queued by node:dgram.
    if (outgoing !== undefined) s.bind({ address: outgoing, port: 0 });
    outbound.set(family, s);
    sock = s;
    return sock;
  }

  function report(dest: Destination, why: string, always = false) {
    if (dest.reported && !always) return;
    dest.reported = true;
    try {
      session?.undeliverable(dest.target, why);
    } catch (err) {
      ctx.reportError(err, 'socks5-udp undeliverable');
    }
  }

  function onReply(msg: Buffer, rinfo: dgram.RemoteInfo) {
    if (state !== 'open' || clientPort === 0 || relay === undefined) return;
    const source = socketIp(rinfo.address);
    if (!peers.has(`${source}|${rinfo.port}`)) return;
    const header = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(source, rinfo.port)]);
    touch();
    relay.send([header, msg], clientPort, sourceIp, (err) => {
      if (!err) bytesDown += msg.length;
    });
  }
}

/** RFC 1928: DST.ADDR names the client's UDP source; all zeros (or a name) = unknown. */
function allowedSource(requestedHost: string | null, peerIp: string): string {
  const ip = requestedHost === null ? null : canonicalIp(requestedHost);
  if (ip === null || ip === '0.0.0.0' || ip === '::') return peerIp;
  return ip;
}
