// Varlink wire format: one JSON object per message, each terminated by a NUL byte.
// The decoder is a stream decoder with a hard bound on a message's size, so a local
// client cannot make the daemon buffer without limit.

/** A method call as a client sends it. */
export interface VarlinkCall {
  /** Fully qualified: `interface.Method`. */
  method: string;
  parameters?: Record<string, unknown>;
  /** No reply wanted. */
  oneway?: boolean;
  /** The client accepts several replies (`continues`). */
  more?: boolean;
  /** The connection is to be handed to another protocol after the reply. */
  upgrade?: boolean;
}

/** A reply: `parameters` on success, `error` + `parameters` on failure. */
export interface VarlinkReply {
  parameters?: Record<string, unknown>;
  error?: string;
  continues?: boolean;
}

/** The errors every Varlink service may answer (interface `org.varlink.service`). */
export const SERVICE_ERRORS = {
  InterfaceNotFound: 'org.varlink.service.InterfaceNotFound',
  MethodNotFound: 'org.varlink.service.MethodNotFound',
  MethodNotImplemented: 'org.varlink.service.MethodNotImplemented',
  InvalidParameter: 'org.varlink.service.InvalidParameter',
  PermissionDenied: 'org.varlink.service.PermissionDenied',
  ExpectedMore: 'org.varlink.service.ExpectedMore',
} as const;

/** An error reply, thrown by handlers and by the client when the peer answers one. */
export class VarlinkError extends Error {
  constructor(
    readonly error: string,
    readonly parameters: Record<string, unknown> = {},
  ) {
    super(`${error}${Object.keys(parameters).length ? ` ${JSON.stringify(parameters)}` : ''}`);
    this.name = 'VarlinkError';
  }

  toReply(): VarlinkReply {
    return { error: this.error, parameters: this.parameters };
  }
}

export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

const NUL = 0;

/** Serialises one message with its terminating NUL. */
export function encodeMessage(message: VarlinkCall | VarlinkReply): Buffer {
  // JSON.stringify never emits a raw NUL (it escapes control characters), so the
  // terminator cannot appear inside a message.
  return Buffer.concat([Buffer.from(JSON.stringify(message), 'utf8'), Buffer.of(NUL)]);
}

/** What went wrong while decoding; the connection cannot continue after either. */
export type DecodeFailure =
  | { kind: 'oversize'; limit: number }
  | { kind: 'malformed'; detail: string };

export type Decoded =
  | { ok: true; message: Record<string, unknown> }
  | { ok: false; failure: DecodeFailure };

/**
 * Splits a byte stream into JSON objects. `push` returns every complete message of the
 * chunk, in order; after the first failure the decoder returns nothing more (the
 * caller answers the error and closes).
 */
export class VarlinkDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  push(chunk: Buffer): Decoded[] {
    if (this.failed) return [];
    const out: Decoded[] = [];
    let start = 0;
    for (;;) {
      const nul = chunk.indexOf(NUL, start);
      if (nul < 0) break;
      const part = chunk.subarray(start, nul);
      if (this.buffered + part.length > this.maxMessageBytes) {
        return this.fail(out, { kind: 'oversize', limit: this.maxMessageBytes });
      }
      const bytes = this.chunks.length ? Buffer.concat([...this.chunks, part]) : part;
      this.chunks = [];
      this.buffered = 0;
      const parsed = parseMessage(bytes);
      if (!parsed.ok) return this.fail(out, parsed.failure);
      out.push(parsed);
      start = nul + 1;
    }
    const rest = chunk.subarray(start);
    if (rest.length) {
      if (this.buffered + rest.length > this.maxMessageBytes) {
        return this.fail(out, { kind: 'oversize', limit: this.maxMessageBytes });
      }
      // Copy: the caller's chunk may be reused by the stream.
      this.chunks.push(Buffer.from(rest));
      this.buffered += rest.length;
    }
    return out;
  }

  /** Bytes of an incomplete message waiting for its terminator. */
  get pending(): number {
    return this.buffered;
  }

  private fail(out: Decoded[], failure: DecodeFailure): Decoded[] {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    out.push({ ok: false, failure });
    return out;
  }
}

function parseMessage(bytes: Buffer): Decoded {
  let value: unknown;
  try {
    // fatal: invalid UTF-8 is malformed input, not something to replace silently.
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    return { ok: false, failure: { kind: 'malformed', detail: (e as Error).message } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, failure: { kind: 'malformed', detail: 'a message must be a JSON object' } };
  }
  return { ok: true, message: value as Record<string, unknown> };
}

/**
 * Checks the shape of a call (not its parameters, which the interface definition
 * checks). Returns the call, or the name of the offending field.
 */
export function asCall(message: Record<string, unknown>): VarlinkCall | { invalid: string } {
  const { method, parameters, oneway, more, upgrade } = message;
  if (typeof method !== 'string' || method.length === 0) return { invalid: 'method' };
  if (
    parameters !== undefined &&
    parameters !== null &&
    (typeof parameters !== 'object' || Array.isArray(parameters))
  ) {
    return { invalid: 'parameters' };
  }
  for (const [name, flag] of [
    ['oneway', oneway],
    ['more', more],
    ['upgrade', upgrade],
  ] as const) {
    if (flag !== undefined && flag !== null && typeof flag !== 'boolean') return { invalid: name };
  }
  return {
    method,
    parameters: (parameters ?? {}) as Record<string, unknown>,
    oneway: oneway === true,
    more: more === true,
    upgrade: upgrade === true,
  };
}

/** Checks the shape of a reply (client side). */
export function asReply(message: Record<string, unknown>): VarlinkReply | undefined {
  const { parameters, error, continues } = message;
  if (error !== undefined && typeof error !== 'string') return undefined;
  if (
    parameters !== undefined &&
    parameters !== null &&
    (typeof parameters !== 'object' || Array.isArray(parameters))
  ) {
    return undefined;
  }
  return {
    parameters: (parameters ?? {}) as Record<string, unknown>,
    error: error as string | undefined,
    continues: continues === true,
  };
}

/** `interface.Method` → [interface, Method]; undefined when there is no dot. */
export function splitMethod(qualified: string): [string, string] | undefined {
  const dot = qualified.lastIndexOf('.');
  if (dot <= 0 || dot === qualified.length - 1) return undefined;
  return [qualified.slice(0, dot), qualified.slice(dot + 1)];
}
