/** Bytes of output one history entry holds at most. */
const MAX_OUTPUT_EVENT_BYTES = 64 * 1024;
/** Bytes of output a task's history holds at most; what comes later is dropped, and the history says so. */
const MAX_OUTPUT_HISTORY_BYTES = 1024 * 1024;

/**
 * A task's output on its way into history: chunks that arrive within the
 * coalescing window become one entry, so a chatty process does not write an
 * event per line, and the task's history holds a bounded amount of output.
 */
export class OutputBuffer {
  #chunks: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #bytes = 0;
  #truncated = false;

  /**
   * @param coalesceMs How long the first chunk waits for more before it is emitted.
   * @param emit Records one history entry of output.
   */
  constructor(
    private readonly coalesceMs: number,
    private readonly emit: (text: string) => void,
  ) {}

  /** Buffer a chunk; it is emitted within `coalesceMs`. */
  add(chunk: string): void {
    if (this.#truncated || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#timer ??= setTimeout(() => this.flush(), this.coalesceMs);
  }

  /** Emit what is buffered as one entry, within the per-task budget. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#chunks.length === 0) return;
    let text = this.#chunks.join("");
    this.#chunks = [];
    const budget = Math.min(MAX_OUTPUT_EVENT_BYTES, MAX_OUTPUT_HISTORY_BYTES - this.#bytes);
    if (Buffer.byteLength(text) > budget) {
      text = utf8Prefix(text, budget);
      if (this.#bytes + Buffer.byteLength(text) >= MAX_OUTPUT_HISTORY_BYTES) this.#truncated = true;
    }
    this.#bytes += Buffer.byteLength(text);
    if (text.length > 0) this.emit(text);
    if (this.#truncated) this.emit(`[output history truncated at ${MAX_OUTPUT_HISTORY_BYTES} bytes]`);
  }

  /**
   * Stop the coalescing timer without emitting: the task has ended, and what it
   * ended with is already in history. What is buffered stays for an explicit {@link flush}.
   */
  stopTimer(): void {
    clearTimeout(this.#timer);
  }
}

/** The longest prefix of `text` that fits in `budget` UTF-8 bytes, cut between characters (never inside one). */
function utf8Prefix(text: string, budget: number): string {
  const bytes = Buffer.from(text);
  let end = Math.max(0, Math.min(budget, bytes.length));
  // A continuation byte (10xxxxxx) at the cut means the character it belongs to started before it.
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
