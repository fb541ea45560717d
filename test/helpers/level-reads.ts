import type { Database } from "../../src/storage/level-database.js";

/** Counts entries read through the database's entry iterators (`iterator`, not `keys`) until stopped. */
export function countReads(db: Database): { entries: () => number; stop: () => void } {
  let entries = 0;
  const original = db.iterator.bind(db);
  db.iterator = ((...args: Parameters<Database["iterator"]>) => {
    const it = original(...args);
    const next = it.next.bind(it);
    it.next = (async () => {
      const entry = await next();
      if (entry !== undefined) entries++;
      return entry;
    });
    return it;
  }) as Database["iterator"];
  return { entries: () => entries, stop: () => void (db.iterator = original) };
}
