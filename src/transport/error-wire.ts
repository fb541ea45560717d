import { CoderClawError, type ErrorCode } from "../contract/errors.js";
import { isErrorCode } from "./http-wire.js";

/** An error as protocols carry it: the contract's code, a message, and the offending field if any. */
export interface WireError {
  code: string;
  message: string;
  field?: string | undefined;
}

/** Any thrown value as a {@link WireError}; errors that are not ours are PROTOCOL. Messages are cut to `maxMessage` characters. */
export function errorToWire(err: unknown, maxMessage = 4096): WireError {
  if (err instanceof CoderClawError) {
    const message = err.message.slice(0, maxMessage);
    return err.field === undefined ? { code: err.code, message } : { code: err.code, message, field: err.field };
  }
  return { code: "PROTOCOL", message: (err instanceof Error ? err.message : String(err)).slice(0, maxMessage) };
}

/** A {@link WireError} back as the CoderClawError it was; a code this side does not know becomes PROTOCOL. */
export function errorFromWire(e: WireError): CoderClawError {
  const code: ErrorCode = isErrorCode(e.code) ? e.code : "PROTOCOL";
  return e.field === undefined ? new CoderClawError(code, e.message) : new CoderClawError(code, e.message, { field: e.field });
}
