// The daemon's metrics (docs/reference/metrics.md): one registry of our own (never
// prom-client's global one), Node's process metrics prefixed `portail_`, and ours.
//
// The data path pays for nothing it does not have to: what the listener, the state, the
// resolver and the refusal log count already is read at scrape time (collect()), and
// what the pipeline reports adds to plain numbers kept here (one row per policy, per
// backend, made once) that the scrape copies into prom-client — whose own inc() and
// observe() build a label hash (and a closure) per call. No allocation per request.
// Label values are bounded: no host, no user; policy and backend names are capped
// (MAX_NAMES, then "(other)").
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
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
import { FixedHistogram, type Observer } from './histogram.js';

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

type Protocol = keyof typeof PROTOCOL_LABEL;
const PROTOCOLS = Object.keys(PROTOCOL_LABEL) as Protocol[];
const EVAL_BUCKETS = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2];
const CONNECT_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** A counter whose value is read at scrape time (absolute; labelled or not). */
function counter(
  registry: Registry<RegistryContentType>,
  name: string,
  help: string,
  read: () => number,
): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A counter with one label, its values read at scrape time: [label value, count]. */
function labelledCounter(
  registry: Registry<RegistryContentType>,
  name: string,
  help: string,
  label: string,
  read: () => Iterable<readonly [string, number]>,
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, n] of read()) this.inc({ [label]: value }, n);
    },
  });
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

  // What the pipeline reports, as plain numbers.
  /** Per policy name: allow, deny, redirect. */
  const byPolicy = new Map<string, Float64Array>();
  const noPolicy = new Float64Array(3);
  const otherPolicy = new Float64Array(3);
  const errorCounts = new Map<string, number>(CONNECT_ERRORS.map((k) => [k, 0]));
  const bytes = { up: 0, down: 0 };
  const reloads = { ok: 0, failed: 0 };
  const relays = { handedOver: 0, resumed: 0 };
  src.state.onReload((r: ReloadResult) => {
    if (r.ok) reloads.ok++;
    else reloads.failed++;
  });

  // Connections, read from the listener's counters.
  labelledCounter(
    registry,
    'portail_connections_accepted_total',
    'Client connections accepted, by the protocol detected first (tls whatever it carries).',
    'protocol',
    () => PROTOCOLS.map((p) => [PROTOCOL_LABEL[p], src.listener.byProtocol[p].accepted] as const),
  );
  new Gauge({
    name: 'portail_connections_active',
    help: 'Client connections open now, by the protocol detected first.',
    labelNames: ['protocol'],
    registers,
    collect() {
      for (const p of PROTOCOLS)
        this.set({ protocol: PROTOCOL_LABEL[p] }, src.listener.byProtocol[p].active);
    },
  });
  counter(
    registry,
    'portail_connections_refused_total',
    'Client connections refused because max-connections was reached.',
    () => src.listener.refused,
  );
  counter(
    registry,
    'portail_handshake_timeouts_total',
    'Client connections closed because their handshake did not complete in time.',
    () => src.listener.handshakeTimeouts,
  );
  new Gauge({
    name: 'portail_relays_active',
    help: 'Requests being decided or connected, open relays and forward exchanges.',
    registers,
    collect() {
      this.set(src.pipeline.active);
    },
  });

  new Counter({
    name: 'portail_decisions_total',
    help: `ACL decisions, by action and deciding policy ("${NO_POLICY}": no policy matched; "${OTHER}": beyond the first ${MAX_NAMES} names).`,
    labelNames: ['action', 'policy'],
    registers,
    collect() {
      this.reset();
      const row = (policy: string, n: Float64Array) => {
        for (let i = 0; i < ACTIONS.length; i++)
          if (n[i] !== 0 || policy === NO_POLICY)
            this.inc({ action: ACTIONS[i] as string, policy }, n[i] as number);
      };
      row(NO_POLICY, noPolicy);
      for (const [policy, n] of byPolicy) row(policy, n);
      row(OTHER, otherPolicy);
    },
  });
  const evalSeconds = new FixedHistogram(
    'portail_acl_evaluation_seconds',
    'Time of the ACL evaluation alone (not DNS or socket-table lookups).',
    EVAL_BUCKETS,
    registry,
  ).child();
  const connectHistogram = new FixedHistogram(
    'portail_connect_seconds',
    'Time to open the exit of an allowed request (failover included), by the way taken.',
    CONNECT_BUCKETS,
    registry,
  );
  const byBackend = new Map<string, Observer>([
    ['direct', connectHistogram.child({ backend: 'direct' })],
  ]);
  let otherBackend: Observer | undefined;
  labelledCounter(
    registry,
    'portail_bytes_total',
    'Bytes relayed, counted when the relay or exchange closes (up: client to destination).',
    'direction',
    () => [
      ['up', bytes.up],
      ['down', bytes.down],
    ],
  );
  labelledCounter(
    registry,
    'portail_connect_errors_total',
    'Allowed requests whose exit could not be opened, by kind.',
    'kind',
    () => errorCounts,
  );
  labelledCounter(registry, 'portail_reloads_total', 'Reloads, by result.', 'result', () => [
    ['ok', reloads.ok],
    ['failed', reloads.failed],
  ]);
  counter(
    registry,
    'portail_relays_handed_over_total',
    'Open relays handed over to the next process (restart).',
    () => relays.handedOver,
  );
  counter(
    registry,
    'portail_relays_resumed_total',
    'Relays resumed from the previous process (restart).',
    () => relays.resumed,
  );

  // Read at scrape time.
  new Gauge({
    name: 'portail_backend_up',
    help: 'Per configured backend: 1 when tried, 0 while backed off after failures.',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      for (const h of src.state.backends.health()) this.set({ backend: h.name }, h.healthy ? 1 : 0);
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
  counter(
    registry,
    'portail_refusals_suppressed_total',
    'Refusal records and lines left out of the log by its rate limit.',
    () => src.refusals.suppressed,
  );

  // The resolver in force; a reload may build a new one (from 0): totals carry on.
  let resolverSeen: unknown;
  const resolverTotal = new Float64Array(RESOLVER.length);
  const resolverLast = new Float64Array(RESOLVER.length);
  let resolverReadAt = -1;
  const readResolver = () => {
    // Every resolver counter's collect calls this; the first of a scrape reads them all.
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
      if (v > (resolverLast[i] as number)) resolverTotal[i] += v - (resolverLast[i] as number);
      resolverLast[i] = v;
    }
  };
  RESOLVER.forEach(([, name, help], i) => {
    counter(registry, `portail_resolver_${name}_total`, help, () => {
      readResolver();
      return resolverTotal[i] as number;
    });
  });

  const observer: PipelineObserver = {
    decision(action, policy, evalUs) {
      let row: Float64Array = noPolicy;
      if (policy !== null) {
        const known = byPolicy.get(policy);
        if (known !== undefined) row = known;
        else if (byPolicy.size >= MAX_NAMES) row = otherPolicy;
        else {
          row = new Float64Array(3);
          byPolicy.set(policy, row);
        }
      }
      row[action === 'allow' ? 0 : action === 'deny' ? 1 : 2]++;
      evalSeconds.observe(evalUs / 1e6);
    },
    connected(route, ms) {
      let child = byBackend.get(route);
      if (child === undefined) {
        if (byBackend.size >= MAX_NAMES) {
          otherBackend ??= connectHistogram.child({ backend: OTHER });
          child = otherBackend;
        } else {
          child = connectHistogram.child({ backend: route });
          byBackend.set(route, child);
        }
      }
      child.observe(ms / 1000);
    },
    connectFailed(reason) {
      // Reasons are a closed set (types.ts RejectReason): bounded.
      errorCounts.set(reason, (errorCounts.get(reason) ?? 0) + 1);
    },
    closed(bytesUp, bytesDown) {
      bytes.up += bytesUp;
      bytes.down += bytesDown;
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
    handedOver(n) {
      relays.handedOver += n;
    },
    resumed(n) {
      relays.resumed += n;
    },
    render(openMetrics) {
      const p = queue.then(() => renderNow(openMetrics));
      queue = p.catch(() => undefined);
      return p;
    },
  };
}
