/** What {@link Slots.take} answers: the function that gives the slot back, or which bound refused it and how many were held. */
export type SlotTaken = { release: () => void } | { refused: "all" | "key"; held: number };

/** Things held at once (open streams, bodies being received), bounded in all and per key (a session). */
export interface Slots {
  /** Take a slot for `key`; its `release` gives it back, once however often it is called. */
  take(key: string): SlotTaken;
  /** Slots held now, in all. */
  held(): number;
}

/** {@link Slots} of at most `max` in all and `maxPerKey` for one key. */
export function createSlots(max: number, maxPerKey: number): Slots {
  let held = 0;
  /** Slots by key, each present while it holds one. */
  const byKey = new Map<string, number>();
  return {
    take(key) {
      const mine = byKey.get(key) ?? 0;
      if (mine >= maxPerKey) return { refused: "key", held: mine };
      if (held >= max) return { refused: "all", held };
      held++;
      byKey.set(key, mine + 1);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          held--;
          const left = (byKey.get(key) ?? 1) - 1;
          if (left === 0) byKey.delete(key);
          else byKey.set(key, left);
        },
      };
    },
    held: () => held,
  };
}
