// HAProxy PROXY protocol v1 (text) and v2 (binary) headers, read before protocol
// detection when `[listener] proxy-protocol = true` (gateways behind an L4 load
// balancer). Parsing is strict and bounded: a header that is malformed, truncated,
// oversized or absent closes the connection, because what it carries (the client's
// address) feeds the ACL and the audit log.
import net, { type Socket } from 'node:net';
import { socketIp } from '../net/ip.js';

/** v1 headers are at most 107 bytes including CRLF (the protocol's own bound). */
export const V1_MAX_BYTES = 107;
/** v2: 16-byte fixed part + addresses + TLVs. Ours: at most 4 KiB in all (HAProxy sends far less). */
export const V2_MAX_BYTES = 4096;

export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

export type ProxyHeader =
  /** The load balancer's own connection (health check, LOCAL / UNKNOWN): keep the real peer. */
  | { kind: 'local'; length: number }
  /** A proxied connection: the client's address and port as the balancer saw them. */
  | { kind: 'proxy'; length: number; ip: string; port: number };

export type ParseResult =
  | { status: 'incomplete' }
  | { status: 'error'; message: string }
  | ({ status: 'ok' } & ProxyHeader);

const INCOMPLETE = { status: 'incomplete' } as const;
const err = (message: string) => ({ status: 'error', message }) as const;

/** Parses a PROXY header at the start of `buf`; `incomplete` while it could still become valid. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  return err('no PROXY protocol header');
}

function prefixMismatch(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).compare(prefix.subarray(0, n)) !== 0;
}

function parseV1(buf: Buffer): ParseResult {
  if (prefixMismatch(buf, V1_PREFIX)) return err('no PROXY protocol header');
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= V1_MAX_BYTES) return err('PROXY v1 header longer than 107 bytes');
    // A bare LF or a NUL is never part of a v1 line: fail early rather than wait.
    if (buf.includes(0x0a) || buf.includes(0x00)) return err('malformed PROXY v1 header');
    return INCOMPLETE;
  }
  const length = end + 2;
  if (length > V1_MAX_BYTES) return err('PROXY v1 header longer than 107 bytes');
  const line = buf.toString('latin1', 0, end);
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { status: 'ok', kind: 'local', length };
  if (parts.length !== 6) return err('malformed PROXY v1 header');
  const [, proto, src, dst, sport, dport] = parts;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) return err(`PROXY v1: unknown protocol "${proto.slice(0, 8)}"`);
  if (net.isIP(src) !== family || net.isIP(dst) !== family) {
    return err('PROXY v1: address does not match the protocol');
  }
  if (family === 4 && (!strictV4(src) || !strictV4(dst))) {
    return err('PROXY v1: malformed IPv4 address');
  }
  const port = v1Port(sport);
  if (port === null || v1Port(dport) === null) return err('PROXY v1: malformed port');
  return { status: 'ok', kind: 'proxy', length, ip: socketIp(src), port };
}

/** Dotted quad without leading zeros (net.isIP already bounds each part to 0-255). */
function strictV4(s: string): boolean {
  return s.split('.').every((p) => p === '0' || !p.startsWith('0'));
}

/** 0-65535 in decimal, no sign, no leading zero. */
function v1Port(s: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return null;
  const n = Number(s);
  return n <= 65535 ? n : null;
}

function parseV2(buf: Buffer): ParseResult {
  if (prefixMismatch(buf, V2_SIGNATURE)) return err('no PROXY protocol header');
  if (buf.length < 16) return INCOMPLETE;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return err('PROXY v2: unsupported version');
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return err('PROXY v2: unknown command');
  const famProto = buf[13];
  const addrLen = buf.readUInt16BE(14);
  const length = 16 + addrLen;
  if (length > V2_MAX_BYTES) return err(`PROXY v2 header longer than ${V2_MAX_BYTES} bytes`);
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: the balancer speaking for itself; the address block (if any) is ignored.
  if (cmd === 0) return { status: 'ok', kind: 'local', length };
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (transport > 2 || family > 3) return err('PROXY v2: unknown address family or protocol');
  // UNSPEC or AF_UNIX: nothing we can use as client.ip; keep the real peer.
  if (family === 0 || family === 3) {
    if (family === 3 && addrLen < 216) return err('PROXY v2: address block too short');
    return { status: 'ok', kind: 'local', length };
  }
  if (transport !== 1) return err('PROXY v2: only TCP (STREAM) connections are proxied here');
  const body = buf.subarray(16, length);
  if (family === 1) {
    if (addrLen < 12) return err('PROXY v2: address block too short');
    const ip = `${body[0]}.${body[1]}.${body[2]}.${body[3]}`;
    return { status: 'ok', kind: 'proxy', length, ip, port: body.readUInt16BE(8) };
  }
  if (addrLen < 36) return err('PROXY v2: address block too short');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
  const ip = socketIp(groups.join(':'));
  return { status: 'ok', kind: 'proxy', length, ip, port: body.readUInt16BE(32) };
}

/**
 * Reads a PROXY header from `socket` (paused mode, nothing lost: the bytes after the
 * header are put back), then calls `done` once. A client that closes, sends no valid
 * header, or exceeds the bounds gets `done(error)`; the caller closes it.
 */
export function readProxyHeader(
  socket: Socket,
  done: (result: ProxyHeader | { error: string }) => void,
): void {
  let head: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (r: ProxyHeader | { error: string }) => {
    if (finished) return;
    finished = true;
    socket.removeListener('readable', onReadable);
    socket.removeListener('end', onEnd);
    done(r);
  };
  const onEnd = () => finish({ error: 'closed before a complete PROXY header' });
  function onReadable() {
    while (!finished) {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return;
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const r = parseProxyHeader(head);
      if (r.status === 'incomplete') continue;
      if (r.status === 'error') {
        finish({ error: r.message });
        return;
      }
      if (head.length > r.length) socket.unshift(head.subarray(r.length));
      const { status: _, ...header } = r;
      finish(header);
    }
  }
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
}
