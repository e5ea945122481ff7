// The configuration's public surface (docs/configuration.md).
export { type CheckOptions, checkConfigFiles, keyDiagnostic } from './check.js';
export {
  ConfigError,
  formatConfigError,
  formatDiagnostic,
  formatDiagnostics,
  formatKeyPath,
  makeDiagnostic,
} from './errors.js';
export {
  configSource,
  defaultConfigPath,
  embeddedDefaultConfigPath,
  loadConfig,
} from './load.js';
export type * from './types.js';
