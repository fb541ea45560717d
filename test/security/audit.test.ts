import { afterEach, beforeEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { AuditLog, generateSigner, segmentDocId, type AuditBody, type Signer } from "../../src/security/index.js";
import { decodeAuditEntry, signAuditEntry } from "../../src/security/audit/entry.js";

const decodeHash = (bytes: Uint8Array): string => decodeAuditEntry(bytes).entry.hash;
import { flipResult, signedChain, tamperSegment, tempLevel } from "./helpers.js";
import { WriteBatcher, type WriteOp } from "../../src/storage/write-batcher.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const body = (i: number, extra: Partial<AuditBody> = {}): AuditBody => ({
  action: i % 2 === 0 ? "task.submit" : "task.read",
  userId: `user-${i % 3}`,
  result: i % 5 === 0 ? "denied" : "allowed",
  resource: `task-${i}`,
  ...extra,
});

describe("audit log", () => {
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let node: Signer;
  beforeEach(async () => {
    level = await tempLevel();
    node = generateSigner();
  });
  afterEach(async () => level.dispose());

  /** Every key under the audit log's sublevel. */
  async function auditKeys(): Promise<string[]> {
    const raw = level.db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" });
    const keys: string[] = [];
    for await (const key of raw.keys()) keys.push(key);
    return keys;
  }

  const openLog = (signer = node, segmentSize = 10) =>
    new AuditLog({ db: level.db, signer, segmentSize, maxBatch: 4 });

  it("chains concurrent appends across segments and verifies them", async () => {
    const log = openLog();
    const entries = await Promise.all(Array.from({ length: 35 }, (_, i) => log.append(body(i))));
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 35 }, (_, i) => i + 1));
    for (let i = 1; i < entries.length; i++) expect(entries[i]?.prev).toBe(entries[i - 1]?.hash);
    const report = await log.verify();
    expect(report).toMatchObject({ ok: true, authors: 1, entries: 35, problems: [] });
    await log.close();

    const reopened = openLog();
    const next = await reopened.append(body(99));
    expect(next.seq).toBe(36);
    expect(next.prev).toBe(entries[34]?.hash);
    expect((await reopened.verify()).entries).toBe(36);
    await reopened.close();
  });

  it("compacts a segment written one entry at a time and keeps appending after reopening", async () => {
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 200 });
    for (let i = 0; i < 150; i++) {
      await log.append(body(i));
      // A reader folds the journal into the segment: one change per entry here.
      await log.exportEntries(node.peerId, i);
    }
    await log.close();
    const keys = await auditKeys();
    const id = segmentDocId(node.peerId, 0);
    expect(keys).toContain(`${id}/snap`);
    expect(keys.filter((k) => k.startsWith(`${id}/chunk/`)).length).toBeLessThan(64);
    expect(keys.filter((k) => k.startsWith("journal/"))).toEqual([]);

    const reopened = new AuditLog({ db: level.db, signer: node, segmentSize: 200 });
    await Promise.all(Array.from({ length: 100 }, (_, i) => reopened.append(body(i))));
    expect(await reopened.verify()).toMatchObject({ ok: true, entries: 250 });
    await reopened.close();
  });

  it("folds entries left in the journal by a crash at the next open", async () => {
    // The first log never folds on its own and is never closed: a process killed right after its appends.
    const crashed = new AuditLog({ db: level.db, signer: node, segmentSize: 50, foldAfterMs: 3_600_000 });
    await Promise.all(Array.from({ length: 120 }, (_, i) => crashed.append(body(i))));
    expect((await auditKeys()).filter((k) => k.startsWith("journal/"))).toHaveLength(120);

    const reopened = new AuditLog({ db: level.db, signer: node, segmentSize: 50 });
    await reopened.append(body(120));
    expect(await reopened.verify()).toMatchObject({ ok: true, entries: 121 });
    expect((await reopened.query({ author: node.peerId })).map((e) => e.seq)).toEqual(Array.from({ length: 121 }, (_, i) => i + 1));
    expect((await auditKeys()).filter((k) => k.startsWith("journal/"))).toEqual([]);
    await reopened.close();
  });

  it("writes through the group commit it is given, in one batch with what else that turn writes", async () => {
    const batcher = new WriteBatcher(level.db);
    const batches: number[] = [];
    const batch = level.db.batch.bind(level.db) as (ops: unknown[]) => Promise<void>;
    (level.db as unknown as { batch: (ops: unknown[]) => Promise<void> }).batch = (ops) => {
      batches.push(ops.length);
      return batch(ops);
    };
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10, maxBatch: 4, write: (ops) => batcher.write(ops as WriteOp[]) });
    // The first append reads the chain's head from storage; from then on it is known.
    await log.append(body(0));
    batches.length = 0;
    // The entry and the head, with another writer's record of the same turn.
    await Promise.all([log.append(body(1)), batcher.write([{ type: "put", key: "task", value: new Uint8Array([1]) }])]);
    expect(batches).toEqual([3]);
    await Promise.all(Array.from({ length: 24 }, (_, i) => log.append(body(i + 2))));
    expect(await log.verify()).toMatchObject({ ok: true, entries: 26 });
    await log.close();
    expect((await auditKeys()).filter((k) => k.startsWith("journal/"))).toEqual([]);
    const reopened = openLog();
    expect((await reopened.query({ author: node.peerId })).map((e) => e.seq)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    await reopened.close();
  });

  it("keeps entries whose fold failed journaled, and a later fold moves them", async () => {
    // The first write that deletes journal entries (a fold) fails, as a full disk would fail it.
    let failFold = true;
    const sublevel = level.db.sublevel.bind(level.db);
    const db = Object.create(level.db, {
      sublevel: {
        value: (...args: Parameters<typeof sublevel>) => {
          const audit = sublevel(...args);
          const batch = audit.batch.bind(audit) as unknown as (ops: Array<{ type: string }>) => Promise<void>;
          return Object.assign(audit, {
            batch: async (ops: Array<{ type: string }>) => {
              if (failFold && ops.some((op) => op.type === "del")) {
                failFold = false;
                throw new Error("disk full");
              }
              return batch(ops);
            },
          });
        },
      },
    }) as typeof level.db;
    const log = new AuditLog({ db, signer: node, segmentSize: 50, foldAfterMs: 3_600_000 });
    await Promise.all(Array.from({ length: 70 }, (_, i) => log.append(body(i))));
    await expect(log.query({ author: node.peerId })).rejects.toThrow("disk full");
    expect((await auditKeys()).filter((k) => k.startsWith("journal/"))).toHaveLength(70);
    await log.append(body(70));
    expect((await log.query({ author: node.peerId })).map((e) => e.seq)).toEqual(Array.from({ length: 71 }, (_, i) => i + 1));
    expect((await auditKeys()).filter((k) => k.startsWith("journal/"))).toEqual([]);
    expect(await log.verify()).toMatchObject({ ok: true, entries: 71 });
    await log.close();
  });

  it("keeps storage and the chain consistent when the database goes away mid-stream", async () => {
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 100, maxBatch: 20 });
    const outcomes = Array.from({ length: 600 }, (_, i) => log.append(body(i)).then(() => true, () => false));
    await outcomes[0];
    await level.db.close();
    const results = await Promise.all(outcomes);
    const written = results.filter(Boolean).length;
    expect(results.slice(0, written).every(Boolean)).toBe(true);
    expect(written).toBeLessThan(600);
    await log.close();

    await level.db.open();
    const reopened = new AuditLog({ db: level.db, signer: node, segmentSize: 100 });
    expect(await reopened.verify()).toMatchObject({ ok: true, entries: written });
    expect((await reopened.append(body(1))).seq).toBe(written + 1);
    expect((await reopened.verify()).ok).toBe(true);
    await reopened.close();
  });

  it("queries by user, action, result and time", async () => {
    let clock = 1_000;
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10, now: () => clock });
    for (let i = 0; i < 20; i++) {
      clock = 1_000 + i * 100;
      await log.append(body(i));
    }
    expect((await log.query({ userId: "user-1" })).map((e) => e.body.resource)).toEqual(["task-1", "task-4", "task-7", "task-10", "task-13", "task-16", "task-19"]);
    expect((await log.query({ action: "task.submit", result: "denied" })).map((e) => e.seq)).toEqual([1, 11]);
    expect((await log.query({ startDate: new Date(1_500), endDate: new Date(1_700) })).map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(await log.query({ limit: 2 })).toHaveLength(2);
    await log.close();
  });

  describe("tampering directly in LevelDB", () => {
    async function writeLog(): Promise<void> {
      const log = openLog();
      for (let i = 0; i < 25; i++) await log.append(body(i));
      await log.close();
    }
    const verifyFresh = async () => {
      const log = openLog();
      const report = await log.verify();
      await log.close();
      return report;
    };

    it("names an edited entry", async () => {
      await writeLog();
      // Turn a denial into an approval, keeping the original signature: a quiet edit.
      await tamperSegment(level.db, node.peerId, 1, (d) => flipResult(d, 5, 16, "allowed"));
      const report = await verifyFresh();
      expect(report.ok).toBe(false);
      expect(report.problems[0]).toMatchObject({ author: node.peerId, kind: "edited", seq: 16, segment: 1, index: 5 });
      expect(report.problems[0]?.reason).toMatch(/^hash mismatch/);
    });

    it("names an edit that also rewrote the stored hash as a forgery", async () => {
      await writeLog();
      const impostor: Signer = { ...generateSigner(), peerId: node.peerId };
      await tamperSegment(level.db, node.peerId, 1, (d) => {
        const prev = d.hashes[1] === undefined ? null : Buffer.from(d.hashes[1]).toString("hex");
        const fake = signAuditEntry(impostor, 13, prev, 0, body(12, { result: "allowed" }));
        d.entries[2] = fake.bytes;
        d.hashes[2] = Buffer.from(fake.entry.hash, "hex");
      });
      const report = await verifyFresh();
      expect(report.problems[0]).toMatchObject({ kind: "forged", seq: 13, segment: 1, index: 2 });
    });

    it("names a removed entry", async () => {
      await writeLog();
      await tamperSegment(level.db, node.peerId, 0, (d) => {
        d.entries.splice(4, 1);
        d.hashes.splice(4, 1);
      });
      const report = await verifyFresh();
      expect(report.problems[0]).toMatchObject({ kind: "removed", seq: 6, segment: 0, index: 4 });
      expect(report.problems[0]?.reason).toContain("seq 5 missing");
    });

    it("names a truncated tail", async () => {
      await writeLog();
      await tamperSegment(level.db, node.peerId, 2, (d) => {
        d.entries.splice(3);
        d.hashes.splice(3);
      });
      const report = await verifyFresh();
      expect(report.problems[0]).toMatchObject({ kind: "removed", seq: 24 });
    });

    it("names reordered entries", async () => {
      await writeLog();
      await tamperSegment(level.db, node.peerId, 0, (d) => {
        const e6 = d.entries[6] as Uint8Array;
        const h6 = d.hashes[6] as Uint8Array;
        d.entries.splice(6, 1);
        d.hashes.splice(6, 1);
        d.entries.splice(7, 0, e6);
        d.hashes.splice(7, 0, h6);
      });
      const report = await verifyFresh();
      expect(report.problems[0]).toMatchObject({ kind: "reordered", seq: 8, segment: 0, index: 6 });
    });
  });

  it("names a fork that arrived by merging two replicas of a segment, and keeps both entries", async () => {
    const log = openLog();
    const written = [];
    for (let i = 0; i < 5; i++) written.push(await log.append(body(i)));
    await log.close();
    // The author signed a second seq 4 (say, after restoring an old backup); a replica merged it in.
    const other = signAuditEntry(node, 4, written[2]?.hash ?? null, 0, body(40, { reason: "restored from backup" }));
    await tamperSegment(level.db, node.peerId, 0, (d) => {
      d.entries.push(other.bytes);
      d.hashes.push(Buffer.from(other.entry.hash, "hex"));
    });
    const reopened = openLog();
    const report = await reopened.verify();
    expect(report.problems).toEqual([expect.objectContaining({ kind: "forked", seq: 4, segment: 0, index: 5 })]);
    expect(report.forks).toEqual([{ author: node.peerId, seq: 4, hashes: [written[3]?.hash, other.entry.hash] }]);
    expect(await reopened.query({ userId: "user-1" })).toHaveLength(3);
    await reopened.close();
  });

  it("ingests another node's log, keeps fork evidence and refuses forgeries", async () => {
    const other = generateSigner();
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    const chain = signedChain(() => other, 15, (seq) => body(seq));
    // Out of order and repeated, as replication delivers them.
    const first = await log.ingest([...chain.slice(5, 15), ...chain.slice(0, 5), chain[2] as Uint8Array]);
    expect(first).toMatchObject({ appended: 15, duplicates: 1, forks: 0, rejected: [], gaps: [] });

    const equivocation = signAuditEntry(other, 7, null, 5, body(7, { reason: "other branch" }));
    const forgery = signAuditEntry({ ...generateSigner(), peerId: other.peerId }, 16, decodeHash(chain[14]!), 5, body(16));
    const second = await log.ingest([equivocation.bytes, forgery.bytes]);
    expect(second.forks).toBe(1);
    expect(second.rejected).toEqual([{ reason: `forged: bad signature on ${other.peerId}#16` }]);

    const report = await log.verify();
    expect(report.problems).toEqual([expect.objectContaining({ author: other.peerId, kind: "forked", seq: 7 })]);
    expect(report.forks).toEqual([{ author: other.peerId, seq: 7, hashes: [expect.any(String), equivocation.entry.hash] }]);
    expect((await log.exportEntries(other.peerId, 12)).map(hex)).toEqual(chain.slice(12).map(hex));
    await log.close();
  });

  it("exports a page of entries after a seq, across segment boundaries", async () => {
    const log = openLog();
    const written = await Promise.all(Array.from({ length: 25 }, (_, i) => log.append(body(i))));
    const seqs = async (after: number, limit?: number) => {
      const page = await log.exportEntries(node.peerId, after, limit);
      return page.map((bytes) => written.findIndex((e) => e.hash === decodeHash(bytes)) + 1);
    };
    expect(await seqs(5, 7)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    expect(await seqs(20, 100)).toEqual([21, 22, 23, 24, 25]);
    expect(await seqs(9, 1)).toEqual([10]);
    expect(await seqs(0, 0)).toEqual([]);
    expect(await seqs(25)).toEqual([]);
    await log.close();
  });

  describe("a run authenticated by its newest entry", () => {
    /** A chain by `other` where entries at `forgedAt` (1-based seqs) carry a signature by another key. */
    function chainWithForgeries(other: Signer, length: number, forgedAt: number[]): Uint8Array[] {
      const impostor = { ...generateSigner(), peerId: other.peerId };
      return signedChain((seq) => (forgedAt.includes(seq) ? impostor : other), length, (seq) => body(seq));
    }
    const ingestInto = async (chain: Uint8Array[], maxBatch = 500) => {
      const log = new AuditLog({ db: level.db, signer: node, segmentSize: 100, maxBatch });
      const report = await log.ingest(chain);
      return { log, report };
    };

    it("keeps the authentic prefix when the newest entry is forged, then takes the genuine one", async () => {
      const other = generateSigner();
      const forged = chainWithForgeries(other, 6, [6]);
      const genuine = signAuditEntry(other, 6, decodeHash(forged[4]!), 2_000, body(6));
      const { log, report } = await ingestInto([...forged, genuine.bytes]);
      expect(report).toMatchObject({ appended: 6, rejected: [{ reason: `forged: bad signature on ${other.peerId}#6` }], gaps: [], forks: 0 });
      expect((await log.exportEntries(other.peerId)).map(hex)).toEqual([...forged.slice(0, 5), genuine.bytes].map(hex));
      expect(await log.verify()).toMatchObject({ ok: true });
      await log.close();
    });

    it("stops at the first forged entry of a run whose newest entry is forged too, naming the gap", async () => {
      const other = generateSigner();
      const chain = chainWithForgeries(other, 8, [3, 8]);
      const { log, report } = await ingestInto(chain);
      expect(report).toMatchObject({ appended: 2, rejected: [{ reason: `forged: bad signature on ${other.peerId}#3` }], gaps: [{ author: other.peerId, missingFrom: 3 }] });
      expect(await log.exportEntries(other.peerId)).toHaveLength(2);
      await log.close();
    });

    it("checks each batch by its own newest entry", async () => {
      const other = generateSigner();
      // With batches of 4, entries 1-4 are vouched for by #4 and 5-8 by #8, which is forged; #9 then links to nothing held.
      const chain = chainWithForgeries(other, 10, [8]);
      const { log, report } = await ingestInto(chain, 4);
      expect(report).toMatchObject({ appended: 7, rejected: [{ reason: `forged: bad signature on ${other.peerId}#8` }], gaps: [{ author: other.peerId, missingFrom: 8 }] });
      await log.close();
    });

    it("accepts a forged entry that a later authentic entry vouches for, and verify still names it", async () => {
      const other = generateSigner();
      const chain = chainWithForgeries(other, 5, [3]);
      const { log, report } = await ingestInto(chain);
      expect(report).toMatchObject({ appended: 5, rejected: [] });
      const verified = await log.verify();
      expect(verified.problems).toEqual([expect.objectContaining({ author: other.peerId, kind: "forged", seq: 3 })]);
      await log.close();
    });
  });

  it("names a whole chain by an author whose key nobody knows as forged", async () => {
    const mallory: Signer = { ...generateSigner(), peerId: "mallory" };
    const theirs = new AuditLog({ db: level.db, signer: mallory, segmentSize: 10 });
    await theirs.append(body(1));
    await theirs.close();
    const mine = openLog();
    await mine.append(body(2));
    const report = await mine.verify();
    expect(report.authors).toBe(2);
    expect(report.problems).toEqual([expect.objectContaining({ author: "mallory", kind: "forged", seq: 1, reason: "unknown author key for mallory" })]);
    await expect(mine.ingest([(await mine.exportEntries("mallory"))[0] as Uint8Array])).resolves.toMatchObject({ rejected: [{ reason: "forged: unknown author key mallory" }] });
    await mine.close();
    await expect(mine.append(body(3))).rejects.toThrow("audit log is closed");
  });

  it("reports a gap instead of storing entries past it", async () => {
    const other = generateSigner();
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    const one = signAuditEntry(other, 1, null, 1, body(1));
    const three = signAuditEntry(other, 3, "00".repeat(32), 3, body(3));
    expect(await log.ingest([one.bytes, three.bytes])).toMatchObject({ appended: 1, gaps: [{ author: other.peerId, missingFrom: 2 }] });
    await log.close();
  });

  it("property: any single edit, removal or swap of stored entries is named with the right kind and seq", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 4, max: 30 }),
        fc.integer({ min: 3, max: 8 }),
        fc.constantFrom("edit" as const, "remove" as const, "swap" as const),
        fc.nat(),
        async (count, segmentSize, op, pick) => {
          const scratch = await tempLevel();
          try {
            const log = new AuditLog({ db: scratch.db, signer: node, segmentSize });
            for (let i = 0; i < count; i++) await log.append(body(i));
            await log.close();
            // Swaps stay inside one segment, so the victim needs a successor in its segment.
            const candidates = Array.from({ length: count }, (_, i) => i).filter((i) => op !== "swap" || (i + 1 < count && Math.floor(i / segmentSize) === Math.floor((i + 1) / segmentSize)));
            const victim = candidates[pick % candidates.length] as number;
            const segment = Math.floor(victim / segmentSize);
            const index = victim % segmentSize;
            await tamperSegment(scratch.db, node.peerId, segment, (d) => {
              if (op === "edit") {
                const stored = Buffer.from(d.entries[index] as Uint8Array);
                stored[stored.length - 70] = (stored[stored.length - 70] ?? 0) ^ 1;
                d.entries[index] = new Uint8Array(stored);
              } else if (op === "remove") {
                d.entries.splice(index, 1);
                d.hashes.splice(index, 1);
              } else {
                const [e, h] = [d.entries[index] as Uint8Array, d.hashes[index] as Uint8Array];
                d.entries.splice(index, 1);
                d.hashes.splice(index, 1);
                d.entries.splice(index + 1, 0, e);
                d.hashes.splice(index + 1, 0, h);
              }
            });
            const check = new AuditLog({ db: scratch.db, signer: node, segmentSize });
            const [problem, ...rest] = (await check.verify()).problems;
            await check.close();
            expect(rest).toEqual([]);
            if (op === "edit") expect(problem).toMatchObject({ kind: "edited", segment, index });
            else if (op === "swap") expect(problem).toMatchObject({ kind: "reordered", seq: victim + 2, segment, index });
            else if (victim === count - 1) expect(problem).toMatchObject({ kind: "removed", seq: count });
            else expect(problem).toMatchObject({ kind: "removed", seq: victim + 2 });
          } finally {
            await scratch.dispose();
          }
        },
      ),
      { numRuns: 20 },
    );
  });

  it("property: any interleaving of appends verifies, and every entry is found by query", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { minLength: 1, maxLength: 40 }), fc.integer({ min: 2, max: 7 }), async (ops, segmentSize) => {
        const scratch = await tempLevel();
        try {
          const log = new AuditLog({ db: scratch.db, signer: node, segmentSize, maxBatch: 3 });
          const waves: Array<Promise<unknown>> = [];
          for (const [i, wait] of ops) {
            const p = log.append(body(i));
            waves.push(p);
            if (wait) await p;
          }
          await Promise.all(waves);
          const report = await log.verify();
          expect(report).toMatchObject({ ok: true, entries: ops.length });
          expect(await log.query()).toHaveLength(ops.length);
          await log.close();
        } finally {
          await scratch.dispose();
        }
      }),
      { numRuns: 15 },
    );
  });
});
