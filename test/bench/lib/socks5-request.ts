// The destination of a SOCKS5 CONNECT request (IPv4 or a name), for the reference Node
// proxies (bare-node-socks.ts, lean-node-socks.ts): no checks, they are not products.

export function requestTarget(d: Buffer): { host: string; port: number } {
  if (d[3] === 1) return { host: `${d[4]}.${d[5]}.${d[6]}.${d[7]}`, port: d.readUInt16BE(8) };
  const n = d[4] ?? 0;
  return { host: d.subarray(5, 5 + n).toString('latin1'), port: d.readUInt16BE(5 + n) };
}
