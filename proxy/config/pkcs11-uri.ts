// PKCS#11 URIs (RFC 7512) as [escaper] pkcs11-uri writes them. Strict: an attribute we
// do not know is an error, because a misspelt one (`objet=`) would silently widen the
// match to any key on the token. `pin-value` is accepted in the path too (libp11's form).

/** What a URI selects; every field is optional (absent = any). */
export interface Pkcs11Uri {
  token?: string;
  manufacturer?: string;
  model?: string;
  serial?: string;
  slotId?: number;
  object?: string;
  id?: Buffer;
  type?: string;
  pinValue?: string;
  pinSource?: string;
  modulePath?: string;
}

const PATH_ATTRS = new Set([
  'token',
  'manufacturer',
  'model',
  'serial',
  'slot-id',
  'slot-description',
  'slot-manufacturer',
  'library-manufacturer',
  'library-description',
  'library-version',
  'object',
  'id',
  'type',
  'pin-value',
]);
const QUERY_ATTRS = new Set(['pin-value', 'pin-source', 'module-name', 'module-path']);

function decode(raw: string, name: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error(`bad percent-encoding in ${name}`);
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else out.push(...Buffer.from(raw[i], 'utf8'));
  }
  return Buffer.from(out);
}

/** Parses a PKCS#11 URI; the error never quotes a PIN. */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!uri.startsWith('pkcs11:')) throw new Error('a PKCS#11 URI starts with "pkcs11:"');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q + 1);
  const out: Pkcs11Uri = {};
  const seen = new Set<string>();
  const take = (part: string, allowed: Set<string>, where: string) => {
    if (part === '') return;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (eq < 0) throw new Error(`"${name}" in the ${where} has no value`);
    if (!allowed.has(name) && !name.startsWith('x-'))
      throw new Error(`unknown attribute "${name}" in the ${where}`);
    if (seen.has(name)) throw new Error(`attribute "${name}" is repeated`);
    seen.add(name);
    const bytes = decode(part.slice(eq + 1), name);
    const text = bytes.toString('utf8');
    switch (name) {
      case 'token':
        out.token = text;
        break;
      case 'manufacturer':
        out.manufacturer = text;
        break;
      case 'model':
        out.model = text;
        break;
      case 'serial':
        out.serial = text;
        break;
      case 'slot-id':
        if (!/^\d+$/.test(text)) throw new Error('slot-id must be a decimal number');
        out.slotId = Number(text);
        break;
      case 'object':
        out.object = text;
        break;
      case 'id':
        out.id = bytes;
        break;
      case 'type':
        out.type = text;
        break;
      case 'pin-value':
        out.pinValue = text;
        break;
      case 'pin-source':
        out.pinSource = text;
        break;
      case 'module-path':
        out.modulePath = text;
        break;
      default:
      // slot-description, library-*, module-name, x-…: accepted, not used to select
    }
  };
  for (const part of path.split(';')) take(part, PATH_ATTRS, 'path');
  for (const part of query.split('&')) take(part, QUERY_ATTRS, 'query');
  if (out.pinValue !== undefined && out.pinSource !== undefined)
    throw new Error('give pin-value or pin-source, not both');
  if (out.type !== undefined && out.type !== 'private')
    throw new Error(`type=${out.type}: the URI must name a private key (type=private)`);
  return out;
}

/** Percent-encodes everything but RFC 3986 unreserved characters. */
export function encodeAttr(value: string | Buffer): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let s = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    s += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).padStart(2, '0').toUpperCase()}`;
  }
  return s;
}

/** The URI with any PIN replaced, for messages and logs. */
export function redactPkcs11Uri(uri: string): string {
  return uri.replace(/(pin-value=)[^;&?]*/g, '$1***');
}
