/** Bytes of output one history entry holds at most; a window with more becomes several entries. */
const MAX_OUTPUT_EVENT_BYTES = 64 * 1024;
/** Bytes of output a task's history holds at most by default. */
export const DEFAULT_OUTPUT_HISTORY_BYTES = 1024 * 1024;

/**
 * A task's output on its way into history: chunks that arrive within the
 * coalescing window become one entry (several when they exceed an entry's
 * size), so a chatty process does not write an event per line. Every byte up
 * to the history budget is kept, in order; past it, one marker says so and the
 * rest is dropped.
 */
export class OutputBuffer {
  #chunks: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #bytes = 0;
  #truncated = false;

  /**
   * @param coalesceMs How long the first chunk waits for more before it is emitted.
   * @param emit Records one history entry of output.
   * @param historyBytes Bytes of output the task's history holds at most.
   */
  constructor(
    private readonly coalesceMs: number,
    private readonly emit: (text: string) => void,
    private readonly historyBytes = DEFAULT_OUTPUT_HISTORY_BYTES,
  ) {}

  /** Buffer a chunk; it is emitted within `coalesceMs`. */
  add(chunk: string): void {
    if (this.#truncated || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#timer ??= setTimeout(() => this.flush(), this.coalesceMs);
  }

  /** Emit what is buffered, in entries of at most 64 KiB, within the per-task budget. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#chunks.length === 0) return;
    let rest = Buffer.from(this.#chunks.join(""));
    this.#chunks = [];
    while (rest.length > 0) {
      const budget = Math.min(MAX_OUTPUT_EVENT_BYTES, this.historyBytes - this.#bytes);
      const end = rest.length <= budget ? rest.length : utf8Cut(rest, budget);
      // Nothing more fits, not even the next whole character.
      if (end === 0) {
        this.#truncated = true;
        break;
      }
      this.emit(rest.subarray(0, end).toString("utf8"));
      this.#bytes += end;
      rest = rest.subarray(end);
    }
    if (this.#truncated) this.emit(`[output history truncated at ${this.historyBytes} bytes]`);
  }

  /**
   * Stop the coalescing timer without emitting: the task has ended, and what it
   * ended with is already in history. What is buffered stays for an explicit {@link flush}.
   */
  stopTimer(): void {
    clearTimeout(this.#timer);
  }
}

/** Where to cut `bytes` (UTF-8) to keep at most `budget` of them: between characters, never inside one. */
function utf8Cut(bytes: Buffer, budget: number): number {
  let end = Math.max(0, Math.min(budget, bytes.length));
  // A continuation byte (10xxxxxx) at the cut means the character it belongs to started before it.
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return end;
}
