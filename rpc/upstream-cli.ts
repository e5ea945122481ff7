// `portail rpc …`: cloud-gouv/portail's control commands with its output, byte for
// byte — human lines, compact JSON without a trailing newline under --json, errors as
// "Error: <context>\n\nCaused by:\n    <cause>" with exit code 1 — so that scripts
// written for upstream keep working.
import os from 'node:os';
import type { Command } from 'commander';
import { formatHostPort, parseHostPort } from '../common/host-port.js';
import { ProtocolError, UnreachableError, VarlinkClient } from './client.js';
import { UPSTREAM_INTERFACE } from './interfaces.js';
import { VarlinkError } from './varlink-codec.js';

export const UPSTREAM_DEFAULT_SOCKET = '/run/fr.gouv.portail.Control';

const LOW_LEVEL =
  'During Varlink low-level communications. Are you using same versions of Portail on both sides?';

/** An error as upstream prints it (anyhow's chain of contexts). */
class ChainedError extends Error {
  constructor(
    readonly context: string,
    readonly causes: string[],
  ) {
    super(context);
  }

  render(): string {
    if (this.causes.length === 0) return `Error: ${this.context}\n`;
    if (this.causes.length === 1)
      return `Error: ${this.context}\n\nCaused by:\n    ${this.causes[0]}\n`;
    return `Error: ${this.context}\n\nCaused by:\n${this.causes.map((c, i) => `    ${i}: ${c}`).join('\n')}\n`;
  }
}

/** Rust's io::Error display: "No such file or directory (os error 2)". */
function osError(err: Error & { code?: string; errno?: number }): string {
  const texts: Record<string, string> = {
    ENOENT: 'No such file or directory',
    ECONNREFUSED: 'Connection refused',
    EACCES: 'Permission denied',
    ENOTSOCK: 'Socket operation on non-socket',
    ETIMEDOUT: 'Connection timed out',
  };
  const code = err.code ?? '';
  const errno = (os.constants.errno as Record<string, number>)[code];
  return texts[code] && errno ? `${texts[code]} (os error ${errno})` : err.message;
}

