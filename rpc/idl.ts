// The Varlink interface definition language: a parser for the *.varlink files this
// directory serves, and a validator of call parameters against them. The IDL text is
// the single source of truth: what GetInterfaceDescription returns is what the server
// enforces, so the two cannot drift.

export type IdlType =
  | { kind: 'bool' | 'int' | 'float' | 'string' | 'object' }
  | { kind: 'optional'; of: IdlType }
  | { kind: 'array'; of: IdlType }
  | { kind: 'map'; of: IdlType }
  | { kind: 'ref'; name: string }
  | { kind: 'struct'; fields: IdlField[] }
  | { kind: 'enum'; values: string[] };

export interface IdlField {
  name: string;
  type: IdlType;
}

export interface IdlMethod {
  name: string;
  input: IdlField[];
  output: IdlField[];
}

export interface IdlInterface {
  name: string;
  types: Map<string, IdlType>;
  methods: Map<string, IdlMethod>;
  errors: Map<string, IdlField[]>;
  /** The text it was parsed from (served by GetInterfaceDescription). */
  description: string;
}

export class IdlSyntaxError extends Error {
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
    this.name = 'IdlSyntaxError';
  }
}

interface Token {
  text: string;
  line: number;
}

const PUNCT = ['->', '(', ')', ',', ':', '?', '[]', '[', ']'];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else {
      const p = PUNCT.find((s) => text.startsWith(s, i));
      if (p) {
        tokens.push({ text: p, line });
        i += p.length;
        continue;
      }
      const m = /^[A-Za-z0-9_.]+/.exec(text.slice(i, i + 256));
      if (!m) throw new IdlSyntaxError(`unexpected character ${JSON.stringify(c)}`, line);
      tokens.push({ text: m[0], line });
      i += m[0].length;
    }
  }
  return tokens;
}

const INTERFACE_NAME =
  /^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$/;
const MEMBER_NAME = /^[A-Z][A-Za-z0-9]*$/;
const FIELD_NAME = /^[A-Za-z](_?[A-Za-z0-9])*$/;
const PRIMITIVES = new Set(['bool', 'int', 'float', 'string', 'object']);

/** Parses one interface definition. Throws IdlSyntaxError with a line number. */
export function parseInterface(text: string): IdlInterface {
  const tokens = tokenize(text);
  let pos = 0;
  const lastLine = () => tokens[tokens.length - 1]?.line ?? 1;
  const peek = () => tokens[pos]?.text;
  const next = (): Token => {
    const t = tokens[pos++];
    if (!t) throw new IdlSyntaxError('unexpected end of the definition', lastLine());
    return t;
  };
  const expect = (s: string) => {
    const t = next();
    if (t.text !== s) throw new IdlSyntaxError(`expected "${s}", found "${t.text}"`, t.line);
  };
  const name = (re: RegExp, what: string): string => {
    const t = next();
    if (!re.test(t.text)) throw new IdlSyntaxError(`invalid ${what} "${t.text}"`, t.line);
    return t.text;
  };

  // "(" then either fields "a: T, …" or enum values "a, b, …"; ")" alone is an empty struct.
  const parseParens = (): IdlType => {
    expect('(');
    if (peek() === ')') {
      next();
      return { kind: 'struct', fields: [] };
    }
    const first = name(FIELD_NAME, 'field name');
    if (peek() !== ':') {
      const values = [first];
      while (peek() === ',') {
        next();
        if (peek() === ')') break;
        values.push(name(FIELD_NAME, 'enum value'));
      }
      expect(')');
      return { kind: 'enum', values };
    }
    const fields: IdlField[] = [];
    let fieldName = first;
    for (;;) {
      expect(':');
      if (fields.some((f) => f.name === fieldName)) {
        throw new IdlSyntaxError(`duplicate field "${fieldName}"`, tokens[pos - 1].line);
      }
      fields.push({ name: fieldName, type: parseType() });
      if (peek() !== ',') break;
      next();
      if (peek() === ')') break;
      fieldName = name(FIELD_NAME, 'field name');
    }
    expect(')');
    return { kind: 'struct', fields };
  };

  const parseType = (): IdlType => {
    const t = peek();
    if (t === '?') {
      next();
      const of = parseType();
      if (of.kind === 'optional')
        throw new IdlSyntaxError('"??" is not a type', tokens[pos - 1].line);
      return { kind: 'optional', of };
    }
    if (t === '[]') {
      next();
      return { kind: 'array', of: parseType() };
    }
    if (t === '[') {
      next();
      expect('string');
      expect(']');
      return { kind: 'map', of: parseType() };
    }
    if (t === '(') return parseParens();
    const tok = next();
    if (PRIMITIVES.has(tok.text)) return { kind: tok.text as 'bool' };
    if (MEMBER_NAME.test(tok.text)) return { kind: 'ref', name: tok.text };
    throw new IdlSyntaxError(`expected a type, found "${tok.text}"`, tok.line);
  };

  const fieldsOf = (t: IdlType, line: number): IdlField[] => {
    if (t.kind !== 'struct') throw new IdlSyntaxError('expected a parameter list', line);
    return t.fields;
  };

  expect('interface');
  const iface: IdlInterface = {
    name: name(INTERFACE_NAME, 'interface name'),
    types: new Map(),
    methods: new Map(),
    errors: new Map(),
    description: text,
  };
  const seen = new Set<string>();
  while (pos < tokens.length) {
    const kw = next();
    const member = name(MEMBER_NAME, 'member name');
    if (seen.has(member)) throw new IdlSyntaxError(`"${member}" is defined twice`, kw.line);
    seen.add(member);
    if (kw.text === 'type') {
      iface.types.set(member, parseType());
    } else if (kw.text === 'method') {
      const input = fieldsOf(parseParens(), kw.line);
      let output: IdlField[] = [];
      if (peek() === '->') {
        next();
        output = fieldsOf(parseParens(), kw.line);
      }
      iface.methods.set(member, { name: member, input, output });
    } else if (kw.text === 'error') {
      iface.errors.set(member, fieldsOf(parseParens(), kw.line));
    } else {
      throw new IdlSyntaxError(`expected type, method or error, found "${kw.text}"`, kw.line);
    }
  }
  checkRefs(iface);
  return iface;
}

