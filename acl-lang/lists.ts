// List files for `in file("…")`: one entry per line, `#` comments, blank lines
// ignored. Parsing is separate from reading so the checker stays pure.

/**
 * A list file's text, walked entry by entry without an object per entry: a
 * million-entry list is checked without a million allocations that all survive
 * (docs/performance.md, "Footprint").
 */
export class ListFile {
  constructor(readonly text: string) {}

  /** Calls `fn` with each entry (trimmed, comment removed) and its 1-based line number. */
  forEach(fn: (value: string, line: number) => void): void {
    const { text } = this;
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
      if (s !== '') fn(s, line);
      start = end + 1;
    }
  }
}
