// A histogram whose observe() allocates nothing: prom-client's own builds a label hash
// and a closure on every observation, and ours are observed on every request's set-up
// path (docs/reference/metrics.md, "Cost"). It registers like any prom-client metric
// (the registry only calls get() / reset() and reads name, help and type).
import type { Registry, RegistryContentType } from 'prom-client';

export interface Observer {
  observe(v: number): void;
}

class Series implements Observer {
  /** Per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    (this.counts as Float64Array)[i]++;
    this.sum += v;
    this.count++;
  }
}

export class FixedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: Series[] = [];
  private readonly le: string[];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry<RegistryContentType>,
  ) {
    this.le = [...bounds.map((b) => String(b)), '+Inf'];
    registry.registerMetric(this as never);
  }

  /** A series, made once by the caller and kept (label values bounded by the caller). */
  child(labels: Record<string, string> = {}): Observer {
    const s = new Series(this.bounds, Object.freeze({ ...labels }));
    this.series.push(s);
    return s;
  }

  reset(): void {
    for (const s of this.series) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** The shape prom-client's registry renders (its own histograms give the same). */
  get() {
    const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
    for (const s of this.series) {
      let acc = 0;
      for (let i = 0; i < this.le.length; i++) {
        acc += s.counts[i] as number;
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...s.labels, le: this.le[i] as string },
          value: acc,
        });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }
}
