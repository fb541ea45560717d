import * as A from "@automerge/automerge";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { segmentDocId, SEGMENT_LAYOUT } from "../../src/security/audit/segments.js";
import { ChunkedDocuments, CorruptDocumentError, type ChunkLayout, type StoredState } from "../../src/storage/chunked-documents.js";
import type { KeyValueStore } from "../../src/storage/key-value.js";
import { DOCUMENT_LAYOUT } from "../../src/storage/level-document-store.js";

/** A key-value store under test, with what the suite needs to close and reopen it. */
export interface ChunkedDocumentsFixture {
  kv: KeyValueStore;
  /** Closes the store and opens it again over the same data. */
  reopen(): Promise<KeyValueStore>;
  teardown(): Promise<void>;
}

type Doc = { n: number; items: string[] };

const COMPACT_AFTER = 4;

/** The layouts homes hold today, each with ids of its kind and the exact keys it writes. */
const layouts: Array<{ name: string; layout: ChunkLayout; ids: [string, string, string]; snapshotKey: string; chunkKey: string }> = [
  {
    name: "task documents",
    layout: DOCUMENT_LAYOUT,
    ids: ["task/a", "task/b", "mesh/c"],
    snapshotKey: "doc:task/a\u0001s",
    chunkKey: "doc:task/a\u0001c:0000000000",
  },
  {
    name: "audit segments",
    layout: SEGMENT_LAYOUT,
    ids: [segmentDocId("peer-1", 0), segmentDocId("peer-1", 1), segmentDocId("peer/2", 0)],
    snapshotKey: "audit/peer-1/0000000000/snap",
    chunkKey: "audit/peer-1/0000000000/chunk/000000",
  },
];

/**
 * The contract of {@link ChunkedDocuments} over a key-value store, run for both
 * key layouts in use: what one layer must do for task documents and audit
 * segments alike, on every store it runs on.
 */
