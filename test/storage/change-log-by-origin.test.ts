import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as A from "@automerge/automerge";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { countReads } from "../helpers/level-reads.js";
import { runThenKill } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

const dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

const child = fileURLToPath(new URL("../fixtures/change-log-child.mjs", import.meta.url));
const built = fileURLToPath(new URL("../../dist/src/storage/level-document-store.js", import.meta.url));
const SEP = "\u0001";
const ORIGINS = [undefined, "peer-a", "peer-b"] as const;
const ASKERS = [undefined, "peer-a", "peer-b", "peer-c"] as const;
const PREFIXES = ["task/"];

async function openStore(path: string) {
  const db = await openDatabase(path);
  const store = new LevelDocumentStore(db, { path });
  return { db, store, close: async () => { await store.close(); await db.close(); } };
}

type Opened = Awaited<ReturnType<typeof openStore>>;

const write = (store: LevelDocumentStore, id: string, from: string | undefined): Promise<unknown> =>
  store.update<{ n: number }>(id, (d) => (d === undefined ? A.from({ n: 0 }) : A.change(d, (x) => { x.n++; })), from === undefined ? "local" : "remote", from === undefined ? {} : { from });

/**
 * Make the database what a node wrote before entries were kept by origin:
 * one log, `clog:<position>` naming the id and the peer it came from. Reopened,
 * the store keeps what comes after by origin.
 */
async function toOldLayout(path: string): Promise<void> {
  const db = await openDatabase(path);
  const ops: Array<{ type: "put"; key: string; value: Uint8Array } | { type: "del"; key: string }> = [{ type: "del", key: "clog-by-from" }];
  for (const e of await logEntries(db)) {
    if (e.key.startsWith("clog:")) continue;
    const key = `clog:${e.key.slice(e.key.lastIndexOf(SEP) + 1)}`;
    ops.push({ type: "del", key: e.key }, { type: "put", key, value: Buffer.from(e.from === undefined ? e.id : e.id + SEP + e.from) }, { type: "put", key: `clog-of:${e.id}`, value: Buffer.from(key) });
  }
  await db.batch(ops);
  await db.close();
}

interface Entry {
  key: string;
  seq: number;
  id: string;
  from: string | undefined;
}

