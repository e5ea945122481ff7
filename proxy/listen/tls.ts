// TLS on the proxy listener (gateway role, `[listener]` certificates): terminates TLS on
// a socket the listener detected as TLS, requires and verifies a client certificate when
// `cacert-file` is set, and hands the decrypted socket back to the listener with the
// certificate's facts and the ALPN protocol (h2, http/1.1, or none: detect again).
// Certificates are re-read on reload; connections keep the context they started with.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { ListenerConfig } from '../config/types.js';
import { canonicalIp } from '../net/ip.js';
import type { CertFacts, ClientFacts } from '../types.js';

export interface TlsSettings {
  /** Server certificate followed by its intermediates (PEM). */
  chain: Buffer;
  key: Buffer;
  /** Trust anchors for client certificates; when set, a verified client certificate is required. */
  ca?: Buffer;
}

/** What the decrypted connection is (for the listener's second detection). */
export interface TlsOutcome {
  auth: ClientFacts['auth'];
  cert?: CertFacts;
  /** Negotiated ALPN protocol, if any. */
  alpn?: string;
}

export type ServeDecrypted = (tlsSocket: Socket, outcome: TlsOutcome) => void;

export interface TlsTerminator {
  /** The listener's onTls hook. */
  onTls(socket: Socket, client: ClientFacts, serve: ServeDecrypted): void;
  /** New certificates (reload); undefined = no certificate: TLS connections are closed. */
  update(settings: TlsSettings | undefined): void;
  readonly enabled: boolean;
}

export interface TlsTerminatorOptions {
  /** A refused handshake (bad or missing client certificate, protocol error), for the audit log. */
  onFailure?: (client: ClientFacts, reason: string) => void;
}

/** ALPN we offer: HTTP/2 first (several CONNECT streams per connection), then HTTP/1.1. */
export const ALPN_PROTOCOLS = ['h2', 'http/1.1'];

/**
 * Reads `[listener]`'s files. Undefined when no server certificate is configured (TLS
 * is then not served). Throws a message naming the file when one cannot be read.
 */
