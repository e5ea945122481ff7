// PKCS#11 (hardware-backed) client key for identity-aware backends.
import type * as tls from 'node:tls';
import type { EscaperConfig } from '../config/types.js';
import { ConnectError } from '../types.js';

export async function pkcs11TlsOptions(_escaper: EscaperConfig): Promise<tls.SecureContextOptions> {
  throw new ConnectError('internal', 'not available yet');
}