/** The log's entries, in either layout, read whole: what every answer is checked against. */
async function logEntries(db: Database): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const [key, value] of db.iterator({ gt: "clog:", lt: "clog:\uffff" })) {
    const [id, from] = Buffer.from(value).toString("utf8").split(SEP);
    out.push({ key, seq: parseInt(key.slice("clog:".length), 36), id: id!, from });
  }
  for await (const [key, value] of db.iterator({ gt: "clog-by:", lt: "clog-by:\uffff" })) {
    const [origin, seq] = key.slice("clog-by:".length).split(SEP);
    out.push({ key, seq: parseInt(seq!, 36), id: Buffer.from(value).toString("utf8"), from: origin === "" ? undefined : origin });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** What a read of the whole log answers: each document last changed after `after` by another than `asker`, in log order. */
async function expected(s: Opened, after: number, asker: string | undefined): Promise<Array<{ id: string; heads: string[] }>> {
  const out: Array<{ id: string; heads: string[] }> = [];
  for (const e of await logEntries(s.db)) {
    if (e.seq <= after || (asker !== undefined && e.from === asker) || !e.id.startsWith("task/")) continue;
    out.push({ id: e.id, heads: [...(await s.store.heads(e.id))!].sort() });
  }
  return out;
}

async function answersEveryQuestion(s: Opened): Promise<void> {
  const { epoch, seq } = s.store.logPosition();
  for (let after = 0; after <= seq; after++) {
    for (const asker of ASKERS) {
      const answer = (await s.store.changedSince(epoch, after, PREFIXES, asker))!;
      expect(answer.entries, `after ${after}, asked by ${asker ?? "nobody"}`).toEqual(await expected(s, after, asker));
    }
  }
}

/**
 * The log holds one entry per stored document, the one `clog-of` names, and
 * nothing else; past where entries by origin began, all are kept by origin.
 */
async function checkLog(db: Database): Promise<void> {
  const start = parseInt(Buffer.from(db.getSync("clog-by-from")!).toString("utf8"), 36);
  const entries = await logEntries(db);
  const stored: string[] = [];
  for await (const key of db.keys({ gt: "heads:", lt: "heads:\uffff" })) stored.push(key.slice("heads:".length));
  expect(entries.map((e) => e.id).sort()).toEqual(stored.sort());
  for (const e of entries) {
    expect(Buffer.from(db.getSync(`clog-of:${e.id}`)!).toString("utf8")).toBe(e.key);
    if (e.seq > start) expect(e.key.startsWith("clog-by:"), e.key).toBe(true);
  }
  const named: string[] = [];
  for await (const key of db.keys({ gt: "clog-of:", lt: "clog-of:\uffff" })) named.push(key.slice("clog-of:".length));
  expect(named.sort()).toEqual(stored);
}

describe("the change log kept by origin", () => {
  it("answers as a read of the whole log does, for random logs, kept by origin from the start or from part way (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ doc: fc.integer({ min: 0, max: 5 }), origin: fc.integer({ min: 0, max: 2 }), remove: fc.boolean() }), { minLength: 1, maxLength: 25 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (steps, upgradeAt) => {
          const dir = tempDir(); dirs.push(dir);
          let s = await openStore(dir.path);
          const cut = upgradeAt === undefined ? -1 : upgradeAt % steps.length;
          for (const [i, { doc, origin, remove }] of steps.entries()) {
            if (i === cut) {
              // A node upgraded here: what it logged so far is in the old layout.
              await s.close();
              await toOldLayout(dir.path);
              s = await openStore(dir.path);
            }
            const id = doc === 5 ? "other/x" : `task/${doc}`;
            if (remove && i % 4 === 3) await s.store.remove(id);
            else await write(s.store, id, ORIGINS[origin]);
          }
          await answersEveryQuestion(s);
          await checkLog(s.db);
          await s.close();
          // All in the old layout, every question is answered by reading the whole log: the same answers.
          await toOldLayout(dir.path);
          s = await openStore(dir.path);
          await answersEveryQuestion(s);
          await s.close();
        },
      ),
      { numRuns: 30 },
    );
  });

  it("a peer's question skips what came from itself without reading it: its documents are left out however many there are", async () => {
    const dir = tempDir(); dirs.push(dir);
    const s = await openStore(dir.path);
    await write(s.store, "task/mine", undefined);
    const mark = s.store.logPosition();
    for (let i = 0; i < 300; i++) await write(s.store, `task/from-a-${i}`, "peer-a");
    await write(s.store, "task/from-b", "peer-b");
    await write(s.store, "task/mine", undefined);
    const reads = countReads(s.db);
    const answer = (await s.store.changedSince(mark.epoch, mark.seq, PREFIXES, "peer-a"))!;
    expect(answer.entries.map((e) => e.id)).toEqual(["task/from-b", "task/mine"]);
    // Two entries of other origins, not the 300 of peer-a's.
    expect(reads.entries()).toBeLessThan(10);
    reads.stop();
    await s.close();
  });

  it("keeps one entry per document, in the layout due, when the writing process is SIGKILLed at any point, upgraded or not", async () => {
    expect(existsSync(built), "run `npm run build` first (npm test does)").toBe(true);
    for (const [round, upgrade] of [[1, false], [2, true], [3, false], [4, true]] as const) {
      const dir = tempDir(); dirs.push(dir);
      if (upgrade) {
        await runWriterThenKill(dir.path, 40);
        await toOldLayout(dir.path);
      }
      // Killed after a varying number of durable writes, other writes in flight.
      await runWriterThenKill(dir.path, 30 * round);
      await runWriterThenKill(dir.path, 7 * round);
      const s = await openStore(dir.path);
      await checkLog(s.db);
      await answersEveryQuestion(s);
      await s.close();
    }
  });
});

/** Run the writing child on `home` until it reports `writes` durable writes, then SIGKILL it. */
function runWriterThenKill(home: string, writes: number): Promise<void> {
  let count = 0;
  return runThenKill(child, [home], (line) => line === "wrote" && ++count >= writes, 30_000);
}
