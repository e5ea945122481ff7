// The development preset's human-readable lines: `portail: audit event=… key=value …`
// for audit records, `portail: [level: ]message key=value` for diagnostics.

/** `key=value`, quoting values with spaces, quotes or nothing in them. */
export function keyValues(fields: Record<string, unknown>): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === null || v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    let text = Array.isArray(v)
      ? v.join(',')
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);
    if (text === '' || /[\s"=]/.test(text)) text = JSON.stringify(text);
    out.push(`${k}=${text}`);
  }
  return out.join(' ');
}

export function humanLine(level: string, msg: string, fields?: Record<string, unknown>): string {
  const prefix = level === 'info' ? 'portail: ' : `portail: ${level}: `;
  const kv = fields ? keyValues(fields) : '';
  return `${prefix}${msg}${kv ? ` ${kv}` : ''}\n`;
}
