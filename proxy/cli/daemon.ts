// `portail daemon` (docs/reference/commands.md, "portail daemon"): run the proxy until
// SIGTERM/SIGINT; SIGHUP reloads. Exit 1 on a bad configuration or an address that cannot
// be bound, 0 after a graceful stop.
import { type DaemonOptions as Options, StartupError, startDaemon } from '../daemon/daemon.js';

export interface DaemonOptions {
  config: string;
  bindProxyAddress: string[];
  bindRpcSocket?: string;
  logPreset: 'development' | 'systemd' | 'container';
}

/** PORTAIL_SHUTDOWN_GRACE_MS overrides the 10 s grace period (tests, impatient operators). */
function graceFromEnv(): number | undefined {
  const v = process.env.PORTAIL_SHUTDOWN_GRACE_MS;
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const options: Options = { ...opts, shutdownGraceMs: graceFromEnv() };
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(options);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`portail: fatal: ${err.text}\n`);
      return 1;
    }
    throw err;
  }
  const { log } = daemon.logging;
  return new Promise<number>((resolve) => {
    const onHup = () => {
      log.info('SIGHUP: reloading');
      // A failed reload is logged and shown by status; whatever escapes it (reopening
      // the logs) is one too, never an unhandled rejection that would end the daemon.
      daemon.reload('signal').catch((err: unknown) => daemon.state.reloadFailed('signal', err));
    };
    let stop: ReturnType<typeof daemon.stop> | null = null;
    const onStop = (signal: NodeJS.Signals) => {
      if (stop) {
        log.info(`${signal} again: closing open connections now`);
        stop.now();
        return;
      }
      log.info(`${signal}: stopping`);
      stop = daemon.stop();
      void stop.done.then(() => {
        process.off('SIGHUP', onHup);
        process.off('SIGTERM', onStop);
        process.off('SIGINT', onStop);
        // Anything still holding the event loop (a stuck peer) must not keep a stopped
        // daemon alive.
        setTimeout(() => process.exit(0), 2000).unref();
        resolve(0);
      });
    };
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}
