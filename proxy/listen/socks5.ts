// SOCKS5 server side (RFC 1928), our own: method negotiation (no-auth only), CONNECT
// (IPv4, IPv6, domain) handed to the pipeline, UDP ASSOCIATE handed to the UDP relay,
// BIND and unknown commands answered 0x07. The handshake is read with
// hard bounds (a greeting is at most 257 bytes, a request at most 262) and any byte
// out of place ends the connection, with a 0x01 reply where the protocol has one.
import type { Socket } from 'node:net';
import type { Target } from '../types.js';
import { answerAndClose } from './close.js';
import type { FrontEndContext } from './frontend.js';
import type { HandshakeReader } from './handshake-reads.js';
import { startUdpAssociation } from './socks5-udp.js';
import {
  ATYP_DOMAIN,
  addressFieldLength,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  decodeAddress,
  encodeReply,
  METHOD_NO_AUTH,
  METHOD_NONE_ACCEPTABLE,
  REP_ADDRESS_TYPE_NOT_SUPPORTED,
  REP_COMMAND_NOT_SUPPORTED,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  replyCodeFor,
  SOCKS_VERSION,
} from './socks5-wire.js';
import { runTunnel } from './tunnel.js';

const METHOD_REPLY = Buffer.from([SOCKS_VERSION, METHOD_NO_AUTH]);
const NO_METHOD_REPLY = Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]);

/**
 * `head`: the bytes detection read (parsed first); `reader` goes on delivering the
 * client's next chunks here, and is stopped once the handshake is over.
 */
export function serveSocks5(
  socket: Socket,
  ctx: FrontEndContext,
  reader: HandshakeReader,
  head: Buffer,
): void {
  let buf: Buffer = head;
  let stage: 'greeting' | 'request' = 'greeting';

  const fail = (answer: Buffer, why: string): false => {
    reader.stop();
    ctx.reportMalformed('socks5', why);
    answerAndClose(socket, answer);
    return false;
  };

  /** Consumes what it can; false once the handshake is over (answered or handed on). */
  const advance = (): boolean => {
    if (stage === 'greeting') {
      if (buf.length < 2) return true;
      const count = buf[1];
      if (count === 0) return fail(NO_METHOD_REPLY, 'greeting offers no method');
      if (buf.length < 2 + count) return true;
      const offered = buf.subarray(2, 2 + count);
      buf = buf.subarray(2 + count);
      if (!offered.includes(METHOD_NO_AUTH))
        return fail(NO_METHOD_REPLY, 'no-authentication (0x00) not among the methods offered');
      socket.write(METHOD_REPLY);
      stage = 'request';
    }
    // VER CMD RSV ATYP ADDR PORT
    if (buf.length < 4) return true;
    if (buf[0] !== SOCKS_VERSION || buf[2] !== 0x00)
      return fail(
        encodeReply(REP_GENERAL_FAILURE),
        'request with a wrong version or reserved byte',
      );
    const cmd = buf[1];
    if (cmd !== CMD_CONNECT && cmd !== CMD_UDP_ASSOCIATE) {
      return fail(encodeReply(REP_COMMAND_NOT_SUPPORTED), `unsupported command 0x${hex(cmd)}`);
    }
    const atyp = buf[3];
    if (atyp === ATYP_DOMAIN && buf.length < 5) return true;
    const fieldLength = addressFieldLength(atyp, buf[4]);
    if (fieldLength === undefined)
      return fail(
        encodeReply(REP_ADDRESS_TYPE_NOT_SUPPORTED),
        `unsupported address type 0x${hex(atyp)}`,
      );
    const end = 4 + fieldLength + 2;
    if (buf.length < end) return true;
    const host = decodeAddress(atyp, buf.subarray(4, 4 + fieldLength));
    const port = buf.readUInt16BE(4 + fieldLength);
    if (cmd === CMD_CONNECT) {
      if (host === null || port === 0)
        return fail(
          encodeReply(REP_GENERAL_FAILURE),
          host === null ? 'CONNECT to an invalid address' : 'CONNECT to port 0',
        );
      // Bytes the client sent after its request belong to the tunnel.
      reader.stop(buf.subarray(end));
      ctx.handshakeDone();
      connect(socket, ctx, { host, port });
    } else {
      reader.stop();
      ctx.handshakeDone();
      // DST.ADDR/PORT: where the client will send from (RFC 1928), when it knows.
      startUdpAssociation(socket, ctx, port, host);
    }
    return false;
  };

  // Each chunk is parsed in the read's own callback (handshake-reads.ts).
  reader.consume = (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    advance();
  };
  advance();
}

function connect(socket: Socket, ctx: FrontEndContext, target: Target): void {
  runTunnel(
    ctx,
    { target, protocol: 'socks5', cmd: 'tcp_connect', client: ctx.client, cert: ctx.cert },
    {
      accept(bound) {
        socket.write(encodeReply(REP_SUCCEEDED, bound));
        return socket;
      },
      reject(refusal) {
        answerAndClose(socket, encodeReply(replyCodeFor(refusal.reason)));
      },
    },
  );
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
