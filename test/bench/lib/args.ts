// Command-line options of the benchmark tools.

/** The text after `--name=` among `args`, if given. */
function optionText(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** `--name=N` among `args`, else `fallback`. */
export function numberOption(args: readonly string[], name: string, fallback: number): number {
  const text = optionText(args, name);
  return text === undefined ? fallback : Number(text);
}

/** `--name=1,2,3` among `args` as numbers, else `fallback`. */
export function numberListOption(
  args: readonly string[],
  name: string,
  fallback: readonly number[],
): number[] {
  const text = optionText(args, name);
  return text === undefined ? [...fallback] : text.split(',').map(Number);
}