/** The Display text upstream gives its ControlError variants. */
function controlErrorText(e: VarlinkError): string {
  const p = e.parameters;
  switch (e.error.slice(UPSTREAM_INTERFACE.length + 1)) {
    case 'BackendNotFound': {
      const available = Array.isArray(p.available_backends) ? p.available_backends : [];
      return `Backend \`${p.provided_backend}\` was not found, available backends are ${available.map((b) => `\`${b}\``).join(', ')}`;
    }
    case 'PermissionDenied':
      return 'Permission was denied, are you in the trusted group?';
    case 'ImmutableBackend':
      return 'Backend is not dynamic, its specification cannot be changed';
    case 'InvalidBackend':
      return `Invalid backend specification: ${p.reason}`;
    default:
      return `${e.error} ${JSON.stringify(p)}`;
  }
}

async function rpcCall(
  socket: string,
  method: string,
  params: Record<string, unknown>,
  failure: string,
) {
  let client: VarlinkClient;
  try {
    client = await VarlinkClient.connect(socket);
  } catch (e) {
    const cause = e instanceof UnreachableError ? e.cause : (e as Error);
    throw new ChainedError(`Opening the RPC socket at path '${socket}'`, [osError(cause)]);
  }
  try {
    return await client.call(`${UPSTREAM_INTERFACE}.${method}`, params);
  } catch (e) {
    if (e instanceof VarlinkError && e.error.startsWith(`${UPSTREAM_INTERFACE}.`)) {
      throw new ChainedError(failure, [controlErrorText(e)]);
    }
    if (e instanceof VarlinkError || e instanceof ProtocolError) {
      throw new ChainedError(LOW_LEVEL, [e instanceof VarlinkError ? e.error : e.message]);
    }
    throw e;
  } finally {
    client.close();
  }
}

interface RpcOptions {
  rpcSocket: string;
  json?: boolean;
}

/** Upstream writes JSON with serde_json::to_writer: compact, no newline. */
function out(text: string): void {
  process.stdout.write(text);
}

async function run(body: () => Promise<void>): Promise<void> {
  try {
    await body();
    process.exitCode = 0;
  } catch (e) {
    if (e instanceof ChainedError) {
      process.stderr.write(e.render());
      process.exitCode = 1;
      return;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`Error: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

class UsageError extends Error {}

/** Adds `rpc` (upstream's control commands) to the `portail` program. */
export function registerRpcCommand(program: Command): Command {
  const rpc = program
    .command('rpc')
    .description('run RPC commands against a running daemon (cloud-gouv/portail compatible)')
    .option('--rpc-socket <path>', 'path to the Varlink RPC socket', UPSTREAM_DEFAULT_SOCKET)
    .option('--json', 'JSON output for scripting');
  const opts = () => rpc.opts<RpcOptions>();

  rpc
    .command('print-current-backend')
    .description('print the default backend')
    .action(() =>
      run(async () => {
        const r = await rpcCall(
          opts().rpcSocket,
          'GetCurrentBackend',
          {},
          'Failed to get current backend',
        );
        const id = String(r.backend_id);
        out(opts().json ? JSON.stringify({ backend_id: id }) : `Current backend: ${id}\n`);
      }),
    );

  rpc
    .command('set-default-backend')
    .description('change the default backend')
    .argument('<backend-id>', 'identifier of the backend in the settings')
    .action((id: string) =>
      run(async () => {
        await rpcCall(
          opts().rpcSocket,
          'SetDefaultBackend',
          { backend_id: id },
          'Failed to set default backend',
        );
        out(
          opts().json
            ? JSON.stringify({ success: true })
            : 'Default backend changed successfully.\n',
        );
      }),
    );

  rpc
    .command('unset-default-backend')
    .description('unset the default backend')
    .action(() =>
      run(async () => {
        await rpcCall(
          opts().rpcSocket,
          'SetDefaultBackend',
          { backend_id: null },
          'Failed to unset default backend',
        );
        out(
          opts().json ? JSON.stringify({ success: true }) : 'Default backend unset successfully.\n',
        );
      }),
    );

  rpc
    .command('list-backends')
    .description('list every backend')
    .action(() =>
      run(async () => {
        const r = await rpcCall(opts().rpcSocket, 'ListBackends', {}, 'Failed to list backends');
        const backends = (Array.isArray(r.backends) ? r.backends : []) as Record<string, unknown>[];
        if (opts().json) {
          // Upstream's field order and nulls (serde's Option without skip).
          const items = backends.map((b) => {
            const spec = b.spec as Record<string, unknown> | null | undefined;
            return {
              id: b.id,
              current: b.current,
              dynamic: b.dynamic,
              spec: spec
                ? {
                    target_address: spec.target_address,
                    identity_aware: spec.identity_aware,
                    tls_server_name: spec.tls_server_name ?? null,
                  }
                : null,
            };
          });
          out(JSON.stringify(items));
          return;
        }
        out(
          `List of backends:\n${backends.map((b) => `\t${b.id}${b.current ? ' (active)' : ''}\n`).join('')}`,
        );
      }),
    );

  rpc
    .command('update-dynamic-backend')
    .description('set the address of a dynamic backend')
    .argument('<backend-id>', 'identifier of the backend in the settings')
    .requiredOption('--target-address <host:port>', 'new address of the backend')
    .option('--identity-aware', 'TLS with our client identity (extension)')
    .option('--tls-server-name <name>', 'SNI and name to verify (extension)')
    .action(
      (id: string, o: { targetAddress: string; identityAware?: boolean; tlsServerName?: string }) =>
        run(async () => {
          const hp = parseHostPort(o.targetAddress);
          if ('error' in hp)
            throw new UsageError(`invalid value for '--target-address <host:port>': ${hp.error}`);
          await rpcCall(
            opts().rpcSocket,
            'UpdateDynamicBackend',
            {
              backend_id: id,
              backend_spec: {
                target_address: formatHostPort(hp),
                identity_aware: o.identityAware === true,
                tls_server_name: o.tlsServerName ?? null,
              },
            },
            'Failed to update the dynamic backend',
          );
          out(opts().json ? JSON.stringify({ success: true }) : 'Backend updated.\n');
        }),
    );

  return rpc;
}
