// The configuration's public surface (SPEC section 3).
export { type CheckOptions, checkConfigFiles, keyDiagnostic } from './check.js';
export {
  ConfigError,
  formatConfigError,
  formatDiagnostic,
  formatDiagnostics,
  formatKeyPath,
} from './errors.js';
export {
  configSource,
  defaultConfigPath,
  embeddedDefaultConfigPath,
  loadConfig,
} from './load.js';
export type * from './types.js';
