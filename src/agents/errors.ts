import { CoderClawError } from "../contract/errors.js";

/**
 * An agent ran and failed: a process exited non-zero or died by a signal, or a
 * model provider answered with an HTTP error.
 * The details ride on the fields.
 */
export class ExecutionFailedError extends CoderClawError {
  /** Exit code of the process, when it exited. */
  readonly exitCode?: number;
  /** Signal that ended the process, when one did. */
  readonly exitSignal?: string;
  /** HTTP status of the provider's answer, when that is what failed. */
  readonly httpStatus?: number;

  constructor(
    message: string,
    details: { exitCode?: number | null; exitSignal?: string | null; httpStatus?: number; cause?: unknown } = {},
  ) {
    super("EXECUTION_FAILED", message, details.cause === undefined ? undefined : { cause: details.cause });
    if (typeof details.exitCode === "number") this.exitCode = details.exitCode;
    if (typeof details.exitSignal === "string") this.exitSignal = details.exitSignal;
    if (details.httpStatus !== undefined) this.httpStatus = details.httpStatus;
  }
}

/**
 * The typed error to throw once `signal` has aborted.
 *
 * The engine aborts with a reason saying why (its AbortCause: "cancelled",
 * "timeout", "shutdown"); those map to CANCELLED, TIMEOUT and SHUTTING_DOWN. A
 * CoderClawError reason is passed through, a DOMException `TimeoutError` (from
 * `AbortSignal.timeout`) becomes TIMEOUT, and anything else is a cancellation.
 */
export function abortError(signal: AbortSignal): CoderClawError {
  const reason: unknown = signal.reason;
  if (reason instanceof CoderClawError) return reason;
  if (reason === "timeout") return new CoderClawError("TIMEOUT", "timed out");
  if (reason === "shutdown") return new CoderClawError("SHUTTING_DOWN", "stopped: the node is shutting down");
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new CoderClawError("TIMEOUT", `timed out: ${reason.message}`, { cause: reason });
  }
  const text = reason instanceof Error ? reason.message : reason === undefined ? "aborted" : String(reason);
  return new CoderClawError("CANCELLED", `cancelled: ${text}`, { cause: reason });
}
