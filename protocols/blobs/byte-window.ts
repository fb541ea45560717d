/**
 * Bytes in flight to one peer: a sender takes room before it hands bytes to the
 * stream and gives it back once the stream took them. One chunk always fits
 * when nothing else is in flight, so a chunk larger than the limit cannot block.
 */
export class ByteWindow {
  readonly limit: number;
  #inFlight = 0;
  #waiters: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  async take(bytes: number): Promise<void> {
    while (this.#inFlight > 0 && this.#inFlight + bytes > this.limit) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    this.#inFlight += bytes;
  }

  give(bytes: number): void {
    this.#inFlight -= bytes;
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
