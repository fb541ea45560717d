import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { OutputBuffer } from "../../src/engine/output-buffer.js";

function buffer(coalesceMs = 5): { out: OutputBuffer; emitted: string[] } {
  const emitted: string[] = [];
  return { out: new OutputBuffer(coalesceMs, (text) => emitted.push(text)), emitted };
}

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

  it("an entry holds at most 64 KiB", () => {
    const { out, emitted } = buffer();
    out.add("x".repeat(100 * 1024));
    out.flush();
    expect(emitted).toEqual(["x".repeat(64 * 1024)]);
  });

  it("a history holds at most 1 MiB of output, says so once, and takes nothing after", () => {
    const { out, emitted } = buffer();
    for (let i = 0; i < 20; i++) {
      out.add("x".repeat(64 * 1024));
      out.flush();
    }
    const notices = emitted.filter((t) => t.startsWith("[output history truncated"));
    expect(notices).toEqual(["[output history truncated at 1048576 bytes]"]);
    const kept = emitted.filter((t) => !t.startsWith("["));
    expect(kept.reduce((n, t) => n + t.length, 0)).toBe(1024 * 1024);
    expect(emitted.at(-1)).toBe(notices[0]);
  });

  it("cuts an entry between characters: a multi-byte character at the limit is left out whole, never split", () => {
    const { out, emitted } = buffer();
    out.add("x".repeat(64 * 1024 - 1) + "é€");
    out.flush();
    expect(emitted[0]).toBe("x".repeat(64 * 1024 - 1));
    expect(emitted[0]).not.toContain("\ufffd");
    expect(Buffer.byteLength(emitted[0]!)).toBeLessThanOrEqual(64 * 1024);
  });
});
