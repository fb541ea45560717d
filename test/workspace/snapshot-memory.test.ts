import { describe, expect, it } from "vitest";
import { SnapshotMemory } from "../../src/workspace/snapshot-memory.js";

describe("SnapshotMemory", () => {
  it("keeps one memory per directory and cache file, for the directories snapshotted last", () => {
    const memory = new SnapshotMemory(2);
    const a = memory.of("/repo/a", "/home/cache-a");
    expect(memory.of("/repo/a", "/home/cache-a")).toBe(a);
    // Another cache file for the same directory is another memory: its records are another file's.
    expect(memory.of("/repo/a", "/home/other")).not.toBe(a);
    // /repo/a with cache-a was used before /repo/a with other: a third directory pushes it out.
    memory.of("/repo/b", undefined);
    expect(memory.of("/repo/a", "/home/cache-a")).not.toBe(a);
    const b = memory.of("/repo/b", undefined);
    memory.of("/repo/b", undefined);
    memory.of("/repo/c", undefined);
    // Used last but one, b stays while c comes in and the oldest goes.
    expect(memory.of("/repo/b", undefined)).toBe(b);
  });
});
