/**
 * Typed errors of the identity layer. identity/ sits below src/ and cannot use
 * the runtime's error classes, so it carries its own; callers switch on `code`.
 */

/** Base of every error identity/ throws on purpose. */
export class IdentityError extends Error {
  /** Stable machine-readable code; never parse the message. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** Why a key file could not be used. */
export type KeyFileErrorCode = "KEY_PERMISSIONS" | "KEY_CORRUPT" | "KEY_IO";

/** The device key file is unusable; start-up must stop rather than make a new identity. */
export class KeyFileError extends IdentityError {
  declare readonly code: KeyFileErrorCode;
  /** The offending file. */
  readonly path: string;
  constructor(code: KeyFileErrorCode, path: string, message: string, cause?: unknown) {
    super(code, `${path}: ${message}`, { cause });
    this.path = path;
  }
}

/** Why bytes or a value were refused by a strict decoder. */
export type DecodeErrorCode =
  | "OVERSIZE"
  | "TOO_DEEP"
  | "MALFORMED"
  | "NOT_CANONICAL"
  | "DUPLICATE_KEY"
  | "WRONG_TYPE"
  | "UNKNOWN_VERSION"
  | "UNKNOWN_KIND"
  | "BAD_SIGNATURE";

/** Input from outside was refused by a strict decoder or validator. */
export class DecodeError extends IdentityError {
  declare readonly code: DecodeErrorCode;
  constructor(code: DecodeErrorCode, message: string, cause?: unknown) {
    // A refusal describes the input, not the code path, and hostile peers can
    // make thousands a second: capturing a stack would dominate their cost.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(code, message, { cause });
    Error.stackTraceLimit = limit;
  }
}

/** Why an invite was refused. */
export type InviteErrorCode =
  | "INVITE_MALFORMED"
  | "INVITE_UNKNOWN"
  | "INVITE_REPLAYED"
  | "INVITE_EXPIRED"
  | "INVITE_WRONG_SECRET"
  | "INVITE_OTHER_MESH"
  | "INVITE_RATE_LIMITED";

/** An invite was refused; every refusal has its own code. */
export class InviteError extends IdentityError {
  declare readonly code: InviteErrorCode;
  constructor(code: InviteErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/**
 * Runs `fn` with stack capture off. Parsers of untrusted input (cborg, zod)
 * report refusals by building Errors whose stacks say nothing about the input
 * and cost more than the parse; a synchronous call cannot leak the setting.
 */
export function withoutStacks<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
