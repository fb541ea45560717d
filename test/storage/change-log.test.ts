import * as A from "@automerge/automerge";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

async function openStore(path: string) {
  const db = await openDatabase(path);
  const store = new LevelDocumentStore(db, { path });
  return { db, store, close: async () => { await store.close(); await db.close(); } };
}

const bump = (store: LevelDocumentStore, id: string): Promise<unknown> =>
  store.update<{ n: number }>(id, (d) => (d === undefined ? A.from({ n: 0 }) : A.change(d, (x) => { x.n++; })));

describe("the document store's change log", () => {
  it("answers what changed after a position, once per document, with its heads now; survives a restart; refuses a position of another log", async () => {
    const dir = tempDir(); dirs.push(dir);
    let s = await openStore(dir.path);
    for (const id of ["task/a", "task/b", "task/c", "other/x"]) await bump(s.store, id);
    const mark = s.store.logPosition();
    expect(mark.seq).toBe(4);
    await bump(s.store, "task/b");
    await bump(s.store, "task/b");
    await bump(s.store, "task/d");
    await bump(s.store, "other/x");
    const changed = (await s.store.changedSince(mark.epoch, mark.seq, ["task/"]))!;
    expect(changed.upto).toBe(8);
    expect(changed.entries).toEqual([
      { id: "task/b", heads: (await s.store.heads("task/b"))!.slice().sort() },
      { id: "task/d", heads: (await s.store.heads("task/d"))!.slice().sort() },
    ]);
    expect((await s.store.changedSince(mark.epoch, 8, ["task/"]))!.entries).toEqual([]);
    await s.store.remove("task/d");
    expect((await s.store.changedSince(mark.epoch, mark.seq, ["task/"]))!.entries.map((e) => e.id)).toEqual(["task/b"]);
    await s.close();

    s = await openStore(dir.path);
    expect(s.store.logPosition()).toEqual({ epoch: mark.epoch, seq: 8 });
    await bump(s.store, "task/a");
    expect((await s.store.changedSince(mark.epoch, 8, ["task/"]))!.entries.map((e) => e.id)).toEqual(["task/a"]);
    expect(await s.store.changedSince("another epoch", 0, ["task/"])).toBeUndefined();
    expect(await s.store.changedSince(mark.epoch, 10, ["task/"])).toBeUndefined();
    await s.close();
  });

  it("holds one entry per document and names every document changed after any position (property)", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 40 }), fc.nat(), async (writes, at) => {
        const ids = writes.map((w) => `task/r${run}-${w}`);
        run++;
        const start = s.store.logPosition().seq;
        for (const id of ids) await bump(s.store, id);
        const cut = Math.min(at % (ids.length + 1), ids.length);
        const position = start + cut;
        const changed = (await s.store.changedSince(s.store.logPosition().epoch, position, [`task/r${run - 1}-`]))!;
        expect(changed.entries.map((e) => e.id).sort()).toEqual([...new Set(ids.slice(cut))].sort());
      }),
      { numRuns: 40 },
    );
    await s.close();
  });
});
