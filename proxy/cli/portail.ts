#!/usr/bin/env -S node --max-semi-space-size=2
// `portail`: the daemon and its offline checks (SPEC section 2).
// The flag (V8's young generation capped at 2 MiB per semi-space instead of growing to
// 16) is what keeps an idle relay near 11 KiB of RSS rather than 21, at no measured
// set-up cost; docs/performance.md. `npm start` and the benchmarks pass it too.
import { Command, Option } from 'commander';
import { registerRpcCommand } from '../../rpc/upstream-cli.js';

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
  .option('--config <file>', 'configuration file', '/etc/portail/portail.toml')
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
    process.exitCode = await runDaemon(opts);
  });

program
  .command('check-acl-syntax')
  .description('parse and validate an ACL file against the configuration')
  .option('--config <file>', 'configuration file (for backend names)')
  .option('--json', 'machine-readable output')
  .argument('<acl-file>')
  .action(async (aclFile: string, opts: { config?: string; json?: boolean }) => {
    const { runCheckAclSyntax } = await import('./check-acl-syntax.js');
    process.exitCode = await runCheckAclSyntax(aclFile, opts);
  });

program
  .command('check')
  .description('validate the configuration and every file it refers to')
  .option('--config <file>', 'configuration file', '/etc/portail/portail.toml')
  .option('--json', 'machine-readable output')
  .action(async (opts: { config: string; json?: boolean }) => {
    const { runCheck } = await import('./check.js');
    process.exitCode = await runCheck(opts);
  });

registerRpcCommand(program);

await program.parseAsync(process.argv);
