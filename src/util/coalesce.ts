/**
 * Batches of the items of `source`, each holding everything that arrived while
 * the consumer handled the previous batch, or that arrived in the same turn of
 * the event loop, up to `max` items. A task whose events all happen at once (a
 * quick agent) then travels as one message instead of one per event.
 *
 * `isLast` names an item the source ends after (a task's terminal event): a
 * batch holding it goes out at once instead of at the end of the turn, since
 * nothing more can join it.
 *
 * With `firstWithinMs`, the first batch waits that long (rather than to the
 * end of the turn) for the last item: a quick task's outcome, told only once it
 * is durable, then still travels in the same message as its start.
 *
 * The source is read eagerly; it must end on its own (or through its own abort
 * signal) for the reading to stop. Its failure is rethrown after the items that
 * came before it.
 */
export async function* coalesce<T>(source: AsyncIterable<T>, max: number, isLast: (item: T) => boolean = () => false, firstWithinMs?: number): AsyncGenerator<T[]> {
  let first = firstWithinMs !== undefined;
  const buffer: T[] = [];
  let done = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  void (async () => {
    try {
      for await (const item of source) {
        buffer.push(item);
        wake?.();
      }
    } catch (error) {
      failure = { error };
    } finally {
      done = true;
      wake?.();
    }
  })();
  for (;;) {
    if (buffer.length === 0 && !done) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    // Whatever the same turn produces (an agent finishing right after it started) joins this batch, unless the source
    // ends first.
    const complete = (): boolean => done || (buffer.length > 0 && isLast(buffer.at(-1)!));
    if (!complete()) {
      await new Promise<void>((resolve) => {
        const timer = first ? setTimeout(resolve, firstWithinMs) : undefined;
        const turnEnd = first ? undefined : setImmediate(resolve);
        wake = () => {
          if (!complete()) return;
          clearTimeout(timer);
          if (turnEnd !== undefined) clearImmediate(turnEnd);
          resolve();
        };
      });
      wake = undefined;
    }
    first = false;
    if (buffer.length > 0) yield buffer.splice(0, max);
    else if (done) {
      if (failure) throw failure.error;
      return;
    }
  }
}
