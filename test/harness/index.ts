// The integration tests' toolbox: real programs on loopback, started from generated
// configs in temp folders and stopped when the owning test ends. See docs/testing.md.
export { makeTestCa, type TestCa, type TestCaOptions } from './ca.js';
export { type Owner, stopAll } from './cleanup.js';
export { type CurlOptions, type CurlResult, curl } from './curl.js';
export { type DanteOptions, startDante } from './dante.js';
export { sha256File } from './hash.js';
export { type MicrosocksOptions, startMicrosocks } from './microsocks.js';
export { type Nginx, type NginxOptions, startNginx } from './nginx.js';
export { isRoot, type Peer } from './peer.js';
export { freePort } from './ports.js';
export { groupCpuSeconds, groupMembers, groupRssBytes, procStat } from './proc.js';
export {
  canConnect,
  groupAlive,
  type ReadyPort,
  type Started,
  type StartOptions,
  sleep,
  startProcess,
} from './process.js';
export { peerAddressOf } from './sockets.js';
export { type SquidOptions, startSquid } from './squid.js';
export { startTinyproxy, type TinyproxyOptions } from './tinyproxy.js';
export { tmpDir } from './tmp.js';
export { PACKAGE_OF, requireFile, requireTool, type Skippable, which } from './tools.js';
