import type { TrustLevel } from "./trust.js";

/** Where a request entered this node. */
export type RequestOrigin = "local" | "remote" | "http";

/**
 * Who is asking, as established by this node: from a verified session token and the
 * device identity of the connection, never from fields the caller asserted.
 */
export interface SecurityContext {
  userId: string;
  sessionId?: string;
  roles: readonly string[];
  deviceId: string;
  deviceTrustLevel: TrustLevel;
  origin: RequestOrigin;
  meshId: string;
  /** A read-only session's context: it may read, and every change is refused. */
  readOnly?: boolean;
}

/** An access decision. `reason` is stable enough to audit and to show to the caller. */
export interface Decision {
  allowed: boolean;
  reason: string;
}
