// `--bind-proxy-address HOST:PORT` (repeatable; IPv6 in brackets). Port 0 asks the
// kernel for a free port (tests, ad-hoc runs); the ready line prints the real one.
import net from 'node:net';
import { formatHostPort, parseHostPort } from '../../common/host-port.js';

export const DEFAULT_PROXY_ADDRESS = '127.0.0.1:1080';

export interface BindAddress {
  host: string;
  port: number;
}

export function parseBindAddress(text: string): BindAddress {
  const zero = /:0$/.test(text);
  const hp = parseHostPort(zero ? `${text.slice(0, -2)}:1` : text);
  if ('error' in hp) throw new Error(`--bind-proxy-address ${hp.error}`);
  return { host: hp.host, port: zero ? 0 : hp.port };
}

/** Binds one listening server; rejects with a message naming the address. */
export function listenOn(server: net.Server, addr: BindAddress): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'address already in use'
          : err.code === 'EADDRNOTAVAIL'
            ? 'no such local address'
            : err.code === 'EACCES'
              ? 'permission denied'
              : err.message;
      reject(new Error(`cannot listen on ${formatHostPort(addr)}: ${why}`));
    };
    server.once('error', onError);
    // An IPv6 address means IPv6 only: `[::]:1080` must not silently take IPv4 too.
    server.listen({ host: addr.host, port: addr.port, ipv6Only: net.isIP(addr.host) === 6 }, () => {
      server.off('error', onError);
      const a = server.address() as net.AddressInfo;
      resolve(formatHostPort({ host: a.address, port: a.port }));
    });
  });
}
