export { createMetrics, type Metrics, type MetricsSources } from './metrics.js';
export { createMetricsServer, wantsOpenMetrics } from './server.js';
