// SOCKS5 wire format (RFC 1928): address fields, reply messages and the reply code for
// each refusal reason (docs/reference/wire.md, "Refusal reasons"). Shared by the TCP
// handshake and the UDP relay header.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { canonicalIp } from '../net/ip.js';
import type { RejectReason } from '../types.js';
import { normalizeTargetHost } from './target.js';

export const SOCKS_VERSION = 0x05;
export const METHOD_NO_AUTH = 0x00;
export const METHOD_NONE_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

export const REP_SUCCEEDED = 0x00;
export const REP_GENERAL_FAILURE = 0x01;
export const REP_NOT_ALLOWED = 0x02;
export const REP_HOST_UNREACHABLE = 0x04;
export const REP_CONNECTION_REFUSED = 0x05;
export const REP_TTL_EXPIRED = 0x06;
export const REP_COMMAND_NOT_SUPPORTED = 0x07;
export const REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08;

/**
 * docs/reference/wire.md, "Refusal reasons": denied 0x02, DNS/unreachable 0x04, refused
 * 0x05, timeout 0x06, 0x07, 0x08, else 0x01.
 */
export function replyCodeFor(reason: RejectReason): number {
  switch (reason) {
    case 'denied':
      return REP_NOT_ALLOWED;
    case 'dns':
    case 'unreachable':
      return REP_HOST_UNREACHABLE;
    case 'refused':
      return REP_CONNECTION_REFUSED;
    case 'timeout':
      return REP_TTL_EXPIRED;
    case 'unsupported-command':
      return REP_COMMAND_NOT_SUPPORTED;
    case 'unsupported-address':
      return REP_ADDRESS_TYPE_NOT_SUPPORTED;
    default:
      return REP_GENERAL_FAILURE;
  }
}

/** Length of the address field for an ATYP, given the byte after ATYP; undefined if unknown type. */
export function addressFieldLength(atyp: number, firstByte: number): number | undefined {
  if (atyp === ATYP_IPV4) return 4;
  if (atyp === ATYP_IPV6) return 16;
  if (atyp === ATYP_DOMAIN) return 1 + firstByte;
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes an address field (`field` starts after ATYP, exactly addressFieldLength long)
 * into a normalised host, or null when it cannot name a destination.
 */
export function decodeAddress(atyp: number, field: Uint8Array): string | null {
  if (atyp === ATYP_IPV4) return `${field[0]}.${field[1]}.${field[2]}.${field[3]}`;
  if (atyp === ATYP_IPV6) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((field[i] << 8) | field[i + 1]).toString(16));
    return canonicalIp(groups.join(':'));
  }
  if (atyp === ATYP_DOMAIN) {
    const name = field.subarray(1, 1 + field[0]);
    if (name.length === 0) return null;
    let text: string;
    try {
      text = utf8.decode(name);
    } catch {
      return null;
    }
    return normalizeTargetHost(text);
  }
  return null;
}

/** ATYP + address + port, as in a reply or a UDP header. Non-IP addresses go as a domain. */
export function encodeAddress(address: string, port: number): Buffer {
  const ip = canonicalIp(address);
  const p = Number.isInteger(port) && port >= 0 && port <= 0xffff ? port : 0;
  let out: Buffer;
  if (ip !== null && isIP(ip) === 4) {
    out = Buffer.alloc(7);
    out[0] = ATYP_IPV4;
    ip.split('.').forEach((octet, i) => {
      out[1 + i] = Number(octet);
    });
  } else if (ip !== null) {
    out = Buffer.alloc(19);
    out[0] = ATYP_IPV6;
    out.set(ipaddr.parse(ip).toByteArray(), 1);
  } else {
    const name = Buffer.from(address, 'utf8');
    if (name.length === 0 || name.length > 255) return encodeAddress('0.0.0.0', 0);
    out = Buffer.alloc(4 + name.length);
    out[0] = ATYP_DOMAIN;
    out[1] = name.length;
    name.copy(out, 2);
  }
  out.writeUInt16BE(p, out.length - 2);
  return out;
}

/** VER REP RSV ATYP BND.ADDR BND.PORT. */
export function encodeReply(code: number, bound = { address: '0.0.0.0', port: 0 }): Buffer {
  return Buffer.concat([
    Buffer.from([SOCKS_VERSION, code, 0x00]),
    encodeAddress(bound.address, bound.port),
  ]);
}