export function chunkedDocumentsSuite(name: string, setup: () => Promise<ChunkedDocumentsFixture>): void {
  for (const { name: layoutName, layout, ids, snapshotKey, chunkKey } of layouts) {
    describe(`chunked documents: ${name}, ${layoutName}`, () => {
      let fixture: ChunkedDocumentsFixture;
      let kv: KeyValueStore;
      let docs: ChunkedDocuments;
      const [id, sibling, other] = ids;

      beforeEach(async () => {
        fixture = await setup();
        kv = fixture.kv;
        docs = new ChunkedDocuments(kv, layout, COMPACT_AFTER);
      });
      afterEach(async () => {
        await fixture.teardown();
      });

      /** Applies a change, stores it and returns the document and what is stored of it. */
      async function changeAndSave(doc: A.Doc<Doc>, stored: StoredState | undefined, item: string): Promise<{ doc: A.Doc<Doc>; stored: StoredState }> {
        const next = A.change(doc, (d) => {
          d.n++;
          d.items.push(item);
        });
        const write = docs.save(id, next, stored);
        await kv.batch(write.ops);
        return { doc: next, stored: { chunks: write.chunks, heads: A.getHeads(next) } };
      }

      async function saveNew(docId: string, items: string[] = []): Promise<A.Doc<Doc>> {
        const doc = A.from<Doc>({ n: items.length, items });
        await kv.batch(docs.save(docId, doc, undefined).ops);
        return doc;
      }

      /** Saves `id` new, then one chunk per item. */
      async function saveWithChunks(items: string[]): Promise<{ doc: A.Doc<Doc>; stored: StoredState }> {
        let state = { doc: await saveNew(id), stored: { chunks: 0 } as StoredState };
        for (const item of items) state = await changeAndSave(state.doc, state.stored, item);
        return state;
      }

      it("holds nothing for an id never saved", async () => {
        expect(await docs.load(id)).toBeUndefined();
        expect(await docs.read(id)).toEqual({ keys: [], parts: [], chunks: 0 });
        expect(await collect(docs.ids())).toEqual([]);
      });

      it("stores a new document as its snapshot, under the layout's key, and loads it back", async () => {
        const doc = await saveNew(id, ["x"]);
        expect((await docs.read(id)).keys).toEqual([snapshotKey]);
        const loaded = await docs.load<Doc>(id);
        expect(loaded?.chunks).toBe(0);
        expect(A.toJS(loaded!.doc)).toEqual({ n: 1, items: ["x"] });
        expect(A.getHeads(loaded!.doc)).toEqual(A.getHeads(doc));
      });

      it("computes writes without applying them: nothing is stored until the caller commits them", async () => {
        const write = docs.save(id, A.from<Doc>({ n: 0, items: [] }), undefined);
        expect(write.ops).toEqual([{ type: "put", key: snapshotKey, value: write.changes }]);
        expect(await docs.load(id)).toBeUndefined();
      });

      it("appends changes as incremental chunks after the snapshot and loads them in history order", async () => {
        const state = await saveWithChunks(["a", "b", "c"]);
        const read = await docs.read(id);
        expect(read.chunks).toBe(3);
        expect(read.keys[0]).toBe(chunkKey);
        expect(read.keys.at(-1)).toBe(snapshotKey);
        const loaded = await docs.load<Doc>(id);
        expect(loaded?.chunks).toBe(3);
        expect(A.toJS(loaded!.doc)).toEqual({ n: 3, items: ["a", "b", "c"] });
        expect(A.getHeads(loaded!.doc).sort()).toEqual(A.getHeads(state.doc).sort());
      });

      it("stores a document begun as chunks, without heads (Automerge's own record of what it saved), and loads it", async () => {
        let doc = A.from<Doc>({ n: 0, items: [] });
        let stored: StoredState = { chunks: 0 };
        for (const item of ["a", "b"]) {
          doc = A.change(doc, (d) => void d.items.push(item));
          const write = docs.save(id, doc, stored);
          await kv.batch(write.ops);
          stored = { chunks: write.chunks };
        }
        expect((await docs.read(id)).keys).not.toContain(snapshotKey);
        const loaded = await docs.load<Doc>(id);
        expect(loaded?.chunks).toBe(2);
        expect(A.toJS(loaded!.doc).items).toEqual(["a", "b"]);
      });

      it("compacts the chunks into a snapshot at the threshold, keeping content and heads", async () => {
        let state = await saveWithChunks([]);
        const items = Array.from({ length: COMPACT_AFTER * 2 + 1 }, (_, i) => `i${i}`);
        const counts: number[] = [];
        for (const item of items) {
          state = await changeAndSave(state.doc, state.stored, item);
          counts.push(state.stored.chunks);
        }
        expect(counts).toEqual([1, 2, 3, 0, 1, 2, 3, 0, 1]);
        const read = await docs.read(id);
        expect(read.keys).toEqual([chunkKey, snapshotKey]);
        const loaded = await docs.load<Doc>(id);
        expect(A.toJS(loaded!.doc)).toEqual({ n: items.length, items });
        expect(A.getHeads(loaded!.doc).sort()).toEqual(A.getHeads(state.doc).sort());
      });

      it("removes every record of one document and nothing of another", async () => {
        await saveWithChunks(["a"]);
        await saveNew(sibling, ["kept"]);
        const read = await docs.read(id);
        await kv.batch(docs.remove(read));
        expect(await docs.load(id)).toBeUndefined();
        expect(await collect(docs.ids())).toEqual([sibling]);
        expect(A.toJS((await docs.load<Doc>(sibling))!.doc).items).toEqual(["kept"]);
      });

      it("lists each stored document once, in key order, under a prefix", async () => {
        await saveWithChunks(["a", "b"]);
        await saveNew(other);
        await saveNew(sibling);
        expect(await collect(docs.ids())).toEqual([...ids].sort());
        const prefix = id.slice(0, id.lastIndexOf("/") + 1);
        expect(await collect(docs.ids(prefix))).toEqual([id, sibling]);
        expect(await collect(docs.ids(`${prefix}\u00ff`))).toEqual([]);
      });

      it("reopens after close holding what was written, and carries on from the stored chunk count", async () => {
        const state = await saveWithChunks(["a", "b"]);
        kv = await fixture.reopen();
        docs = new ChunkedDocuments(kv, layout, COMPACT_AFTER);
        const loaded = (await docs.load<Doc>(id))!;
        expect(loaded.chunks).toBe(2);
        expect(A.getHeads(loaded.doc).sort()).toEqual(A.getHeads(state.doc).sort());
        await changeAndSave(loaded.doc, { chunks: loaded.chunks, heads: A.getHeads(loaded.doc) }, "c");
        expect((await docs.read(id)).chunks).toBe(3);
        expect(A.toJS((await docs.load<Doc>(id))!.doc).items).toEqual(["a", "b", "c"]);
      });

      for (const [damage, harm] of [
        ["torn", (bytes: Uint8Array) => bytes.slice(0, bytes.length - 3)],
        ["corrupt", (bytes: Uint8Array) => bytes.map((b, i) => (i === 10 ? b ^ 0xff : b))],
      ] as const) {
        it(`reports a ${damage} chunk as a corrupt document naming it, never as a shorter document`, async () => {
          await saveWithChunks(["a", "b"]);
          const read = await docs.read(id);
          const last = read.keys[read.chunks - 1]!;
          await kv.batch([{ type: "put", key: last, value: harm(read.parts.at(-1)!) }]);
          const failure = await docs.load(id).then(
            () => undefined,
            (err: unknown) => err,
          );
          expect(failure).toBeInstanceOf(CorruptDocumentError);
          expect(failure).toMatchObject({ id, code: "STORAGE_CORRUPT" });
          expect((failure as Error).message).toContain(`document ${id} cannot be decoded`);
        });
      }
    });
  }
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
