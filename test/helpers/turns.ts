/** Turns of the event loop counted from its creation until `stop`, for tests of how work is spread over turns. */
export interface TurnCounter {
  /** Turns begun so far. */
  readonly now: number;
  stop(): void;
}

export function countTurns(): TurnCounter {
  let turn = 0;
  let ticking = true;
  const tick = (): void => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get now() {
      return turn;
    },
    stop: () => void (ticking = false),
  };
}

/** The most items that share one turn, given the turn each was seen in. */
export function mostPerTurn(turns: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const t of turns) counts.set(t, (counts.get(t) ?? 0) + 1);
  return Math.max(0, ...counts.values());
}
