import { createHash } from "node:crypto";

/**
 * Metadata keys by which an attempt names the task its keeper holds and its
 * number. The executor stores them like any metadata; the keeper's node and
 * listings read them to tell attempts from the tasks users submitted.
 */
export const ATTEMPT_OF = "attemptOf";
export const ATTEMPT = "attempt";

/** The metadata key under which a caller names a submission so that sending it again does not make a second task. */
export const IDEMPOTENCY_KEY = "idempotencyKey";

/**
 * The key attempt `n` of a task is submitted to its member under: a member
 * answers a submission under a key it has seen with the attempt it already
 * has. Derived from the caller's idempotency key when there is one, so that a
 * caller that submits again after this node crashed between sending the first
 * attempt and storing the task (a workflow's coordinator does) reaches the
 * attempt already running instead of starting the work a second time.
 */
export function attemptKey(taskId: string, n: number, request: { metadata?: Record<string, unknown>; sessionId?: string }): string {
  const key = request.metadata?.[IDEMPOTENCY_KEY];
  if (typeof key !== "string") return `${taskId}/${n}`;
  // The member indexes keys per submitting node, and every HTTP caller of a node submits as it: scoped to the
  // session, another caller naming the same key cannot reach this attempt (and read its output through its own task).
  const scoped = createHash("sha256").update(`${request.sessionId ?? ""}\n${key}`).digest("base64url");
  return `key:${scoped}/${n}`;
}
