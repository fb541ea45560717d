/**
 * Work done one piece at a time per key, in the order it was asked for; work
 * for different keys runs at once. A piece that fails does not stop the ones
 * queued behind it.
 */
export class KeyedTurns {
  /** The last piece asked for, per key with work queued or running, settled whatever its outcome. */
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `work` once every piece asked for `key` before it has settled; answers what `work` answers. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const next = (this.#tails.get(key) ?? Promise.resolve()).then(work);
    const settled = (): void => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
    const tail = next.then(settled, settled);
    this.#tails.set(key, tail);
    // Released as `work` settles, before whoever awaits `next` goes on: it finds the key free if nothing else was asked for it.
    return next;
  }

  /** Whether work for `key` is queued or running. */
  has(key: string): boolean {
    return this.#tails.has(key);
  }

  /** Settles once every piece asked for so far has settled. */
  async settled(): Promise<void> {
    await Promise.all(this.#tails.values());
  }
}
