import * as A from "@automerge/automerge";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore, bucketOf } from "../../src/storage/level-document-store.js";
import { hasCode } from "../../src/contract/errors.js";
import { tempDir } from "../helpers/temp-dir.js";

type Counter = { n: number; tags: string[] };

const dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

async function openStore(path: string, opts: ConstructorParameters<typeof LevelDocumentStore>[1] = {}) {
  const db = await openDatabase(path);
  const store = new LevelDocumentStore(db, { path, ...opts });
  return { db, store, close: async () => { await store.close(); await db.close(); } };
}

describe("LevelDocumentStore", () => {
  it("persists incremental updates and reloads them after reopening, across compactions", async () => {
    const dir = tempDir(); dirs.push(dir);
    let s = await openStore(dir.path, { compactAfterChunks: 4 });
    await s.store.update<Counter>("test/a", () => A.from<Counter>({ n: 0, tags: [] }));
    for (let i = 1; i <= 10; i++) {
      await s.store.update<Counter>("test/a", (d) => A.change(d!, (x) => { x.n = i; x.tags.push(`t${i}`); }));
    }
    const headsBefore = await s.store.heads("test/a");
    await s.close();

    s = await openStore(dir.path, { maxCachedDocs: 1 });
    const doc = await s.store.get<Counter>("test/a");
    expect(doc?.n).toBe(10);
    expect(doc?.tags).toHaveLength(10);
    expect(A.getHeads(doc!).sort()).toEqual(headsBefore!.slice().sort());
    await s.close();
  });

  it("serialises concurrent updates of one document", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    await s.store.update<Counter>("test/c", () => A.from<Counter>({ n: 0, tags: [] }));
    await Promise.all(Array.from({ length: 50 }, () => s.store.update<Counter>("test/c", (d) => A.change(d!, (x) => { x.n += 1; }))));
    expect((await s.store.get<Counter>("test/c"))?.n).toBe(50);
    await s.close();
  });

  it("lists ids by prefix and gives equal summaries for equal contents", async () => {
    const a = tempDir(); const b = tempDir(); dirs.push(a, b);
    const sa = await openStore(a.path);
    const sb = await openStore(b.path);
    const base = A.from<Counter>({ n: 1, tags: [] });
    for (const id of ["task/1", "task/2", "audit/x/0"]) {
      await sa.store.update(id, () => A.clone(base));
      await sb.store.update(id, () => A.clone(base));
    }
    const ids: string[] = [];
    for await (const id of sa.store.ids("task/")) ids.push(id);
    expect(ids).toEqual(["task/1", "task/2"]);
    expect(await sa.store.summary("task/")).toEqual(await sb.store.summary("task/"));
    await sa.store.update<Counter>("task/2", (d) => A.change(d!, (x) => { x.n = 2; }));
    const [sumA, sumB] = [await sa.store.summary("task/"), await sb.store.summary("task/")];
    const differing = sumA.buckets.flatMap((h, i) => (h === sumB.buckets[i] ? [] : [i]));
    expect(differing).toEqual([bucketOf("task/2")]);
    expect((await sa.store.bucketEntries("task/", differing)).map((e) => e.id)).toEqual(["task/2"]);
    await sa.close(); await sb.close();
  });

  it("refuses a database held by another handle with STORAGE_LOCKED naming the path", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    const err = await openDatabase(dir.path).catch((e: unknown) => e);
    expect(hasCode(err, "STORAGE_LOCKED")).toBe(true);
    expect((err as Error).message).toContain(dir.path);
    await s.close();
  });

  it("reads a torn chunk as STORAGE_CORRUPT naming the path and the document, not as an older document", async () => {
    const dir = tempDir(); dirs.push(dir);
    let s = await openStore(dir.path);
    await s.store.update<Counter>("test/a", () => A.from<Counter>({ n: 0, tags: [] }));
    await s.store.update<Counter>("test/a", (d) => A.change(d!, (x) => { x.n = 1; x.tags.push("one"); }));
    const chunkKey = "doc:test/a\u0001c:0000000000";
    const chunk = await s.db.get(chunkKey);
    await s.db.put(chunkKey, chunk.slice(0, chunk.length - 3));
    await s.close();

    s = await openStore(dir.path);
    const err = await s.store.get("test/a").catch((e: unknown) => e);
    expect(hasCode(err, "STORAGE_CORRUPT")).toBe(true);
    expect((err as Error).message).toContain(`${dir.path}: document test/a cannot be decoded`);
    await s.close();
  });

  it("refuses ids without a namespace or with control characters", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    expect(() => s.store.update("nonamespace", () => A.from({}))).toThrow(/namespaced/);
    expect(() => s.store.update("task/\u0001x", () => A.from({}))).toThrow(/control/);
    await s.close();
  });

  it("hands out fresh views of documents written through their backend, and A.change updates see those writes", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    type Raw = { status?: A.ImmutableString; n?: number };
    const bump = (status: string, n: number) => (d: A.Doc<Raw> | undefined) => {
      const doc = d ?? A.init<Raw>();
      const h = A.getBackend(doc);
      h.put("_root", "status", status, "str");
      h.put("_root", "n", n, "int");
      h.commit(null, 0);
      return doc;
    };
    await s.store.update<Raw>("task/r", bump("pending", 1), "local", { raw: true, isNew: true });
    const first = (await s.store.get<Raw>("task/r"))!;
    expect(first.status?.toString()).toBe("pending");
    await s.store.update<Raw>("task/r", bump("running", 2), "local", { raw: true });
    const second = (await s.store.get<Raw>("task/r"))!;
    // The earlier view keeps its content and its heads; the new one shows the new write.
    expect([first.status?.toString(), first.n, second.status?.toString(), second.n]).toEqual(["pending", 1, "running", 2]);
    expect(A.getHeads(first)).not.toEqual(A.getHeads(second));
    expect(A.getHeads(second)).toEqual(await s.store.heads("task/r"));

    // A writer using A.change gets an object that shows the raw writes, and its change keeps them.
    await s.store.update<Raw>("task/r", (d) => {
      expect(d?.status?.toString()).toBe("running");
      return A.change(d!, (x) => { x.n = 3; });
    });
    const third = (await s.store.get<Raw>("task/r"))!;
    expect([third.status?.toString(), third.n]).toEqual(["running", 3]);

    // Sync works from what get() hands out.
    let peer = A.init<Raw>();
    let [ours, theirs] = [A.initSyncState(), A.initSyncState()];
    for (let round = 0; round < 5; round++) {
      const [nextOurs, msg] = A.generateSyncMessage(third, ours);
      ours = nextOurs;
      if (msg) [peer, theirs] = A.receiveSyncMessage(peer, theirs, msg);
      const [nextTheirs, reply] = A.generateSyncMessage(peer, theirs);
      theirs = nextTheirs;
      if (reply) [, ours] = A.receiveSyncMessage(A.clone(third), ours, reply);
    }
    expect([peer.status?.toString(), peer.n]).toEqual(["running", 3]);
    await s.close();

    const reopened = await openStore(dir.path);
    const loaded = (await reopened.store.get<Raw>("task/r"))!;
    expect([loaded.status?.toString(), loaded.n]).toEqual(["running", 3]);
    await reopened.close();
  });

  it("stores a document received whole as its bytes, with derived records, and updates it later like any other", async () => {
    const dir = tempDir(); dirs.push(dir);
    let s = await openStore(dir.path);
    const derived: Array<[string, unknown, unknown]> = [];
    s.store.deriveFromRemote<number>({
      prefix: "test/",
      read: (root) => root("n") as number | undefined,
      ops: (id, before, after) => {
        derived.push([id, before, after]);
        return [{ type: "put", key: `derived:${id}`, value: Buffer.from(String(after)) }];
      },
    });
    const changes: Array<{ id: string; before: string[]; heads: string[] }> = [];
    s.store.onChange((c) => changes.push({ id: c.id, before: c.before, heads: c.heads }));
    let source = A.from<Counter>({ n: 7, tags: ["x"] });
    source = A.change(source, (d) => { d.n = 8; });
    const bytes = A.save(source);

    expect(await s.store.receiveNew("test/r", bytes)).toBe(true);
    expect(derived).toEqual([["test/r", undefined, 8]]);
    expect(Buffer.from(await s.db.get("derived:test/r")).toString()).toBe("8");
    expect(changes).toEqual([{ id: "test/r", before: [], heads: A.getHeads(source) }]);
    expect(await s.store.heads("test/r")).toEqual(A.getHeads(source));
    // Held now: a second copy is left to the general path.
    expect(await s.store.receiveNew("test/r", bytes)).toBe(false);
    await s.close();

    s = await openStore(dir.path);
    const doc = await s.store.get<Counter>("test/r");
    expect(doc).toMatchObject({ n: 8, tags: ["x"] });
    await s.store.update<Counter>("test/r", (d) => A.change(d!, (x) => { x.n = 9; }));
    expect((await s.store.get<Counter>("test/r"))?.n).toBe(9);
    await s.close();
  });

  it("refuses, writing nothing, received bytes that are not a whole document", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    const first = A.from<Counter>({ n: 1, tags: [] });
    const second = A.change(first, (d) => { d.n = 2; });
    // The second change alone depends on the first, which the store never saw.
    expect(await s.store.receiveNew("test/partial", A.saveSince(second, A.getHeads(first)))).toBe(false);
    expect(await s.store.receiveNew("test/garbage", new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]))).toBe(false);
    expect(await s.store.receiveNew("test/empty", new Uint8Array())).toBe(false);
    const ids: string[] = [];
    for await (const id of s.store.ids("test/")) ids.push(id);
    expect(ids).toEqual([]);
    await s.close();
  });

  it("property: any sequence of updates, evictions and reopenings reads back as the in-memory model", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ doc: fc.integer({ min: 0, max: 3 }), value: fc.integer(), reopen: fc.boolean() }), { minLength: 1, maxLength: 40 }),
        async (steps) => {
          const dir = tempDir(); 
          let s = await openStore(dir.path, { maxCachedDocs: 2, compactAfterChunks: 3 });
          const model = new Map<string, number[]>();
          try {
            for (const step of steps) {
              const id = `prop/${step.doc}`;
              const list = model.get(id) ?? [];
              list.push(step.value);
              model.set(id, list);
              await s.store.update<{ values: number[] }>(id, (d) =>
                d ? A.change(d, (x) => { x.values.push(step.value); }) : A.from({ values: [step.value] }),
              );
              if (step.reopen) { await s.close(); s = await openStore(dir.path, { maxCachedDocs: 2, compactAfterChunks: 3 }); }
            }
            for (const [id, values] of model) {
              expect((await s.store.get<{ values: number[] }>(id))?.values).toEqual(values);
            }
          } finally {
            await s.close();
            dir.remove();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe("LevelDocumentStore keeps the live object", () => {
  it("after an update that returns a new object with unchanged heads, the next A.change still works", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    await s.store.update<Counter>("test/sync", () => A.from<Counter>({ n: 1, tags: [] }));
    // A sync round that brings nothing still returns a new document and outdates the one it was given.
    const peer = A.clone((await s.store.get<Counter>("test/sync"))!);
    const [, msg] = A.generateSyncMessage(peer, A.initSyncState());
    await s.store.update<Counter>("test/sync", (d) => A.receiveSyncMessage(d!, A.initSyncState(), msg!)[0], "remote");
    await s.store.update<Counter>("test/sync", (d) => A.change(d!, (x) => { x.n = 2; }));
    expect((await s.store.get<Counter>("test/sync"))?.n).toBe(2);
    await s.close();
  });
});
