// The daemon's metrics (docs/reference/metrics.md): one registry of our own (never
// prom-client's global one), Node's process metrics prefixed `portail_`, and ours.
//
// The data path pays for nothing it does not have to: what the listener, the state, the
// resolver and the refusal log count already is read at scrape time (collect()), and what
// the pipeline reports goes to label children created once (per protocol, action,
// reason, backend, policy) — no allocation per request. Label values are bounded: no
// host, no user; policy and backend names are capped (MAX_NAMES, then "(other)").
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type LabelValues,
  Registry,
  type RegistryContentType,
} from 'prom-client';
import type { ActionKind } from '../../acl-lang/index.js';
import { tokenState } from '../connect/pkcs11-login.js';
import type { ProxyListener } from '../listen/listener.js';
import type { ResolverStats } from '../net/resolver.js';
import type { PipelineObserver } from '../pipeline/core.js';
import type { ReloadResult, State } from '../state/state.js';
import type { RejectReason } from '../types.js';

/** Distinct policy (or backend) names given their own label value; then "(other)". */
export const MAX_NAMES = 1000;
export const OTHER = '(other)';
/** The `policy` label of a decision no policy made (no match, no ACL). */
export const NO_POLICY = '(none)';

export interface MetricsSources {
  listener: Pick<ProxyListener, 'byProtocol' | 'refused' | 'handshakeTimeouts'>;
  pipeline: { readonly active: number };
  state: Pick<State, 'current' | 'backends' | 'onReload'>;
  refusals: { readonly suppressed: number };
}

export interface Metrics {
  readonly registry: Registry<RegistryContentType>;
  readonly observer: PipelineObserver;
  /** Relays handed over to the next process (restart) or resumed from the previous one. */
  handedOver(n: number): void;
  resumed(n: number): void;
  /** The exposition: OpenMetrics 1.0.0 or Prometheus text 0.0.4. */
  render(openMetrics: boolean): Promise<{ contentType: string; body: string }>;
}

const PROTOCOL_LABEL = { socks5: 'socks5', http1: 'http', http2: 'http2', tls: 'tls' } as const;
const ACTIONS: readonly ActionKind[] = ['allow', 'deny', 'redirect'];
const CONNECT_ERRORS: readonly RejectReason[] = [
  'dns',
  'unreachable',
  'refused',
  'timeout',
  'internal',
];
const RESOLVER: ReadonlyArray<[keyof ResolverStats, string, string]> = [
  ['lookups', 'lookups', 'Names looked up (IP literals not counted).'],
  ['cacheHits', 'cache_hits', 'Lookups answered from the cache.'],
  ['negativeHits', 'negative_cache_hits', 'Lookups answered "no such name" from the cache.'],
  ['coalesced', 'coalesced', 'Lookups that joined a query already under way.'],
  ['queries', 'queries', 'DNS queries sent.'],
  ['refused', 'refused', 'Lookups refused at once: the query queue was full.'],
  ['timedOut', 'timeouts', 'DNS queries that reached the timeout.'],
  ['cancelled', 'cancelled', 'DNS queries cancelled: every waiter left before the answer.'],
];

interface Inc {
  inc(n?: number): void;
}
interface Observe {
  observe(v: number): void;
}

/** A counter whose value something else keeps: the scrape adds what it grew by. */
function mirror(
  counter: Counter<string>,
  labels: LabelValues<string> | undefined,
): (v: number) => void {
  let last = 0;
  const child: Inc = labels ? counter.labels(labels) : counter;
  return (v) => {
    // A smaller value is a fresh source (a resolver rebuilt by a reload): it started at 0.
    const delta = v >= last ? v - last : v;
    last = v;
    if (delta > 0) child.inc(delta);
  };
}

