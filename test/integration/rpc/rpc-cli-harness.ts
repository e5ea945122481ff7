// `portail` as proxy/cli/portail.ts builds it, reduced to the `rpc` command: the tests
// run upstream's control commands through this until the lead wires registerRpcCommand
// into the real program.
import { Command } from 'commander';
import { registerRpcCommand } from '../../../rpc/upstream-cli.js';

const program = new Command('portail');
program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});
registerRpcCommand(program);
await program.parseAsync(process.argv);
