// Build: compile the ACL grammar with Peggy, type-check and compile TypeScript, and
// copy the generated parser next to the compiled code. One command, no globals.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const run = (script, args) =>
  execFileSync(process.execPath, [script, ...args], { cwd: root, stdio: 'inherit' });

const peggyBin = join(dirname(require.resolve('peggy/package.json')), 'bin', 'peggy.js');
run(peggyBin, [
  '--format',
  'es',
  '--dts',
  '--allowed-start-rules',
  'File',
  '-o',
  'acl-lang/grammar.generated.js',
  'acl-lang/grammar.peggy',
]);
mkdirSync(join(root, 'dist/acl-lang'), { recursive: true });
copyFileSync(
  join(root, 'acl-lang/grammar.generated.js'),
  join(root, 'dist/acl-lang/grammar.generated.js'),
);
const tscBin = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
run(tscBin, ['-p', 'tsconfig.json']);
// The control server loads its Varlink interface definitions at run time.
mkdirSync(join(root, 'dist/rpc'), { recursive: true });
for (const f of readdirSync(join(root, 'rpc'))) {
  if (f.endsWith('.varlink')) copyFileSync(join(root, 'rpc', f), join(root, 'dist/rpc', f));
}