export function readTlsSettings(listener: ListenerConfig): TlsSettings | undefined {
  const { tlsChain, tlsPrivkey, cacertFile } = listener;
  if (tlsChain === undefined && tlsPrivkey === undefined) return undefined;
  if (tlsChain === undefined || tlsPrivkey === undefined) {
    throw new Error('[listener] tls-chain and tls-privkey must be set together');
  }
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(
        `[listener] ${key} "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  const settings: TlsSettings = {
    chain: read('tls-chain', tlsChain),
    key: read('tls-privkey', tlsPrivkey),
  };
  if (cacertFile !== undefined) settings.ca = read('cacert-file', cacertFile);
  // Fails now (start or reload), not at the first client, when the key does not match.
  secureContextOf(settings);
  return settings;
}

function secureContextOf(s: TlsSettings): tls.SecureContext {
  try {
    return tls.createSecureContext({
      cert: s.chain,
      key: s.key,
      ca: s.ca,
      minVersion: 'TLSv1.2',
    });
  } catch (err) {
    throw new Error(`[listener] TLS certificate or key unusable: ${(err as Error).message}`);
  }
}

export function createTlsTerminator(
  initial: TlsSettings | undefined,
  opts: TlsTerminatorOptions = {},
): TlsTerminator {
  /** Handshakes in progress, by TCP 4-tuple (unique among live connections). */
  const pending = new Map<string, { client: ClientFacts; serve: ServeDecrypted }>();
  let server: tls.Server | undefined;

  const fail = (client: ClientFacts, reason: string) => {
    try {
      opts.onFailure?.(client, reason);
    } catch {
      // logging only
    }
  };

  // node's tls.Server never listens: sockets are fed with emit('connection') like the
  // HTTP front-ends, so that node's own certificate checks set `authorized`. Client
  // certificates are requested and judged here (rejectUnauthorized: false at the TLS
  // layer) so that every refusal is known, with its reason, before a byte is served.
  const makeServer = (s: TlsSettings): tls.Server => {
    const verify = s.ca !== undefined;
    secureContextOf(s); // a clear error for unusable files
    const srv = tls.createServer({
      cert: s.chain,
      key: s.key,
      ca: s.ca,
      minVersion: 'TLSv1.2',
      requestCert: verify,
      rejectUnauthorized: false,
      ALPNProtocols: ALPN_PROTOCOLS,
      // The listener's handshake-timeout covers the TLS handshake.
      handshakeTimeout: 0,
    });
    srv.on('secureConnection', (tlsSocket: tls.TLSSocket) => {
      const entry = takeEntry(tlsSocket);
      if (!entry) {
        tlsSocket.destroy();
        return;
      }
      tlsSocket.on('error', ignore);
      let outcome: TlsOutcome = { auth: 'none' };
      if (verify) {
        const peer = tlsSocket.getPeerCertificate();
        const present = peer && Object.keys(peer).length > 0;
        if (!present || !tlsSocket.authorized) {
          const why = !present
            ? 'no client certificate'
            : `client certificate not accepted: ${tlsSocket.authorizationError ?? 'unverified'}`;
          fail(entry.client, `TLS handshake refused: ${why}`);
          tlsSocket.destroy();
          return;
        }
        outcome = { auth: 'tls', cert: certFacts(peer) };
      }
      const alpn = tlsSocket.alpnProtocol;
      if (typeof alpn === 'string') outcome.alpn = alpn;
      entry.serve(tlsSocket as unknown as Socket, outcome);
    });
    srv.on('tlsClientError', (err: NodeJS.ErrnoException, tlsSocket: tls.TLSSocket) => {
      const entry = takeEntry(tlsSocket);
      tlsSocket.destroy();
      // A peer that merely disconnects (scanner, health check) is not worth a record.
      if (entry && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
        fail(entry.client, `TLS handshake refused: ${handshakeReason(err)}`);
      }
    });
    return srv;
  };

  const takeEntry = (s: Socket | tls.TLSSocket) => {
    const k = tupleKey(s);
    const e = pending.get(k);
    pending.delete(k);
    return e;
  };

  const update = (s: TlsSettings | undefined) => {
    server = s ? makeServer(s) : undefined;
  };
  update(initial);

  return {
    update,
    get enabled() {
      return server !== undefined;
    },
    onTls(socket, client, serve) {
      const srv = server;
      if (!srv || socket.remoteAddress === undefined) {
        socket.destroy();
        return;
      }
      // No Nagle under TLS: TLS writes whole records anyway, and Nagle would hold the
      // first answer (a CONNECT's 200) behind the TLS 1.3 session tickets until the
      // client's delayed ACK, ~40 ms per HTTP/1.1 tunnel.
      socket.setNoDelay(true);
      const key = tupleKey(socket);
      pending.set(key, { client, serve });
      socket.once('close', () => pending.delete(key));
      srv.emit('connection', socket);
    },
  };
}

function tupleKey(s: Socket | tls.TLSSocket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

function ignore() {}

function handshakeReason(err: NodeJS.ErrnoException): string {
  const msg = err.message || String(err.code);
  if (/peer did not return a certificate/i.test(msg)) return 'no client certificate';
  // "80EC…:error:0A000076:SSL routines:tls_choose_sigalg:no suitable …:../ssl/t1_lib.c:3242:"
  const m = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+)/i.exec(msg);
  return m ? m[1] : msg;
}

/**
 * The facts the ACL sees (docs/acl.md, "Attributes"): `client.cert.subject.cn` (absent when
 * the subject has no CN, or several), `client.cert.san` as "DNS:name", "IP:address" (canonical),
 * "email:…", "URI:…", and `client.cert.fingerprint`, the SHA-256 of the DER certificate
 * in openssl's spelling (upper-case hex pairs separated by colons).
 */
export function certFacts(peer: tls.PeerCertificate): CertFacts {
  const facts: CertFacts = {};
  const cn = peer.subject?.CN as string | string[] | undefined;
  if (typeof cn === 'string' && cn !== '') facts.subjectCn = cn;
  facts.san = parseSubjectAltName(peer.subjectaltname ?? '');
  if (peer.fingerprint256) facts.fingerprint = peer.fingerprint256.toUpperCase();
  return facts;
}

const SAN_TYPES: Record<string, string> = {
  DNS: 'DNS',
  'IP Address': 'IP',
  email: 'email',
  URI: 'URI',
};

/**
 * Node's `subjectaltname` text ("DNS:a, IP Address:127.0.0.1", values JSON-quoted when
 * they hold a comma or a quote) → our list. Entry types we do not name (DirName,
 * othername, Registered ID) are left out rather than guessed.
 */
export function parseSubjectAltName(text: string): string[] {
  const out: string[] = [];
  const entry =
    /(DNS|IP Address|email|URI|DirName|othername|Registered ID):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;
  let at = 0;
  while (at < text.length) {
    entry.lastIndex = at;
    const m = entry.exec(text);
    if (!m) break; // unparsable rest: keep what was certain
    at = entry.lastIndex;
    let value = m[2];
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    const type = SAN_TYPES[m[1]];
    if (type === undefined) continue;
    if (type === 'IP') value = canonicalIp(value) ?? value;
    if (type === 'DNS') value = value.toLowerCase();
    out.push(`${type}:${value}`);
  }
  return out;
}
