// SSH bastion backend: direct-tcpip channels through one shared SSH connection.
import type { Duplex } from 'node:stream';
import type { BackendConfig } from '../config/types.js';
import { ConnectError, type Target } from '../types.js';

export interface SshConnector {
  connect(target: Target, signal: AbortSignal): Promise<Duplex>;
  close(): void;
}

export function createSshConnector(_backend: BackendConfig, _opts: { connectTimeoutMs: number }): SshConnector {
  return {
    connect: async () => {
      throw new ConnectError('internal', 'not available yet');
    },
    close: () => {},
  };
}
