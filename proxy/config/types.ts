// The validated configuration (docs/configuration.md) as the rest of portail sees it: camelCase,
// durations in milliseconds, every path absolute, deeply frozen.
import type { Diagnostic } from '../../acl-lang/types.js';
import type { PacEntry } from '../../common/pac.js';

export type { Diagnostic };

/** A host (name or IP literal, IPv6 without brackets) and a port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `type` of a backend; absent = speak the client's own protocol (upstream behaviour). */
export type BackendType = 'socks5' | 'http' | 'ssh';

export interface BackendConfig {
  readonly name: string;
  readonly type?: BackendType;
  /** Absent only for a dynamic backend whose address has not been set yet. */
  readonly targetAddress?: HostPort;
  readonly dynamic: boolean;
  /** TLS with our [escaper] identity, then the backend's protocol. */
  readonly identityAware: boolean;
  /** SNI and name to verify; absent = the target address host. */
  readonly tlsServerName?: string;
  /**
   * Identity-aware HTTP backends: offer `h2` by ALPN (pooled HTTP/2 CONNECT). False =
   * offer only `http/1.1` (one TLS connection per tunnel). Absent = true.
   */
  readonly http2?: boolean;
  /** SSH backends only. */
  readonly user?: string;
  readonly identityFile?: string;
  readonly agent: boolean;
  readonly knownHosts?: string;
}

export interface DnsConfig {
  /** Resolver addresses as written (IP, IP:PORT or [IPv6]:PORT); empty = system resolver. */
  readonly resolvers: readonly string[];
  readonly timeoutMs: number;
}

export interface ListenerConfig {
  /** When set, client certificates are required and verified against it. */
  readonly cacertFile?: string;
  readonly tlsPrivkey?: string;
  readonly tlsChain?: string;
  readonly proxyProtocol: boolean;
  readonly requireTls: boolean;
}

export interface EscaperConfig {
  /** Trust anchors for identity-aware backends; absent = [listener] cacert-file, then the system store. */
  readonly cacertFile?: string;
  readonly tlsPrivkey?: string;
  readonly tlsCertificate?: string;
  readonly pkcs11Uri?: string;
  readonly pkcs11Module?: string;
}

export interface RpcConfig {
  readonly adminGroups: readonly string[];
  readonly trustedGroups: readonly string[];
}

export type AuditSink =
  | { readonly kind: 'journald' }
  | { readonly kind: 'stdout' }
  | { readonly kind: 'file'; readonly path: string };

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface LogConfig {
  /** Absent = where the log preset sends it. */
  readonly audit?: AuditSink;
  readonly level: LogLevel;
}

export interface MetricsConfig {
  /** Absent = no metrics endpoint. */
  readonly listen?: HostPort;
}

export interface PacConfig {
  /** Hosts and networks the served PAC sends DIRECT (docs/configuration.md "[pac]"). */
  readonly direct: readonly PacEntry[];
}

export interface GeoipConfig {
  readonly database?: string;
}

export interface Config {
  /** Absolute path of the file this was loaded from. */
  readonly file: string;
  readonly filterAclRulesPath?: string;
  readonly explainAclRulesPath?: string;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** 0 = no idle timeout. */
  readonly idleTimeoutMs: number;
  readonly tcpNodelay: boolean;
  readonly maxConnections: number;
  readonly defaultBackend?: string;
  readonly fallbackToDirect: boolean;
  readonly watchAcl: boolean;
  readonly outgoingAddress?: string;
  /** Address advertised in SOCKS5 UDP ASSOCIATE replies (upstream's `public-address`). */
  readonly publicAddress?: string;
  readonly dns: DnsConfig;
  readonly listener: ListenerConfig;
  readonly escaper: EscaperConfig;
  readonly rpc: RpcConfig;
  readonly log: LogConfig;
  readonly metrics: MetricsConfig;
  readonly pac: PacConfig;
  readonly geoip: GeoipConfig;
  /**
   * By name, in file order; a frozen object without prototype (so `Object.keys`,
   * `Object.hasOwn` and `name in` are safe for any name). Check membership before indexing.
   */
  readonly backends: Readonly<Record<string, BackendConfig>>;
  /** Accepted but suspicious settings (e.g. tls-server-name without identity-aware). */
  readonly warnings: readonly Diagnostic[];
}
