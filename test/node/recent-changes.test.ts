import { describe, expect, it } from "vitest";
import { RecentChanges } from "../../node/workspaces/recent-changes.js";
import type { OpenedChanges } from "../../node/workspaces/task-result.js";

/** A node's opening of changes, counted: each answers its own files, so that a kept one can be told from a new one. */
function counted(fail = (_taskId: string): boolean => false) {
  const opens: string[] = [];
  const open = async (taskId: string): Promise<OpenedChanges> => {
    opens.push(taskId);
    if (fail(taskId)) throw new Error(`refused ${taskId}`);
    return { result: { tree: taskId } as OpenedChanges["result"], files: [{ kind: "patch", path: `p${opens.length}`, size: 0, chunks: [] }], read: async () => new Uint8Array() };
  };
  return { opens, open };
}

describe("recently opened task changes", () => {
  it("open a result once for many reads, and once for reads at the same time; with other sources it is another opening", async () => {
    const { opens, open } = counted();
    const recent = new RecentChanges(open);
    const first = await Promise.all(Array.from({ length: 10 }, () => recent.open("t1")));
    for (let i = 0; i < 100; i++) await recent.open("t1");
    expect(new Set(first).size).toBe(1);
    expect(opens).toEqual(["t1"]);
    await recent.open("t1", { grant: new Uint8Array([1]) });
    await recent.open("t1", { holders: ["p"] });
    expect(opens).toEqual(["t1", "t1", "t1"]);
  });

  it("keep no failure: a refused result is asked for again, and refused again", async () => {
    const { opens, open } = counted((id) => id === "bad");
    const recent = new RecentChanges(open);
    await expect(recent.open("bad")).rejects.toThrow(/refused bad/);
    await expect(recent.open("bad")).rejects.toThrow(/refused bad/);
    expect(opens).toEqual(["bad", "bad"]);
  });

  it("let go of a result a minute after its last use, of the least recently used beyond 16, and of all at forget()", async () => {
    let now = 0;
    const { opens, open } = counted();
    const recent = new RecentChanges(open, () => now);
    await recent.open("a");
    now = 59_000;
    await recent.open("a");
    now = 118_000;
    await recent.open("a");
    expect(opens).toEqual(["a"]);
    now = 178_000;
    await recent.open("a");
    expect(opens).toEqual(["a", "a"]);

    for (let i = 0; i < 16; i++) await recent.open(`t${i}`);
    // "a" was used last before t0..t15: the 17th opening lets it go, and t0 is still kept.
    await recent.open("t0");
    await recent.open("a");
    expect(opens.filter((id) => id === "a")).toHaveLength(3);
    expect(opens.filter((id) => id === "t0")).toHaveLength(1);

    recent.forget();
    await recent.open("t0");
    expect(opens.filter((id) => id === "t0")).toHaveLength(2);
  });
});
