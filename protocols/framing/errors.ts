import { CoderClawError } from "../../src/contract/errors.js";

/** Why a framed channel refused input or gave up; callers switch on `reason`. */
export type FramingFailure = "oversize" | "malformed" | "version" | "timeout" | "limit" | "closed";

/**
 * Base of every framing error. `reason` is stable; `peer` names the remote peer
 * when the error is about what that peer sent.
 */
export class FramingError extends CoderClawError {
  readonly reason: FramingFailure;
  readonly peer?: string;
  constructor(reason: FramingFailure, message: string, options?: { peer?: string; cause?: unknown }) {
    super(reason === "timeout" ? "TIMEOUT" : reason === "closed" ? "UNAVAILABLE" : "PROTOCOL", message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    if (options?.peer !== undefined) this.peer = options.peer;
  }
}

/** A frame's declared length exceeds the limit; refused before its body is buffered. */
export class FrameTooLargeError extends FramingError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, peer?: string) {
    super("oversize", `frame of ${size} bytes exceeds the limit of ${limit}`, peer === undefined ? undefined : { peer });
    this.size = size;
    this.limit = limit;
  }
}

/** A frame or its message could not be decoded or failed schema validation. */
export class MalformedFrameError extends FramingError {
  constructor(message: string, options?: { peer?: string; cause?: unknown }) {
    super("malformed", message, options);
  }
}

/** The message carries a protocol version this node does not speak. */
export class UnsupportedVersionError extends FramingError {
  readonly version: unknown;
  constructor(version: unknown, supported: number, peer?: string) {
    super("version", `unsupported protocol version ${String(version)} (this node speaks ${supported})`, peer === undefined ? undefined : { peer });
    this.version = version;
  }
}

/** A read did not complete in time: a stalled peer or a missing reply. */
export class FrameTimeoutError extends FramingError {
  constructor(message: string, peer?: string) {
    super("timeout", message, peer === undefined ? undefined : { peer });
  }
}

/** The peer exceeded its rate or buffer allowance and was cut off. */
export class PeerLimitError extends FramingError {
  constructor(message: string, peer?: string) {
    super("limit", message, peer === undefined ? undefined : { peer });
  }
}

/** The channel is closed (locally, by the remote, or after an error). */
export class ChannelClosedError extends FramingError {
  constructor(message = "channel closed", options?: { peer?: string; cause?: unknown }) {
    super("closed", message, options);
  }
}
