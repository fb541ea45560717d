/**
 * Consecutive runs of `items` whose sizes add up to at most `max`; an item
 * larger than `max` gets a run of its own. Used to fill messages up to a frame
 * budget without splitting an item.
 */
export function* runsBySize<T>(items: Iterable<T>, sizeOf: (item: T) => number, max: number): Generator<T[]> {
  let run: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (run.length > 0 && bytes + size > max) {
      yield run;
      run = [];
      bytes = 0;
    }
    run.push(item);
    bytes += size;
  }
  if (run.length > 0) yield run;
}
