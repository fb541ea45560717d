import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createReplayGuard } from "../../node/tasks/replay-guard.js";
import { createLevelReplayStore } from "../../node/tasks/replay-store.js";
import { tempLevel } from "../security/helpers.js";
import { CoderClawError } from "../../src/contract/errors.js";

const SKEW = 300_000;
const MEMORY = 60_000;
const nonce = (n: number): Uint8Array => new Uint8Array([n >> 8, n & 255]);

/** The refusal's message, or undefined when the guard took the submission. */
function tryAdmit(admit: () => void): string | undefined {
  try {
    admit();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(CoderClawError);
    expect((err as CoderClawError).code).toBe("PERMISSION_DENIED");
    return (err as Error).message;
  }
}

describe("replay guard", () => {
  it("refuses a nonce seen before, a submission outside the clock window, and one signed too far behind the peer's newest", () => {
    const guard = createReplayGuard({ maxClockSkewMs: SKEW, memoryMs: MEMORY });
    const now = 1_000_000_000;
    expect(tryAdmit(() => guard.admit("a", now, nonce(1), now))).toBeUndefined();
    expect(tryAdmit(() => guard.admit("a", now, nonce(1), now + 5))).toBe("replayed submission");
    // Another peer may use the same nonce.
    expect(tryAdmit(() => guard.admit("b", now, nonce(1), now))).toBeUndefined();
    expect(tryAdmit(() => guard.admit("a", now - SKEW - 1, nonce(2), now))).toBe("submission timestamp outside the replay window");
    // Slightly out of order is fine; further behind than the memory is not.
    expect(tryAdmit(() => guard.admit("a", now - 1_000, nonce(3), now))).toBeUndefined();
    expect(tryAdmit(() => guard.admit("a", now - MEMORY - 1, nonce(4), now))).toMatch(/before this peer's newest one/);
  });

  it("holds a peer's nonces for its memory only, however long the peer keeps submitting", () => {
    const guard = createReplayGuard({ maxClockSkewMs: SKEW, memoryMs: MEMORY });
    let now = 1_000_000_000;
    // Ten simulated minutes at one submission every 10 ms, pruned every second as the server does.
    for (let i = 0; i < 60_000; i++) {
      now += 10;
      guard.admit("a", now, nonce(i), now);
      if (i % 100 === 0) guard.prune(now);
    }
    expect(guard.size).toBeLessThanOrEqual(MEMORY / 10 + 100);
    // Once everything the peer signed is outside the clock window, the peer is forgotten.
    guard.prune(now + SKEW + 1);
    expect(guard.size).toBe(0);
  });

  it("property: the same signed submission is never taken twice, whatever the order, timing and pruning", () => {
    const step = fc.record({
      peer: fc.constantFrom("a", "b"),
      nonce: fc.integer({ min: 0, max: 15 }),
      // When it was signed, relative to now: replays re-send an old (issuedAt, nonce) pair.
      signedAgo: fc.integer({ min: -SKEW / 10, max: SKEW * 1.2 }),
      advance: fc.integer({ min: 0, max: MEMORY / 2 }),
      replayOf: fc.option(fc.nat(), { nil: undefined }),
      prune: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const guard = createReplayGuard({ maxClockSkewMs: SKEW, memoryMs: MEMORY });
        let now = 1_000_000_000;
        const sent: Array<{ peer: string; issuedAt: number; nonce: number }> = [];
        const taken = new Set<string>();
        for (const s of steps) {
          now += s.advance;
          const submission = s.replayOf !== undefined && sent.length > 0 ? sent[s.replayOf % sent.length]! : { peer: s.peer, issuedAt: now - s.signedAgo, nonce: s.nonce };
          sent.push(submission);
          const refused = tryAdmit(() => guard.admit(submission.peer, submission.issuedAt, nonce(submission.nonce), now));
          const key = `${submission.peer}/${submission.issuedAt}/${submission.nonce}`;
          if (refused === undefined) {
            expect(taken.has(key)).toBe(false);
            expect(Math.abs(now - submission.issuedAt)).toBeLessThanOrEqual(SKEW);
            taken.add(key);
          }
          if (s.prune) guard.prune(now);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("replay store", () => {
  it("a guard restored from the store refuses what the one before the restart had taken, and the store forgets what the guard prunes", async () => {
    const level = await tempLevel();
    try {
      const store = createLevelReplayStore({ db: level.db, write: (ops) => level.db.batch(ops) });
      const now = 1_000_000_000;
      const before = createReplayGuard({ maxClockSkewMs: SKEW, memoryMs: MEMORY });
      for (const [i, at] of [now - MEMORY - 5_000, now - 1_000, now].entries()) {
        before.admit("peer-a", at, nonce(i), now);
        await store.remember({ peer: "peer-a", issuedAt: at, nonce: nonce(i) });
      }
      // A key that is not the store's own shape is dropped as it loads, not read.
      await level.db.put("rpl:garbage", new Uint8Array(0));

      const after = createReplayGuard({ maxClockSkewMs: SKEW, memoryMs: MEMORY });
      const loaded = await store.load();
      expect(loaded.map((e) => e.issuedAt)).toEqual([now - MEMORY - 5_000, now - 1_000, now]);
      for (const e of loaded) after.restore(e.peer, e.issuedAt, e.nonce);
      expect(tryAdmit(() => after.admit("peer-a", now, nonce(2), now + 10))).toBe("replayed submission");
      expect(tryAdmit(() => after.admit("peer-a", now - 1_000, nonce(1), now + 10))).toBe("replayed submission");
      expect(tryAdmit(() => after.admit("peer-a", now - MEMORY - 1, nonce(9), now + 10))).toMatch(/before this peer's newest one/);

      const forgotten = after.prune(now + 10);
      expect(forgotten.map((e) => e.issuedAt)).toEqual([now - MEMORY - 5_000]);
      await store.forget(forgotten);
      expect((await store.load()).map((e) => e.issuedAt)).toEqual([now - 1_000, now]);
      expect(await level.db.keys({ gte: "rpl:", lt: "rpl;" }).all()).toHaveLength(2);
    } finally {
      await level.dispose();
    }
  });
});