function checkRefs(iface: IdlInterface): void {
  const visit = (t: IdlType): void => {
    if (t.kind === 'ref' && !iface.types.has(t.name)) {
      throw new IdlSyntaxError(`unknown type "${t.name}" in ${iface.name}`, 1);
    }
    if (t.kind === 'optional' || t.kind === 'array' || t.kind === 'map') visit(t.of);
    if (t.kind === 'struct') for (const f of t.fields) visit(f.type);
  };
  for (const t of iface.types.values()) visit(t);
  for (const m of iface.methods.values()) for (const f of [...m.input, ...m.output]) visit(f.type);
  for (const e of iface.errors.values()) for (const f of e) visit(f.type);
}

export interface ValidateOptions {
  /** Reject object members the type does not define (true for what clients send). */
  strict: boolean;
}

/**
 * Checks `params` against a parameter list. Returns the path of the first offending
 * parameter (`backend_spec.target_address`, `attrs.x`), or undefined when valid.
 * A missing or null value is accepted only for an optional (`?`) type.
 */
export function validateFields(
  iface: IdlInterface,
  fields: IdlField[],
  params: Record<string, unknown>,
  opts: ValidateOptions,
  prefix = '',
): string | undefined {
  for (const f of fields) {
    const bad = validateValue(iface, f.type, params[f.name], opts, `${prefix}${f.name}`);
    if (bad !== undefined) return bad;
  }
  if (opts.strict) {
    const known = new Set(fields.map((f) => f.name));
    for (const k of Object.keys(params)) if (!known.has(k)) return `${prefix}${k}`;
  }
  return undefined;
}

function validateValue(
  iface: IdlInterface,
  type: IdlType,
  value: unknown,
  opts: ValidateOptions,
  path: string,
): string | undefined {
  if (type.kind === 'optional') {
    return value === undefined || value === null
      ? undefined
      : validateValue(iface, type.of, value, opts, path);
  }
  if (value === undefined || value === null) return path;
  switch (type.kind) {
    case 'bool':
      return typeof value === 'boolean' ? undefined : path;
    case 'int':
      return Number.isSafeInteger(value) ? undefined : path;
    case 'float':
      return typeof value === 'number' && Number.isFinite(value) ? undefined : path;
    case 'string':
      return typeof value === 'string' ? undefined : path;
    case 'object':
      return typeof value === 'object' ? undefined : path;
    case 'enum':
      return typeof value === 'string' && type.values.includes(value) ? undefined : path;
    case 'array': {
      if (!Array.isArray(value)) return path;
      for (let i = 0; i < value.length; i++) {
        const bad = validateValue(iface, type.of, value[i], opts, `${path}[${i}]`);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    case 'map': {
      if (!isPlainObject(value)) return path;
      for (const [k, v] of Object.entries(value)) {
        const bad = validateValue(iface, type.of, v, opts, `${path}.${k}`);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    case 'struct':
      return isPlainObject(value)
        ? validateFields(iface, type.fields, value, opts, `${path}.`)
        : path;
    case 'ref': {
      const target = iface.types.get(type.name);
      return target ? validateValue(iface, target, value, opts, path) : path;
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
