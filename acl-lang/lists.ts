// List files for `in file("…")`: one entry per line, `#` comments, blank lines
// ignored. Parsing is separate from reading so the checker stays pure.

export interface ListEntry {
  value: string;
  line: number;
}

export function parseListFile(text: string): ListEntry[] {
  const out: ListEntry[] = [];
  let line = 0;
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = n;
    line++;
    let s = text.slice(start, end);
    const hash = s.indexOf('#');
    if (hash >= 0) s = s.slice(0, hash);
    s = s.trim();
    if (s !== '') out.push({ value: s, line });
    start = end + 1;
  }
  return out;
}
