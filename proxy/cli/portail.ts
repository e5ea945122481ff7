#!/usr/bin/env -S node --max-semi-space-size=8
// `portail`: the daemon and its offline checks (docs/reference/commands.md).
// The flag caps V8's young generation at 8 MiB per semi-space (16 by default). The cap
// bounds what a just-started daemon's heap grows by while thousands of relays open
// (~10 KiB of RSS per idle relay in that worst case, 15-18 uncapped), and 8 rather than
// the 2 used before keeps collections rare under load: each set-up allocates ~32 KB,
// so with 2 MiB a scavenge (~1 ms) landed in one set-up of 45 and made the p99.
// docs/performance.md, "Why the V8 semi-space is 8 MiB" (the runs: performance-history.md,
// "Sixth pass"). `npm start` and the benchmarks pass it too.
import { Command, Option } from 'commander';
import { registerRpcCommand } from '../../rpc/upstream-cli.js';
import { defaultConfigFile } from './config-path.js';

const CONFIG_HELP =
  'configuration file (default: /etc/portail/portail.toml, else /etc/portail.toml when only that exists)';

// Subcommands load their modules only when they run, so an offline check never pays
// for (or depends on) the daemon's modules.

const program = new Command();
program.name('portail').description('Identity-aware forward proxy (SOCKS5 + HTTP)');
program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});

program
  .command('daemon')
  .description('run the proxy')
  .option('-c, --config <file>', CONFIG_HELP)
  .option(
    '--bind-proxy-address <host:port>',
    'listen address (repeatable)',
    (v: string, prev: string[]) => [...prev, v],
    [] as string[],
  )
  .option('--bind-rpc-socket <path>', 'control socket path')
  .addOption(
    new Option('--log-preset <preset>', 'log format')
      .choices(['development', 'systemd', 'container'])
      .default('development'),
  )
  .action(async (opts) => {
    const { runDaemon } = await import('./daemon.js');
    process.exitCode = await runDaemon({ ...opts, config: opts.config ?? defaultConfigFile() });
  });

program
  .command('check-acl-syntax')
  .description('parse and validate an ACL file against the configuration')
  .option('-c, --config <file>', 'configuration file (for backend names)')
  .option('--json', 'machine-readable output')
  .argument('<acl-file>')
  .action(async (aclFile: string, opts: { config?: string; json?: boolean }) => {
    const { runCheckAclSyntax } = await import('./check-acl-syntax.js');
    process.exitCode = await runCheckAclSyntax(aclFile, opts);
  });

program
  .command('check')
  .description('validate the configuration and every file it refers to')
  .option('-c, --config <file>', CONFIG_HELP)
  .option('--json', 'machine-readable output')
  .action(async (opts: { config?: string; json?: boolean }) => {
    const { runCheck } = await import('./check.js');
    process.exitCode = await runCheck({ ...opts, config: opts.config ?? defaultConfigFile() });
  });

registerRpcCommand(program);

await program.parseAsync(process.argv);
