/**
 * An unbounded single-consumer queue that turns pushed values into an async
 * iterator; used to hand live events to a stream consumer without polling, and
 * as the inbox of a channel or an exchange. It ends cleanly ({@link end}) or
 * with an error ({@link fail}); either way what was queued before is read
 * first, and every read after that sees the same end.
 */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;

  push(item: T): void {
    if (this.ended) return;
    const waiter = this.take();
    if (waiter) waiter.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  /** No more items; a pending `next` resolves as done. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.take()?.resolve({ value: undefined, done: true });
  }

  /** No more items; once the queued ones are read, `next` rejects with `error`. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = { error };
    this.take()?.reject(error);
  }

  /** Items queued and not read yet. */
  get size(): number {
    return this.items.length;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private take(): { resolve: (r: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined {
    const waiter = this.waiter;
    this.waiter = undefined;
    return waiter;
  }
}
