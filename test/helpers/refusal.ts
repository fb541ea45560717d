import { CoderClawError } from "../../src/contract/errors.js";

/** The field and message `fn` is refused with; fails when it is not refused, or throws something else. */
export function refusal(fn: () => unknown): { field: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CoderClawError) return { field: err.field, message: err.message };
    throw err;
  }
  throw new Error("not refused");
}
