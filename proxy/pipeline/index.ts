export { type ExitRequest, type OpenedExit, openExit } from '../connect/failover.js';
export { requestFields, routeOf } from './audit-fields.js';
export type { DataPlane, PipelineOptions, PipelineState } from './pipeline.js';
export { createPipeline } from './pipeline.js';
export { GENERIC_DENIAL, refusalFor, shortDenial } from './refusal.js';
