// Command-line options of the benchmark tools.

/** `--name=N` among `args`, else `fallback`. */
export function numberOption(args: readonly string[], name: string, fallback: number): number {
  const arg = args.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
}

/** `--name=1,2,3` among `args` as numbers, else `fallback`. */
export function numberListOption(
  args: readonly string[],
  name: string,
  fallback: readonly number[],
): number[] {
  const arg = args.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined
    ? [...fallback]
    : arg
        .slice(name.length + 3)
        .split(',')
        .map(Number);
}
