import { DecodeError, IdentityError, InviteError } from "../../identity/errors.js";
import { CoderClawError } from "../../src/contract/errors.js";

/** Process exit codes of the CLI; scripts and CI rely on them. */
export const EXIT = {
  /** The command did what was asked (for `task submit --wait`: the task completed). */
  ok: 0,
  /** The task failed or was cancelled. */
  taskFailed: 1,
  /** Bad usage or input: unknown option, invalid field, unknown agent or task. */
  usage: 2,
  /** The environment refused: data directory locked or corrupt, node unreachable, authentication. */
  runtime: 3,
  /** Ctrl-C while following a task (128 + SIGINT, as shells report it); the task itself may run on. */
  interrupted: 130,
} as const;

const USAGE_CODES = new Set(["INVALID_INPUT", "UNKNOWN_AGENT", "AGENT_UNAVAILABLE", "NOT_FOUND", "INVALID_TRANSITION", "CONFIG"]);

/** Exit code for an error that ended a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CoderClawError) return USAGE_CODES.has(err.code) ? EXIT.usage : EXIT.runtime;
  // identity/ has its own errors: a bad invite or statement is the user's input; key files and pairing failures are the environment's.
  if (err instanceof InviteError || err instanceof DecodeError) return EXIT.usage;
  if (err instanceof IdentityError) return EXIT.runtime;
  return EXIT.runtime;
}
