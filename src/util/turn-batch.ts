/**
 * Items gathered during one turn of the event loop and handed over together at
 * its end, so that under load many items cost one hand-over. The first item of
 * a turn is handed over at once when `now()` says nothing else is in flight, so
 * a lone item waits for nothing.
 */
export class TurnBatch<T> {
  #items: T[] = [];
  #open = false;

  constructor(
    private readonly handOver: (items: T[]) => void,
    private readonly now: () => boolean,
  ) {}

  push(item: T): void {
    this.#items.push(item);
    if (this.#open) return;
    this.#open = true;
    setImmediate(() => {
      this.#open = false;
      this.take();
    });
    if (this.now()) this.take();
  }

  /** Hand over what is gathered so far, without waiting for the end of the turn. */
  take(): void {
    if (this.#items.length > 0) this.handOver(this.#items.splice(0));
  }
}
