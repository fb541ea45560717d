import type { TaskStatus } from "./types.js";

/**
 * Stable error codes. Callers (CLI exit codes, HTTP status mapping, wire
 * protocols) switch on `code`, never on message text.
 */
export type ErrorCode =
  | "INVALID_INPUT"
  | "NOT_FOUND"
  | "INVALID_TRANSITION"
  | "AGENT_UNAVAILABLE"
  | "UNKNOWN_AGENT"
  | "SHUTTING_DOWN"
  | "STORAGE_CORRUPT"
  | "STORAGE_LOCKED"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "TIMEOUT"
  | "CANCELLED"
  | "PROTOCOL"
  | "UNAVAILABLE"
  | "EXECUTION_FAILED"
  | "CONFIG"
  | "BUSY"
  | "QUOTA";

/** Base of every error this package throws on purpose. */
export class CoderClawError extends Error {
  readonly code: ErrorCode;
  /** Dotted path of the offending field, when the error is about one input field. */
  readonly field?: string;

  constructor(code: ErrorCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options?.field !== undefined) this.field = options.field;
  }
}

/** An input from outside was refused; `field` names where. */
export class InvalidInputError extends CoderClawError {
  constructor(message: string, field?: string) {
    super("INVALID_INPUT", field === undefined ? message : `${field}: ${message}`, field === undefined ? undefined : { field });
  }
}

/** The named thing does not exist. */
export class NotFoundError extends CoderClawError {
  constructor(what: string, id: string) {
    super("NOT_FOUND", `${what} not found: ${id}`);
  }
}

/** A task was asked to move along an edge the state machine does not have. */
export class InvalidTransitionError extends CoderClawError {
  readonly from: TaskStatus;
  readonly to: TaskStatus;
  constructor(taskId: string, from: TaskStatus, to: TaskStatus) {
    super("INVALID_TRANSITION", `task ${taskId}: invalid transition ${from} -> ${to}`);
    this.from = from;
    this.to = to;
  }
}

/** The agent exists but cannot run here now, or does not exist. */
export class AgentUnavailableError extends CoderClawError {
  constructor(agentId: string, reason: string, code: "AGENT_UNAVAILABLE" | "UNKNOWN_AGENT" = "AGENT_UNAVAILABLE") {
    super(code, `agent ${agentId}: ${reason}`, { field: "agentId" });
  }
}

/** Persistent state could not be used; `path` names the file or directory. */
export class StorageError extends CoderClawError {
  readonly path: string;
  constructor(code: "STORAGE_CORRUPT" | "STORAGE_LOCKED", path: string, message: string, cause?: unknown) {
    super(code, `${path}: ${message}`, { cause });
    this.path = path;
  }
}

/** True when `err` is a CoderClawError with the given code. */
export function hasCode(err: unknown, code: ErrorCode): err is CoderClawError {
  return err instanceof CoderClawError && err.code === code;
}
