import { MAX_WIRE_OUTPUT_BYTES, type TaskMessage } from "./messages.js";

type WireEvent = Extract<TaskMessage, { t: "upd" }>["events"][number];

/**
 * The output text a task's events carried on one followed request, from its
 * first event: when a task's final output is exactly that text, its executor
 * sends the final state without it (`streamed`), and the follower puts it back
 * from here, so the output crosses the wire once. Bounded: past the largest
 * output a state may carry, it stops keeping text and has none to offer.
 */
export class StreamedOutput {
  #parts: string[] = [];
  #length = 0;
  #over = false;

  /** Take the output of `events`, the next ones on this request, in order. */
  add(events: readonly WireEvent[]): void {
    if (this.#over) return;
    for (const e of events) {
      if (e.type !== "output_added" || e.message === undefined) continue;
      this.#length += e.message.length;
      if (this.#length > MAX_WIRE_OUTPUT_BYTES) {
        this.#over = true;
        this.#parts = [];
        return;
      }
      this.#parts.push(e.message);
    }
  }

  /** The text so far; undefined once more arrived than a state may carry. */
  text(): string | undefined {
    if (this.#over) return undefined;
    if (this.#parts.length > 1) this.#parts = [this.#parts.join("")];
    return this.#parts[0] ?? "";
  }
}
