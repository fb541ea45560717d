/** Default cap on the output an agent keeps: 1 MiB. */
export const DEFAULT_OUTPUT_LIMIT = 1024 * 1024;
/** Largest output limit a node may be configured with: a task's final state, output included, must fit one message of the task protocol. */
export const MAX_OUTPUT_LIMIT = 4 * 1024 * 1024;

/**
 * Keeps at most `limit` bytes of a stream: the first half and the last half.
 * What falls between is counted, and {@link HeadTailBuffer.toString} puts a
 * marker there saying how many bytes were cut, so a flood costs bounded memory
 * yet both the start (the command line, the first error) and the end (the
 * summary, the last error) survive.
 */
export class HeadTailBuffer {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private cut = 0;

  constructor(readonly limit: number = DEFAULT_OUTPUT_LIMIT) {
    if (!Number.isSafeInteger(limit) || limit < 2) throw new RangeError(`output limit must be an integer >= 2, got ${limit}`);
    this.headLimit = Math.ceil(limit / 2);
    this.tailLimit = limit - this.headLimit;
  }

  /** Bytes seen but not kept. */
  get cutBytes(): number {
    return this.cut;
  }

  /** Bytes seen in total. */
  get totalBytes(): number {
    return this.headBytes + this.tailBytes + this.cut;
  }

  /** Add bytes at the end; memory stays within `limit` however much comes. */
  append(chunk: Buffer | string): void {
    let data = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    if (this.headBytes < this.headLimit) {
      const take = Math.min(this.headLimit - this.headBytes, data.length);
      this.head.push(data.subarray(0, take));
      this.headBytes += take;
      data = data.subarray(take);
    }
    if (data.length === 0) return;
    this.tail.push(data);
    this.tailBytes += data.length;
    // Drop whole chunks first, then trim the oldest one, so the loop runs at most
    // once per chunk held.
    while (this.tailBytes > this.tailLimit) {
      const first = this.tail[0];
      if (first === undefined) break;
      const excess = this.tailBytes - this.tailLimit;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
        this.cut += first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
        this.cut += excess;
      }
    }
  }

  /** The kept text; a marker line stands where bytes were cut. */
  toString(): string {
    const head = Buffer.concat(this.head).toString("utf8");
    const tail = Buffer.concat(this.tail).toString("utf8");
    if (this.cut === 0) return head + tail;
    return `${head}\n[... ${this.cut} bytes cut by the output limit of ${this.limit} bytes ...]\n${tail}`;
  }

  /** The last `bytes` bytes kept, for error messages. */
  lastText(bytes: number): string {
    const all = Buffer.concat([...this.head, ...this.tail]);
    return all.subarray(Math.max(0, all.length - bytes)).toString("utf8");
  }
}
