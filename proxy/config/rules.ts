// Rules that tie several keys together (docs/configuration.md). They read the raw TOML document,
// defensively, so that they are reported together with the per-key errors: a user
// fixing a file sees every problem at once.

export interface RuleIssue {
  path: (string | number)[];
  message: string;
  severity: 'error' | 'warning';
}

type Table = Record<string, unknown>;

export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

const has = (t: Table | undefined, key: string): boolean =>
  t !== undefined && Object.hasOwn(t, key) && t[key] !== undefined;

const BACKEND_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const SSH_ONLY = ['user', 'identity-file', 'agent', 'known-hosts'] as const;

export function crossFieldIssues(doc: Table): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const error = (path: (string | number)[], message: string) =>
    issues.push({ path, message, severity: 'error' });
  const warning = (path: (string | number)[], message: string) =>
    issues.push({ path, message, severity: 'warning' });

  const listener = isTable(doc.listener) ? doc.listener : undefined;
  if (listener) {
    const key = has(listener, 'tls-privkey');
    const chain = has(listener, 'tls-chain');
    if (key && !chain) {
      error(['listener', 'tls-privkey'], 'needs tls-chain too (the certificate chain of this key)');
    }
    if (chain && !key) {
      error(
        ['listener', 'tls-chain'],
        'needs tls-privkey too (the private key of this certificate)',
      );
    }
    if (listener['require-tls'] === true && !(key && chain)) {
      error(['listener', 'require-tls'], 'needs a TLS listener: set tls-privkey and tls-chain');
    }
  }

  const escaper = isTable(doc.escaper) ? doc.escaper : undefined;
  const escKey = has(escaper, 'tls-privkey');
  const escCert = has(escaper, 'tls-certificate');
  const pkcs11 = has(escaper, 'pkcs11-uri');
  if (escaper) {
    if (escKey && pkcs11) {
      error(
        ['escaper', 'pkcs11-uri'],
        'set either tls-privkey or pkcs11-uri, not both (where is the private key?)',
      );
    } else if (escKey && !escCert) {
      error(['escaper', 'tls-privkey'], 'needs tls-certificate too (the certificate of this key)');
    } else if (escCert && !escKey && !pkcs11) {
      error(
        ['escaper', 'tls-certificate'],
        'needs tls-privkey or pkcs11-uri (where its private key is)',
      );
    }
    if (has(escaper, 'pkcs11-module') && !pkcs11) {
      error(['escaper', 'pkcs11-module'], 'is only used with pkcs11-uri');
    }
    const uri = escaper['pkcs11-uri'];
    if (typeof uri === 'string' && uri !== '' && !uri.startsWith('pkcs11:')) {
      error(
        ['escaper', 'pkcs11-uri'],
        'must start with "pkcs11:" (RFC 7512), e.g. "pkcs11:token=dev;object=devkey"',
      );
    }
  }
  // Without a TLS listener, [listener] cacert-file is what upstream makes of it: the
  // trust anchors of identity-aware backends, used when [escaper] names none
  // (docs/upstream.md). Beside [escaper] cacert-file it would do nothing: say so.
  if (
    listener &&
    has(listener, 'cacert-file') &&
    !(has(listener, 'tls-privkey') && has(listener, 'tls-chain')) &&
    has(escaper, 'cacert-file')
  ) {
    warning(
      ['listener', 'cacert-file'],
      'has no effect: without a TLS listener it only names trust anchors for identity-aware backends, and [escaper] cacert-file does that here',
    );
  }

  const backends = isTable(doc.backends) ? doc.backends : undefined;
  for (const [name, b] of Object.entries(backends ?? {})) {
    const at = ['backends', name];
    if (name === 'direct') {
      error(
        at,
        'the backend name "direct" is reserved (it means a direct exit in an ACL `use` list)',
      );
    } else if (!BACKEND_NAME.test(name)) {
      error(
        at,
        'invalid backend name: use letters, digits, "_", "-" and "." (first a letter or a digit, at most 128)',
      );
    }
    if (!isTable(b)) continue;
    if (!has(b, 'target-address') && b.dynamic !== true) {
      error(at, 'target-address is required (or dynamic = true, for an address set at run time)');
    }
    if (b.type === 'ssh') {
      if (!has(b, 'user')) error(at, 'type = "ssh" requires user');
      if (!has(b, 'known-hosts')) {
        error(at, 'type = "ssh" requires known-hosts (the server host key must be verified)');
      }
      if (!has(b, 'identity-file') && b.agent !== true) {
        error(at, 'type = "ssh" requires identity-file or agent = true');
      }
    } else {
      for (const k of SSH_ONLY) {
        if (has(b, k)) error([...at, k], 'is only valid with type = "ssh"');
      }
    }
    if (has(b, 'tls-server-name') && b['identity-aware'] !== true) {
      warning([...at, 'tls-server-name'], 'has no effect without identity-aware = true');
    }
    if (has(b, 'http2')) {
      if (b.type === 'socks5' || b.type === 'ssh') {
        error([...at, 'http2'], 'is only valid for HTTP backends (type = "http", or no type)');
      } else if (b['identity-aware'] !== true) {
        warning(
          [...at, 'http2'],
          'has no effect without identity-aware = true (HTTP/2 is only offered inside TLS)',
        );
      }
    }
  }

  const def = doc['default-backend'];
  if (typeof def === 'string' && def !== '') {
    const names = Object.keys(backends ?? {});
    if (def === 'direct') {
      error(
        ['default-backend'],
        '"direct" is not a backend: leave default-backend out for a direct exit',
      );
    } else if (!names.includes(def)) {
      const known = names.length
        ? `configured: ${names.map((n) => `"${n}"`).join(', ')}`
        : 'no backends are configured';
      error(['default-backend'], `"${def}" is not a configured backend (${known})`);
    }
  }
  return issues;
}