export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry<RegistryContentType>();
  collectDefaultMetrics({ register: registry, prefix: 'portail_' });
  // prom-client's `nodejs_active_*_total` are gauges named like counters (promtool
  // refuses them); their per-type twins without the suffix stay.
  for (const m of registry.getMetricsAsArray()) {
    const { name, type } = m as unknown as { name: string; type: string };
    if (type === 'gauge' && name.endsWith('_total')) registry.removeSingleMetric(name);
  }
  const registers = [registry];

  // Connections, read from the listener's counters.
  const accepted = new Counter({
    name: 'portail_connections_accepted_total',
    help: 'Client connections accepted, by the protocol detected first (tls whatever it carries).',
    labelNames: ['protocol'],
    registers,
    collect: () => {
      for (const [p, set] of acceptedSetters) set(src.listener.byProtocol[p].accepted);
    },
  });
  const acceptedSetters = (Object.keys(PROTOCOL_LABEL) as Array<keyof typeof PROTOCOL_LABEL>).map(
    (p) => [p, mirror(accepted, { protocol: PROTOCOL_LABEL[p] })] as const,
  );
  new Gauge({
    name: 'portail_connections_active',
    help: 'Client connections open now, by the protocol detected first.',
    labelNames: ['protocol'],
    registers,
    collect() {
      for (const p of Object.keys(PROTOCOL_LABEL) as Array<keyof typeof PROTOCOL_LABEL>)
        this.labels(PROTOCOL_LABEL[p]).set(src.listener.byProtocol[p].active);
    },
  });
  const refusedConn = new Counter({
    name: 'portail_connections_refused_total',
    help: 'Client connections refused because max-connections was reached.',
    registers,
    collect: () => setRefused(src.listener.refused),
  });
  const setRefused = mirror(refusedConn, undefined);
  const timeouts = new Counter({
    name: 'portail_handshake_timeouts_total',
    help: 'Client connections closed because their handshake did not complete in time.',
    registers,
    collect: () => setTimeouts(src.listener.handshakeTimeouts),
  });
  const setTimeouts = mirror(timeouts, undefined);
  new Gauge({
    name: 'portail_relays_active',
    help: 'Requests being decided or connected, open relays and forward exchanges.',
    registers,
    collect() {
      this.set(src.pipeline.active);
    },
  });

  // What the pipeline reports.
  const decisions = new Counter({
    name: 'portail_decisions_total',
    help: `ACL decisions, by action and deciding policy ("${NO_POLICY}": no policy matched).`,
    labelNames: ['action', 'policy'],
    registers,
  });
  const evalSeconds = new Histogram({
    name: 'portail_acl_evaluation_seconds',
    help: 'Time of the ACL evaluation alone (not DNS or socket-table lookups).',
    buckets: [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2],
    registers,
  });
  const connectSeconds = new Histogram({
    name: 'portail_connect_seconds',
    help: 'Time to open the exit of an allowed request (failover included), by the way taken.',
    labelNames: ['backend'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const bytes = new Counter({
    name: 'portail_bytes_total',
    help: 'Bytes relayed, counted when the relay or exchange closes (up: client to destination).',
    labelNames: ['direction'],
    registers,
  });
  const errors = new Counter({
    name: 'portail_connect_errors_total',
    help: 'Allowed requests whose exit could not be opened, by kind.',
    labelNames: ['kind'],
    registers,
  });
  const reloads = new Counter({
    name: 'portail_reloads_total',
    help: 'Reloads, by result.',
    labelNames: ['result'],
    registers,
  });
  const handed = new Counter({
    name: 'portail_relays_handed_over_total',
    help: 'Open relays handed over to the next process (restart).',
    registers,
  });
  const resumedRelays = new Counter({
    name: 'portail_relays_resumed_total',
    help: 'Relays resumed from the previous process (restart).',
    registers,
  });

  // Read at scrape time.
  new Gauge({
    name: 'portail_backend_up',
    help: 'Per configured backend: 1 when tried, 0 while backed off after failures.',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      for (const h of src.state.backends.health()) this.labels(h.name).set(h.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'portail_pkcs11_token_disabled',
    help: 'The [escaper] PKCS#11 token is disabled after a refused PIN (1), else 0.',
    registers,
    collect() {
      this.set(tokenState(src.state.current().config.escaper)?.state === 'disabled' ? 1 : 0);
    },
  });
  const suppressed = new Counter({
    name: 'portail_refusals_suppressed_total',
    help: 'Refusal records and lines left out of the log by its rate limit.',
    registers,
    collect: () => setSuppressed(src.refusals.suppressed),
  });
  const setSuppressed = mirror(suppressed, undefined);
  // Counters of the resolver in force; a reload may build a new one (from 0).
  let resolverSeen: unknown;
  const resolverCounters: Inc[] = [];
  const resolverLast: number[] = [];
  for (const [, name, help] of RESOLVER) {
    resolverCounters.push(
      new Counter({
        name: `portail_resolver_${name}_total`,
        help,
        registers,
        collect: readResolver,
      }),
    );
    resolverLast.push(0);
  }
  // Every resolver counter's collect calls this; the first of a scrape reads them all.
  let resolverReadAt = -1;
  function readResolver(): void {
    const now = performance.now();
    if (now - resolverReadAt < 100) return;
    resolverReadAt = now;
    const r = src.state.current().services.resolver as { stats?: ResolverStats };
    if (r.stats === undefined) return;
    if (r !== resolverSeen) {
      resolverSeen = r;
      resolverLast.fill(0);
    }
    for (let i = 0; i < RESOLVER.length; i++) {
      const v = r.stats[(RESOLVER[i] as (typeof RESOLVER)[number])[0]] as number;
      const delta = v - (resolverLast[i] as number);
      resolverLast[i] = v;
      if (delta > 0) (resolverCounters[i] as Inc).inc(delta);
    }
  }

  // Children made once: the set-up path only calls inc/observe.
  const NONE: Inc[] = ACTIONS.map((a) => decisions.labels(a, NO_POLICY));
  const OTHERS: Inc[] = ACTIONS.map((a) => decisions.labels(a, OTHER));
  const byPolicy = new Map<string, Inc[]>();
  const byBackend = new Map<string, Observe>();
  const otherBackend = connectSeconds.labels(OTHER);
  const errorKinds = new Map<string, Inc>(CONNECT_ERRORS.map((k) => [k, errors.labels(k)]));
  const up = bytes.labels('up');
  const down = bytes.labels('down');
  const reloadOk = reloads.labels('ok');
  const reloadFailed = reloads.labels('failed');
  src.state.onReload((r: ReloadResult) => (r.ok ? reloadOk : reloadFailed).inc());
  // Series known from the start are shown at 0 (a rate() needs the first sample).
  for (const c of [...NONE, ...errorKinds.values(), up, down, reloadOk, reloadFailed]) c.inc(0);
  connectSeconds.zero({ backend: 'direct' });

  const observer: PipelineObserver = {
    decision(action, policy, evalUs) {
      let row: Inc[] | undefined = NONE;
      if (policy !== null) {
        row = byPolicy.get(policy);
        if (row === undefined) {
          if (byPolicy.size >= MAX_NAMES) row = OTHERS;
          else {
            row = ACTIONS.map((a) => decisions.labels(a, policy));
            byPolicy.set(policy, row);
          }
        }
      }
      (row[action === 'allow' ? 0 : action === 'deny' ? 1 : 2] as Inc).inc();
      evalSeconds.observe(evalUs / 1e6);
    },
    connected(route, ms) {
      let child = byBackend.get(route);
      if (child === undefined) {
        if (byBackend.size >= MAX_NAMES) child = otherBackend;
        else {
          child = connectSeconds.labels(route);
          byBackend.set(route, child);
        }
      }
      child.observe(ms / 1000);
    },
    connectFailed(reason) {
      let child = errorKinds.get(reason);
      if (child === undefined) {
        // Reasons are a closed set (types.ts RejectReason): bounded.
        child = errors.labels(reason);
        errorKinds.set(reason, child);
      }
      child.inc();
    },
    closed(bytesUp, bytesDown) {
      if (bytesUp > 0) up.inc(bytesUp);
      if (bytesDown > 0) down.inc(bytesDown);
    },
  };

  // prom-client renames counters in place for OpenMetrics (drops `_total`): names are
  // put back before each rendering, and renderings run one at a time.
  const names = new Map(registry.getMetricsAsArray().map((m) => [m, m.name] as const));
  let queue: Promise<unknown> = Promise.resolve();
  async function renderNow(openMetrics: boolean) {
    for (const [m, name] of names) (m as { name: string }).name = name;
    const contentType = openMetrics
      ? Registry.OPENMETRICS_CONTENT_TYPE
      : Registry.PROMETHEUS_CONTENT_TYPE;
    registry.setContentType(contentType);
    return { contentType, body: await registry.metrics() };
  }

  return {
    registry,
    observer,
    handedOver: (n) => handed.inc(n),
    resumed: (n) => resumedRelays.inc(n),
    render(openMetrics) {
      const p = queue.then(() => renderNow(openMetrics));
      queue = p.catch(() => undefined);
      return p;
    },
  };
}
