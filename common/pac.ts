// Proxy auto-config (docs/usage.md "Browsers and desktops", docs/configuration.md
// "[pac]"): `[pac] direct` entries checked at load, and the FindProxyForURL script the
// HTTP front-end serves at /proxy.pac. Pure: the configuration and the listener use it.
//
// The script never calls dnsResolve() or isInNet() on a name (each is a DNS query from the
// browser, on every request): networks match IP-literal hosts only, by arithmetic. A
// host it cannot read goes through the proxy: the failure is towards the ACL, never
// around it.
import { isIP } from 'node:net';

export type PacEntry =
  | { readonly kind: 'host'; readonly glob: string }
  | { readonly kind: 'net'; readonly bytes: readonly number[]; readonly prefix: number };

const GLOB = /^[a-z0-9*?._-]+$/;

/** One `[pac] direct` entry: a host glob (`*.local`), an IP, or a network (`10.0.0.0/8`). */
export function parsePacEntry(text: string): PacEntry | { error: string } {
  const slash = text.indexOf('/');
  const ipPart = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(ipPart);
  if (family !== 0) {
    const bytes = ipBytes(ipPart, family);
    const max = bytes.length * 8;
    let prefix = max;
    if (slash >= 0) {
      const p = text.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p) || Number(p) > max)
        return { error: `"${text}": the prefix length must be 0 to ${max}` };
      prefix = Number(p);
    }
    for (let bit = prefix; bit < max; bit++) {
      if ((bytes[bit >> 3] as number) & (0x80 >> (bit & 7)))
        return {
          error: `"${text}" has bits set beyond /${prefix}: did you mean ${maskedText(bytes, prefix, family)}/${prefix}?`,
        };
    }
    return { kind: 'net', bytes, prefix };
  }
  const glob = text.toLowerCase();
  if (!GLOB.test(glob) || glob.length > 253)
    return {
      error: `"${text}": expected a host name pattern ("*.local": letters, digits, "-", ".", "*", "?"), an IP address or a network ("10.0.0.0/8")`,
    };
  if (!/[a-z0-9]/.test(glob))
    return {
      error: `"${text}" would send every host direct: leave [pac] direct empty instead of proxying nothing`,
    };
  return { kind: 'host', glob };
}

function ipBytes(ip: string, family: number): number[] {
  if (family === 4) return ip.split('.').map(Number);
  // IPv6: groups around "::", a trailing dotted IPv4 counts as two groups.
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = (dotted[1] as string).split('.').map(Number) as [
      number,
      number,
      number,
      number,
    ];
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, -(dotted[1] as string).length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const fill = 8 - h.length - r.length - tail.length;
  const all = [...h, ...new Array<number>(Math.max(0, fill)).fill(0), ...r, ...tail];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function maskedText(bytes: readonly number[], prefix: number, family: number): string {
  const m = bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff00 >> keep) & 0xff);
  });
  if (family === 4) return m.join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2)
    g.push((((m[i] as number) << 8) | (m[i + 1] as number)).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/**
 * The PAC script: DIRECT for the entries, else SOCKS5 then HTTP through `proxy`
 * (HOST:PORT, IPv6 in brackets, the address the client reached).
 */
export function pacScript(entries: readonly PacEntry[], proxy: string): string {
  const globs = entries.filter((e) => e.kind === 'host').map((e) => e.glob);
  const nets = entries.filter((e) => e.kind === 'net').map((e) => [e.bytes, e.prefix] as const);
  const via = `SOCKS5 ${proxy}; PROXY ${proxy}`;
  return `// Proxy auto-config served by portail from [pac] direct (regenerated at each request).
function FindProxyForURL(url, host) {
  var globs = ${JSON.stringify(globs)};
  var nets = ${JSON.stringify(nets)};
  var h = String(host).toLowerCase();
  if (h.charAt(0) === "[" && h.charAt(h.length - 1) === "]") h = h.substring(1, h.length - 1);
  var i;
  for (i = 0; i < globs.length; i++) {
    if (shExpMatch(h, globs[i])) return "DIRECT";
  }
  var ip = null;
  if (/^\\d{1,3}(\\.\\d{1,3}){3}$/.test(h)) {
    ip = h.split(".");
    for (i = 0; i < 4; i++) {
      ip[i] = parseInt(ip[i], 10);
      if (ip[i] > 255) ip = null;
      if (ip === null) break;
    }
  } else if (/^[0-9a-f:]+$/.test(h) && h.indexOf(":") >= 0) {
    var halves = h.split("::");
    if (halves.length <= 2) {
      var head = halves[0] === "" ? [] : halves[0].split(":");
      var tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
      var fill = 8 - head.length - tail.length;
      if ((halves.length === 2 && fill >= 1) || (halves.length === 1 && fill === 0)) {
        var groups = head;
        for (i = 0; i < fill; i++) groups = groups.concat(["0"]);
        groups = groups.concat(tail);
        ip = [];
        for (i = 0; i < 8; i++) {
          var g = parseInt(groups[i], 16);
          if (!(g >= 0 && g <= 65535) || groups[i].length > 4) { ip = null; break; }
          ip.push(g >> 8, g & 255);
        }
      }
    }
  }
  if (ip !== null) {
    for (i = 0; i < nets.length; i++) {
      var net = nets[i][0], bits = nets[i][1], same = net.length === ip.length, b;
      for (b = 0; same && b < bits; b++) {
        var mask = 128 >> (b & 7);
        if ((ip[b >> 3] & mask) !== (net[b >> 3] & mask)) same = false;
      }
      if (same) return "DIRECT";
    }
  }
  return ${JSON.stringify(via)};
}
`;
}
