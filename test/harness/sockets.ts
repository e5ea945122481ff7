// A connected socket's four addresses as the socket table asks for them (proxy/context/
// socket-table.ts PeerAddress): the peer, and our end.
import type net from 'node:net';

export function peerAddressOf(s: net.Socket): {
  ip: string;
  port: number;
  localIp: string;
  localPort: number;
} {
  return {
    ip: s.remoteAddress as string,
    port: s.remotePort as number,
    localIp: s.localAddress as string,
    localPort: s.localPort as number,
  };
}
