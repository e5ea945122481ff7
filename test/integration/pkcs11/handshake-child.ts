// Child process for the PKCS#11 tests: OpenSSL's pkcs11 engine loads once per process,
// so each identity is tried in a fresh one. Input: one JSON argument; output: one JSON line.
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import tls from 'node:tls';
import type { EscaperConfig } from '../../../proxy/config/types.js';
import { pkcs11TlsOptions } from '../../../proxy/connect/pkcs11.js';
import { loadTlsIdentity, tlsWrap } from '../../../proxy/connect/tls-identity.js';

interface Input {
  escapers: EscaperConfig[];
  port: number;
  connections: number;
  /** Go through the chaining code's loadTlsIdentity + tlsWrap instead of tls.connect. */
  viaTlsIdentity?: boolean;
}

async function viaIdentity(port: number, escaper: EscaperConfig): Promise<string> {
  const identity = await loadTlsIdentity(escaper, { proxyProtocol: false, requireTls: false });
  const tcp = net.connect(port, '127.0.0.1');
  await once(tcp, 'connect');
  const s = await tlsWrap(tcp, identity, {
    serverName: 'localhost',
    signal: AbortSignal.timeout(10_000),
    label: 'test',
  });
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  await once(s, 'end');
  s.destroy();
  return Buffer.concat(chunks).toString();
}

async function handshake(port: number, opts: tls.SecureContextOptions): Promise<string> {
  const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
  const chunks: Buffer[] = [];
  c.on('data', (d: Buffer) => chunks.push(d));
  await once(c, 'end');
  c.destroy();
  return Buffer.concat(chunks).toString();
}

const input = JSON.parse(process.argv[2]) as Input;
const out: {
  certs: string[];
  answers: string[];
  error?: string;
  sameContext?: boolean;
  /** The engine URIs handed to tls.connect (the PIN must not be in them). */
  identifiers: string[];
  /** PIN files left behind in the temporary folder (there must be none). */
  pinFilesLeft?: string[];
} = {
  certs: [],
  answers: [],
  identifiers: [],
};
try {
  const contexts: unknown[] = [];
  for (const escaper of input.escapers) {
    if (input.viaTlsIdentity) {
      for (let i = 0; i < input.connections; i++)
        out.answers.push(await viaIdentity(input.port, escaper));
      continue;
    }
    const opts = await pkcs11TlsOptions(escaper);
    out.certs.push(String(opts.cert));
    out.identifiers.push(String(opts.privateKeyIdentifier));
    contexts.push((opts as { secureContext?: unknown }).secureContext);
    for (let i = 0; i < input.connections; i++) out.answers.push(await handshake(input.port, opts));
  }
  out.sameContext = contexts.every((c) => c === contexts[0]);
} catch (e) {
  out.error = (e as Error).message;
}
out.pinFilesLeft = readdirSync(tmpdir()).filter((f) => f.startsWith('portail-pin-'));
process.stdout.write(`${JSON.stringify(out)}\n`);
