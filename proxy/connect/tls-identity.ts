// Our client identity for identity-aware backends (docs/configuration.md, "[escaper]"): TLS to the
// upstream, with our certificate when [escaper] has one (as upstream: a node that only
// names trust anchors still speaks verified TLS, docs/upstream.md), the upstream's
// certificate ALWAYS verified — against
// `[escaper] cacert-file`, else `[listener] cacert-file` (as upstream), else the
// system store — and its name checked against `tls-server-name` (default: the
// backend's host). There is no option to skip verification, on purpose.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { EscaperConfig, ListenerConfig } from '../config/types.js';
import { abortError } from '../net/abort.js';
import { ConnectError } from '../types.js';

/** Debian's bundle of the system's trust anchors (ca-certificates). */
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface TlsIdentity {
  /** Key, certificate and trust anchors for tls.connect. */
  options: tls.SecureContextOptions;
  /** Where the trust anchors came from (diagnostics). */
  trust: string;
  /** False when [escaper] names no certificate: TLS is then spoken without one. */
  hasClientCertificate: boolean;
}

let systemBundle: string | undefined | null = null;
function systemCa(): string | undefined {
  if (systemBundle === null) {
    systemBundle = existsSync(SYSTEM_BUNDLE) ? readFileSync(SYSTEM_BUNDLE, 'utf8') : undefined;
  }
  return systemBundle;
}

/** Reads the identity once per configuration (files were checked when it was loaded). */
export async function loadTlsIdentity(
  escaper: EscaperConfig,
  listener: ListenerConfig,
): Promise<TlsIdentity> {
  const options: tls.SecureContextOptions = {};
  let trust: string;
  const caFile = escaper.cacertFile ?? listener.cacertFile;
  if (caFile !== undefined) {
    options.ca = await readFile(caFile, 'utf8');
    trust = caFile;
  } else {
    // Node's bundled roots when the system has no bundle.
    options.ca = systemCa();
    trust = options.ca ? SYSTEM_BUNDLE : "Node's bundled roots";
  }
  let hasClientCertificate = false;
  if (escaper.pkcs11Uri !== undefined) {
    // The engine-backed secure context is built once per process and carries its own
    // trust anchors (tls.connect ignores `ca` beside a secureContext): give it ours,
    // including the [listener] fallback.
    // The loaded [escaper] itself: its login state and PIN are kept by object.
    // pkcs11.ts (and the native pkcs11js) only when a token is configured
    // (docs/performance.md, "Footprint").
    const { pkcs11TlsOptions } = await import('./pkcs11.js');
    const hw = await pkcs11TlsOptions(escaper, { cacertFile: caFile });
    // The trust anchors stay ours whatever the token module returns.
    Object.assign(options, hw, { ca: options.ca });
    hasClientCertificate = true;
  } else if (escaper.tlsCertificate !== undefined && escaper.tlsPrivkey !== undefined) {
    options.cert = await readFile(escaper.tlsCertificate, 'utf8');
    options.key = await readFile(escaper.tlsPrivkey, 'utf8');
    hasClientCertificate = true;
  }
  return { options, trust, hasClientCertificate };
}

/**
 * TLS over an already connected `stream` (or a TCP socket), verified against the
 * identity's trust anchors and `serverName`, offering `alpn` when given. Resolves once
 * the handshake completed.
 */
export function tlsWrap(
  stream: Duplex,
  identity: TlsIdentity,
  opts: { serverName: string; signal: AbortSignal; label: string; alpn?: string[] },
): Promise<tls.TLSSocket> {
  const { serverName, signal, label } = opts;
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      ...identity.options,
      socket: stream as net.Socket,
      // SNI carries names only (RFC 6066 3); an IP literal is still verified below.
      ...(net.isIP(serverName) ? {} : { servername: serverName }),
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert),
      ALPNProtocols: opts.alpn,
    });
    let settled = false;
    const fail = (err: ConnectError) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      stream.destroy();
      reject(err);
    };
    const onAbort = () => fail(abortError(signal, `TLS to ${label}`));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.off('error', onError);
      sock.off('close', onClose);
      resolve(sock);
    });
    const onError = (e: Error) =>
      fail(
        new ConnectError(
          'internal',
          `TLS to ${label} failed (trust: ${identity.trust}, name: ${serverName}): ${e.message}`,
        ),
      );
    const onClose = () =>
      fail(new ConnectError('internal', `TLS to ${label}: closed during the handshake`));
    sock.on('error', onError);
    sock.on('close', onClose);
  });
}
