export { humanLine, keyValues } from './human.js';
export type { AuditWriter, Log, Logging, LoggingOptions, LogPreset } from './logging.js';
export { createLogging } from './logging.js';
export type { AuditEvent, AuditRecord } from './record.js';
export { auditJsonLine, auditMessage, auditRecord } from './record.js';
