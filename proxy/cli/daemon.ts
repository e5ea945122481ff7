// Placeholder until the data plane lands: replaced by the daemon wiring.
export interface DaemonOptions {
  config: string;
  bindProxyAddress: string[];
  bindRpcSocket?: string;
  logPreset: 'development' | 'systemd' | 'container';
}
export async function runDaemon(_opts: DaemonOptions): Promise<number> {
  console.error('portail daemon: not implemented yet');
  return 1;
}
