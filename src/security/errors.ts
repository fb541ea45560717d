import { CoderClawError } from "../contract/errors.js";

/** The caller is known but may not do this; `reason` is the decision's reason. */
export class PermissionDeniedError extends CoderClawError {
  readonly reason: string;
  constructor(reason: string) {
    super("PERMISSION_DENIED", `permission denied: ${reason}`);
    this.reason = reason;
  }
}

/** The caller could not be identified: bad, expired, revoked or foreign credentials. */
export class UnauthenticatedError extends CoderClawError {
  readonly reason: string;
  constructor(reason: string) {
    super("UNAUTHENTICATED", `unauthenticated: ${reason}`);
    this.reason = reason;
  }
}
