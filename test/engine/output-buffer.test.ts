import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutputBuffer } from "../../src/engine/output-buffer.js";

function buffer(coalesceMs = 5, historyBytes?: number): { out: OutputBuffer; emitted: string[] } {
  const emitted: string[] = [];
  return { out: new OutputBuffer(coalesceMs, (text) => emitted.push(text), historyBytes), emitted };
}

const isMarker = (text: string): boolean => text.startsWith("[output history truncated");

describe("OutputBuffer", () => {
  it("chunks within the window become one entry; empty chunks are no entry", async () => {
    const { out, emitted } = buffer();
    out.add("a");
    out.add("");
    out.add("b");
    expect(emitted).toEqual([]);
    await sleep(30);
    expect(emitted).toEqual(["ab"]);
    out.add("");
    await sleep(30);
    expect(emitted).toEqual(["ab"]);
  });

  it("flush emits at once and stopTimer keeps what is buffered until an explicit flush", async () => {
    const { out, emitted } = buffer();
    out.add("now");
    out.flush();
    expect(emitted).toEqual(["now"]);
    out.add("later");
    out.stopTimer();
    await sleep(30);
    expect(emitted).toEqual(["now"]);
    out.flush();
    expect(emitted).toEqual(["now", "later"]);
  });

  it("an entry holds at most 64 KiB: more output in one window becomes several entries, none of it lost", () => {
    const { out, emitted } = buffer();
    out.add("x".repeat(100 * 1024));
    out.flush();
    expect(emitted).toEqual(["x".repeat(64 * 1024), "x".repeat(36 * 1024)]);
  });

  it("keeps every byte up to the history budget, in order, in entries of at most 64 KiB, then one marker, last (property)", () => {
    const chunk = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 50 }), fc.nat(150_000).map((n) => "y".repeat(n)));
    fc.assert(
      fc.property(fc.array(fc.array(chunk, { maxLength: 6 }), { maxLength: 8 }), fc.integer({ min: 4, max: 400_000 }), (windows, budget) => {
        const { out, emitted } = buffer(1000, budget);
        for (const window of windows) {
          for (const c of window) out.add(c);
          out.flush();
        }
        const input = windows.flat().join("");
        const markers = emitted.filter(isMarker);
        const kept = emitted.filter((t) => !isMarker(t));
        const text = kept.join("");
        expect(input.startsWith(text)).toBe(true);
        for (const t of kept) expect(Buffer.byteLength(t)).toBeLessThanOrEqual(64 * 1024);
        if (Buffer.byteLength(input) <= budget) {
          expect(text).toBe(input);
          expect(markers).toEqual([]);
        } else {
          // Short of the budget by at most the bytes of one character that did not fit whole.
          expect(Buffer.byteLength(text)).toBeGreaterThan(budget - 4);
          expect(markers).toEqual([`[output history truncated at ${budget} bytes]`]);
          expect(emitted.at(-1)).toBe(markers[0]);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("a history holds at most 1 MiB of output, says so once, and takes nothing after", () => {
    const { out, emitted } = buffer();
    for (let i = 0; i < 20; i++) {
      out.add("x".repeat(64 * 1024));
      out.flush();
    }
    const notices = emitted.filter(isMarker);
    expect(notices).toEqual(["[output history truncated at 1048576 bytes]"]);
    const kept = emitted.filter((t) => !t.startsWith("["));
    expect(kept.reduce((n, t) => n + t.length, 0)).toBe(1024 * 1024);
    expect(emitted.at(-1)).toBe(notices[0]);
  });

  it("cuts an entry between characters: a multi-byte character at the limit is left out whole, never split", () => {
    const { out, emitted } = buffer();
    out.add("x".repeat(64 * 1024 - 1) + "é€");
    out.flush();
    expect(emitted).toEqual(["x".repeat(64 * 1024 - 1), "é€"]);
    expect(Buffer.byteLength(emitted[0]!)).toBeLessThanOrEqual(64 * 1024);
  });
});
