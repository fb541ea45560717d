import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { WriteBatcher } from "../../src/storage/write-batcher.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function database(): Promise<{ db: Database; batches: number[] }> {
  const dir = tempDir();
  const db = await openDatabase(dir.path);
  cleanups.push(() => dir.remove(), () => db.close());
  const batches: number[] = [];
  const batch = db.batch.bind(db) as (ops: unknown[]) => Promise<void>;
  (db as unknown as { batch: (ops: unknown[]) => Promise<void> }).batch = (ops) => {
    batches.push(ops.length);
    return batch(ops);
  };
  return { db, batches };
}

const put = (key: string) => ({ type: "put" as const, key, value: new Uint8Array([1]) });

describe("write batcher", () => {
  it("writes what one turn queues as one batch, at the end of the turn", async () => {
    const { db, batches } = await database();
    const batcher = new WriteBatcher(db);
    const written = [batcher.write([put("a")]), batcher.write([put("b"), put("c")])];
    expect(batches).toEqual([]);
    await Promise.all(written);
    expect(batches).toEqual([3]);
  });

  it("writes now, with everything queued before, when asked to", async () => {
    const { db, batches } = await database();
    const batcher = new WriteBatcher(db);
    const earlier = batcher.write([put("a")]);
    const now = batcher.writeNow([put("b")]);
    await new Promise((resolve) => queueMicrotask(() => resolve(undefined)));
    expect(batches).toEqual([2]);
    await Promise.all([earlier, now]);
    await batcher.drain();
    expect(batches).toEqual([2]);
    expect(db.getSync("a")).toBeDefined();
    expect(db.getSync("b")).toBeDefined();
  });

  it("writes operations on a sublevel atomically with the rest", async () => {
    const { db, batches } = await database();
    const batcher = new WriteBatcher(db);
    const sub = db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" });
    await Promise.all([batcher.write([put("top")]), batcher.write([{ ...put("inner"), sublevel: sub }])]);
    expect(batches).toEqual([2]);
    expect([...((await sub.get("inner")) ?? [])]).toEqual([1]);
    expect(await db.get("inner")).toBeUndefined();
  });
});
