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
 * Make the database what a node wrote before the log was indexed by origin:
 * the log alone. Reopened, the store indexes only what comes after.
 */
async function unindex(path: string): Promise<void> {
  const db = await openDatabase(path);
  const keys: string[] = [];
  for await (const key of db.keys({ gte: "clog-by", lt: "clog-by\uffff" })) keys.push(key);
  await db.batch(keys.map((key) => ({ type: "del" as const, key })));
  await db.close();
}

/** The log's entries, read whole: what every answer is checked against. */
async function logEntries(db: Database): Promise<Array<{ seq: number; id: string; from: string | undefined }>> {
  const out: Array<{ seq: number; id: string; from: string | undefined }> = [];
  for await (const [key, value] of db.iterator({ gt: "clog:", lt: "clog:\uffff" })) {
    const [id, from] = Buffer.from(value).toString("utf8").split(SEP);
    out.push({ seq: parseInt(key.slice("clog:".length), 36), id: id!, from });
  }
  return out;
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

/** The index holds exactly the log's entries past where it starts, each under its origin, and nothing else. */
async function checkIndex(db: Database): Promise<void> {
  const start = parseInt(Buffer.from(db.getSync("clog-by-from")!).toString("utf8"), 36);
  const indexed = new Map<number, string>();
  for await (const [key, value] of db.iterator({ gt: "clog-by:", lt: "clog-by:\uffff" })) {
    const [origin, seq] = key.slice("clog-by:".length).split(SEP);
    indexed.set(parseInt(seq!, 36), `${origin} ${Buffer.from(value).toString("utf8")}`);
  }
  const logged = new Map((await logEntries(db)).filter((e) => e.seq > start).map((e) => [e.seq, `${e.from ?? ""} ${e.id}`]));
  expect(new Map([...indexed].sort((a, b) => a[0] - b[0]))).toEqual(logged);
}

describe("the change log's index by origin", () => {
  it("answers as a read of the whole log does, for random logs, fresh or indexed part way (property)", async () => {
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
              // A node upgraded here: what it logged so far was never indexed.
              await s.close();
              await unindex(dir.path);
              s = await openStore(dir.path);
            }
            const id = doc === 5 ? "other/x" : `task/${doc}`;
            if (remove && i % 4 === 3) await s.store.remove(id);
            else await write(s.store, id, ORIGINS[origin]);
          }
          await answersEveryQuestion(s);
          await checkIndex(s.db);
          await s.close();
          // Without the index every question is answered by reading the log: the same answers.
          await unindex(dir.path);
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

  it("stays the log's exact index when the writing process is SIGKILLed at any point, upgraded or not", async () => {
    expect(existsSync(built), "run `npm run build` first (npm test does)").toBe(true);
    for (const [round, upgrade] of [[1, false], [2, true], [3, false], [4, true]] as const) {
      const dir = tempDir(); dirs.push(dir);
      if (upgrade) {
        await runWriterThenKill(dir.path, 40);
        await unindex(dir.path);
      }
      // Killed after a varying number of durable writes, other writes in flight.
      await runWriterThenKill(dir.path, 30 * round);
      await runWriterThenKill(dir.path, 7 * round);
      const s = await openStore(dir.path);
      await checkIndex(s.db);
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
