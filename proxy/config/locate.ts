// Where each key sits in the TOML source, so that a schema error can point at it.
// smol-toml gives values, not positions; this scanner walks the (already valid)
// document once and records the first position of every key path: table headers,
// dotted keys, inline tables and array elements.

export type KeyPath = readonly (string | number)[];

export interface Span {
  line: number;
  column: number;
  length: number;
}

export const pathId = (path: KeyPath): string => JSON.stringify(path);

const BARE = /[A-Za-z0-9_-]/;

class Scanner {
  pos = 0;
  readonly spans = new Map<string, Span>();
  private readonly lineStarts: number[] = [0];
  /** Array-of-tables header → number of elements seen so far. */
  private readonly arrayTables = new Map<string, number>();

  constructor(private readonly src: string) {
    for (let i = 0; i < src.length; i++) if (src[i] === '\n') this.lineStarts.push(i + 1);
  }

  private record(path: KeyPath, start: number, end: number): void {
    const id = pathId(path);
    if (this.spans.has(id)) return;
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    const lineEnd = this.src.indexOf('\n', start);
    const stop = Math.min(end, lineEnd < 0 ? this.src.length : lineEnd);
    this.spans.set(id, {
      line: lo + 1,
      column: start - this.lineStarts[lo] + 1,
      length: Math.max(1, stop - start),
    });
  }

  private peek(offset = 0): string {
    return this.src[this.pos + offset] ?? '';
  }

  private skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  /** Spaces, newlines and comments (inside arrays and between statements). */
  private skipBlank(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.pos++;
      else if (c === '#') this.skipLine();
      else return;
    }
  }

  private skipLine(): void {
    const nl = this.src.indexOf('\n', this.pos);
    this.pos = nl < 0 ? this.src.length : nl + 1;
  }

  /** Skips a string of any of the four kinds and returns its (unescaped) value. */
  private readString(): string {
    const q = this.peek();
    const multi = this.peek(1) === q && this.peek(2) === q;
    this.pos += multi ? 3 : 1;
    let out = '';
    while (this.pos < this.src.length) {
      const c = this.peek();
      if (c === '\\' && q === '"') {
        out += this.readEscape();
        continue;
      }
      if (c === q && (!multi || (this.peek(1) === q && this.peek(2) === q))) {
        this.pos += multi ? 3 : 1;
        // A multi-line string may end with up to two extra quotes of its own.
        for (let extra = 0; multi && extra < 2 && this.peek() === q; extra++) this.pos++;
        return out;
      }
      if (c === '\n' && !multi) return out;
      out += c;
      this.pos++;
    }
    return out;
  }

  private readEscape(): string {
    const e = this.peek(1);
    this.pos += 2;
    const simple: Record<string, string> = {
      b: '\b',
      t: '\t',
      n: '\n',
      f: '\f',
      r: '\r',
      e: '\x1b',
      '"': '"',
      '\\': '\\',
    };
    if (e in simple) return simple[e];
    const width = e === 'u' ? 4 : e === 'U' ? 8 : e === 'x' ? 2 : 0;
    if (width > 0) {
      const hex = this.src.slice(this.pos, this.pos + width);
      this.pos += width;
      const cp = Number.parseInt(hex, 16);
      return Number.isNaN(cp) ? '' : String.fromCodePoint(cp);
    }
    // Line-ending backslash in a multi-line string: trimmed whitespace.
    this.pos--;
    while (/\s/.test(this.peek())) this.pos++;
    return '';
  }

  /** A dotted key: its segments with their source positions. */
  private readKey(): { name: string; start: number; end: number }[] {
    const segs: { name: string; start: number; end: number }[] = [];
    for (;;) {
      this.skipSpaces();
      const start = this.pos;
      let name = '';
      const c = this.peek();
      if (c === '"' || c === "'") name = this.readString();
      else {
        while (BARE.test(this.peek())) this.pos++;
        name = this.src.slice(start, this.pos);
      }
      if (this.pos === start) return segs;
      segs.push({ name, start, end: this.pos });
      this.skipSpaces();
      if (this.peek() !== '.') return segs;
      this.pos++;
    }
  }

  run(): Map<string, Span> {
    let table: (string | number)[] = [];
    while (this.pos < this.src.length) {
      this.skipBlank();
      if (this.pos >= this.src.length) break;
      const before = this.pos;
      if (this.peek() === '[') {
        const isArray = this.peek(1) === '[';
        this.pos += isArray ? 2 : 1;
        const segs = this.readKey();
        const path: (string | number)[] = [];
        for (const [i, seg] of segs.entries()) {
          path.push(seg.name);
          this.record(path, seg.start, seg.end);
          // `[a.b]` after `[[a]]` belongs to the last element of the array `a`.
          const count = this.arrayTables.get(pathId(path));
          if (i < segs.length - 1 && count !== undefined) path.push(count - 1);
        }
        if (isArray && segs.length > 0) {
          const id = pathId(path);
          const n = (this.arrayTables.get(id) ?? 0) + 1;
          this.arrayTables.set(id, n);
          path.push(n - 1);
          const last = segs[segs.length - 1];
          this.record(path, last.start, last.end);
        }
        table = path;
        this.skipLine();
      } else {
        this.keyValue(table);
        this.skipSpaces();
        if (this.peek() === '#' || this.peek() === '\r' || this.peek() === '\n') this.skipLine();
      }
      if (this.pos === before) this.skipLine();
    }
    return this.spans;
  }

  private keyValue(prefix: readonly (string | number)[]): void {
    const segs = this.readKey();
    if (segs.length === 0) return;
    const path = [...prefix];
    for (const s of segs) {
      path.push(s.name);
      this.record(path, s.start, s.end);
    }
    this.skipSpaces();
    if (this.peek() !== '=') return;
    this.pos++;
    this.skipSpaces();
    this.value(path);
  }

  private value(path: (string | number)[]): void {
    const c = this.peek();
    if (c === '"' || c === "'") {
      this.readString();
    } else if (c === '[') {
      this.pos++;
      for (let i = 0; ; i++) {
        this.skipBlank();
        if (this.peek() === ']' || this.pos >= this.src.length) break;
        const start = this.pos;
        const elem = [...path, i];
        this.value(elem);
        this.record(elem, start, this.pos);
        this.skipBlank();
        if (this.peek() === ',') this.pos++;
        if (this.pos === start) break;
      }
      this.pos++;
    } else if (c === '{') {
      this.pos++;
      for (;;) {
        this.skipBlank();
        if (this.peek() === '}' || this.pos >= this.src.length) break;
        const start = this.pos;
        this.keyValue(path);
        this.skipBlank();
        if (this.peek() === ',') this.pos++;
        if (this.pos === start) break;
      }
      this.pos++;
    } else {
      // Numbers, booleans, dates (which may contain one space): up to a delimiter.
      while (this.pos < this.src.length && !/[,\]}\r\n#]/.test(this.peek())) this.pos++;
      while (this.src[this.pos - 1] === ' ' || this.src[this.pos - 1] === '\t') this.pos--;
    }
  }
}

/** Positions of every key path in a TOML document (first occurrence wins). */
export function locateKeys(source: string): Map<string, Span> {
  return new Scanner(source).run();
}

/** The span of `path`, or of its closest enclosing key that appears in the file. */
export function findSpan(spans: Map<string, Span>, path: KeyPath): Span | undefined {
  for (let n = path.length; n > 0; n--) {
    const s = spans.get(pathId(path.slice(0, n)));
    if (s) return s;
  }
  return undefined;
}
