// SOCKS5 UDP ASSOCIATE (RFC 1928 section 7). A relay socket is bound on the address
// the client reached us on; datagrams are accepted from the client's IP only (and from
// the port it announced, else the port of its first datagram). Each destination is
// checked once with pipeline.allowDatagram and the answer kept for the association's
// life; denied and malformed datagrams are dropped silently, as UDP does. Replies are
// accepted only from the addresses we sent to. The association lives exactly as long
// as its TCP control connection.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, type Socket } from 'node:net';
import type { Target } from '../types.js';
import { answerAndClose } from './close.js';
import type { FrontEndContext } from './frontend.js';
import {
  addressFieldLength,
  decodeAddress,
  encodeAddress,
  encodeReply,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
} from './socks5-wire.js';
import { formatAuthority, socketIp } from './target.js';

/** Datagrams held per destination while its decision is pending. */
const MAX_QUEUED = 16;
/** A destination name's resolution is reused this long. */
const RESOLVE_TTL_MS = 30_000;

interface Destination {
  target: Target;
  state: 'pending' | 'allowed' | 'denied';
  queue: Buffer[];
  resolved?: { at: number; address: Promise<string | null> };
}

export function startUdpAssociation(control: Socket, ctx: FrontEndContext, requestedPort: number) {
  const localIp = socketIp(control.localAddress ?? '');
  const relay = dgram.createSocket(isIP(localIp) === 6 ? 'udp6' : 'udp4');
  const outbound = new Map<4 | 6, dgram.Socket>();
  const destinations = new Map<string, Destination>();
  /** "ip|port" we sent to: the only sources whose datagrams go back to the client. */
  const peers = new Set<string>();
  const maxDestinations = ctx.limits.maxUdpDestinations;
  let clientPort = requestedPort;
  let listening = false;
  let closed = false;

  const teardown = () => {
    if (closed) return;
    closed = true;
    for (const s of [relay, ...outbound.values()]) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    destinations.clear();
    peers.clear();
    if (!control.destroyed) control.destroy();
  };

  // The control connection carries nothing more; read it only to see it close.
  control.on('data', () => {});
  control.once('end', teardown);
  control.once('close', teardown);
  control.resume();

  relay.on('error', (err) => {
    if (!listening) {
      ctx.reportError(err, 'socks5-udp-bind');
      closed = true;
      relay.close();
      answerAndClose(control, encodeReply(REP_GENERAL_FAILURE));
      return;
    }
    teardown();
  });
  relay.bind({ address: localIp, port: 0 }, () => {
    listening = true;
    if (closed) return;
    const bound = relay.address();
    control.write(encodeReply(REP_SUCCEEDED, { address: bound.address, port: bound.port }));
  });

  relay.on('message', (msg, rinfo) => {
    if (closed || socketIp(rinfo.address) !== ctx.client.ip) return;
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
    const key = formatAuthority(target);
    let dest = destinations.get(key);
    if (dest === undefined) {
      dest = { target, state: 'pending', queue: [data] };
      remember(key, dest);
      decide(dest);
    } else if (dest.state === 'pending') {
      if (dest.queue.length < MAX_QUEUED) dest.queue.push(data);
    } else if (dest.state === 'allowed') {
      send(dest, data);
    }
  });

  function remember(key: string, dest: Destination) {
    if (destinations.size >= maxDestinations) {
      const oldest = destinations.keys().next().value;
      if (oldest !== undefined) destinations.delete(oldest);
    }
    destinations.set(key, dest);
  }

  function decide(dest: Destination) {
    let answer: Promise<boolean>;
    try {
      answer = ctx.pipeline.allowDatagram({
        target: dest.target,
        protocol: 'socks5',
        cmd: 'udp_associate',
        client: ctx.client,
        cert: ctx.cert,
      });
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (allowed) => {
        dest.state = allowed === true ? 'allowed' : 'denied';
        const queued = dest.queue;
        dest.queue = [];
        if (dest.state === 'allowed') for (const d of queued) send(dest, d);
      },
      (err: unknown) => {
        ctx.reportError(err, 'allowDatagram');
        dest.state = 'denied';
        dest.queue = [];
      },
    );
  }

  function send(dest: Destination, data: Buffer) {
    if (closed) return;
    const { host, port } = dest.target;
    if (isIP(host) !== 0) {
      sendTo(host, port, data);
      return;
    }
    const now = Date.now();
    if (dest.resolved === undefined || now - dest.resolved.at > RESOLVE_TTL_MS) {
      dest.resolved = {
        at: now,
        address: lookup(host).then(
          (r) => socketIp(r.address),
          () => null,
        ),
      };
    }
    dest.resolved.address.then((address) => {
      if (address !== null) sendTo(address, port, data);
    });
  }

  function sendTo(address: string, port: number, data: Buffer) {
    if (closed) return;
    const family = isIP(address) === 6 ? 6 : 4;
    let sock = outbound.get(family);
    if (sock === undefined) {
      sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      sock.on('error', teardown);
      sock.on('message', onReply);
      outbound.set(family, sock);
    }
    const peer = `${address}|${port}`;
    if (!peers.has(peer)) {
      if (peers.size >= maxDestinations * 4) peers.clear();
      peers.add(peer);
    }
    // Per-datagram failures (unreachable, too big) go to the callback, not 'error'.
    sock.send(data, port, address, ignore);
  }

  function onReply(msg: Buffer, rinfo: dgram.RemoteInfo) {
    if (closed || clientPort === 0) return;
    const source = socketIp(rinfo.address);
    if (!peers.has(`${source}|${rinfo.port}`)) return;
    const header = Buffer.concat([Buffer.from([0, 0, 0]), encodeAddress(source, rinfo.port)]);
    relay.send([header, msg], clientPort, ctx.client.ip, ignore);
  }
}

function ignore() {}
