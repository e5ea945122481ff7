// A small DNS responder of the tests' own, on UDP at 127.0.0.x: answers A and AAAA from
// a zone (per-name TTL), NXDOMAIN for other names, and can be switched at any time to
// answer slowly, to stay silent or to answer SERVFAIL. Tests point portail at it through
// `[dns] resolvers`, or through a private /etc/resolv.conf (./netns.ts): DNS traffic of a
// test never leaves loopback.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { type Owner, track } from './cleanup.js';

export interface DnsRecordSet {
  a?: string[];
  aaaa?: string[];
  /** Seconds (default 60). */
  ttl?: number;
}

export type DnsMode =
  | { kind: 'answer' }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'silent' }
  | { kind: 'servfail' };

export interface DnsServerOptions {
  /** Loopback address to bind (default 127.0.0.1). */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  zone?: Record<string, DnsRecordSet>;
  /** Answer for every name the zone does not hold (default: NXDOMAIN). */
  wildcard?: DnsRecordSet;
  mode?: DnsMode;
  /** Modes for some names (first match wins), whatever the server's mode. */
  rules?: DnsRule[];
}

export interface DnsRule {
  match: RegExp;
  mode: DnsMode;
}

export interface DnsServer {
  host: string;
  port: number;
  /** `HOST:PORT`, as `[dns] resolvers` takes it. */
  address: string;
  zone: Record<string, DnsRecordSet>;
  setMode(mode: DnsMode): void;
  setWildcard(w: DnsRecordSet | undefined): void;
  setRules(rules: DnsRule[]): void;
  /** Questions received (whatever the mode). */
  readonly queries: number;
  /** Question names received, lower case, in order (the last 10,000). */
  readonly names: string[];
  close(): Promise<void>;
}

export async function startDnsServer(
  t: Owner | undefined,
  opts: DnsServerOptions = {},
): Promise<DnsServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!host.startsWith('127.')) throw new Error(`DNS test server must be on loopback, not ${host}`);
  const zone: Record<string, DnsRecordSet> = {};
  for (const [k, v] of Object.entries(opts.zone ?? {})) zone[k.toLowerCase()] = v;
  let mode: DnsMode = opts.mode ?? { kind: 'answer' };
  let wildcard = opts.wildcard;
  let rules = opts.rules ?? [];
  let queries = 0;
  const names: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sock = dgram.createSocket('udp4');
  sock.on('error', () => {});
  sock.on('message', (msg, rinfo) => {
    const q = parseQuestion(msg);
    if (q === null) return;
    queries++;
    names.push(q.name);
    if (names.length > 10_000) names.splice(0, names.length - 10_000);
    const m = rules.find((r) => r.match.test(q.name))?.mode ?? mode;
    if (m.kind === 'silent') return;
    const reply = () => {
      const out =
        m.kind === 'servfail'
          ? answer(msg, q, 2, [], 0)
          : respond(msg, q, zone[q.name] ?? wildcard);
      sock.send(out, rinfo.port, rinfo.address, () => {});
    };
    if (m.kind === 'slow') {
      const timer = setTimeout(() => {
        timers.delete(timer);
        reply();
      }, m.delayMs);
      timers.add(timer);
    } else reply();
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.port ?? 0, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const port = sock.address().port;
  let closed = false;
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      sock.close(() => resolve());
    });
  track(t, close, () => {
    if (!closed) sock.close();
  });
  return {
    host,
    port,
    address: `${host}:${port}`,
    zone,
    setMode(next) {
      mode = next;
    },
    setWildcard(w) {
      wildcard = w;
    },
    setRules(next) {
      rules = next;
    },
    get queries() {
      return queries;
    },
    get names() {
      return names;
    },
    close,
  };
}

interface Question {
  name: string;
  type: number;
  /** The question section as received (echoed in the answer). */
  raw: Buffer;
}

function parseQuestion(msg: Buffer): Question | null {
  if (msg.length < 17 || (msg[2] & 0x80) !== 0 || msg.readUInt16BE(4) !== 1) return null;
  let off = 12;
  const labels: string[] = [];
  while (off < msg.length && msg[off] !== 0) {
    const len = msg[off];
    if (len > 63 || off + 1 + len > msg.length) return null;
    labels.push(msg.subarray(off + 1, off + 1 + len).toString('latin1'));
    off += len + 1;
  }
  if (off + 5 > msg.length) return null;
  return {
    name: labels.join('.').toLowerCase(),
    type: msg.readUInt16BE(off + 1),
    raw: msg.subarray(12, off + 5),
  };
}

function respond(msg: Buffer, q: Question, set: DnsRecordSet | undefined): Buffer {
  if (set === undefined) return answer(msg, q, 3, [], 0);
  const ips = q.type === 1 ? (set.a ?? []) : q.type === 28 ? (set.aaaa ?? []) : [];
  return answer(msg, q, 0, ips, set.ttl ?? 60);
}

/** A response: rcode 0 (with `ips`), 2 (SERVFAIL) or 3 (NXDOMAIN). */
function answer(msg: Buffer, q: Question, rcode: number, ips: string[], ttl: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0);
  // QR, opcode 0, RD copied, RA.
  header.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ips.length, 6);
  const rrs = ips.map((ip) => {
    const rdata = isIP(ip) === 4 ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, q.raw, ...rrs]);
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':').map((x) => Number.parseInt(x, 16)) : [];
  const t = tail ? tail.split(':').map((x) => Number.parseInt(x, 16)) : [];
  const groups = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return Buffer.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
}
