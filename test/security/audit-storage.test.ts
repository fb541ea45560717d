import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog, generateSigner, segmentDocId, type AuditBody, type Signer } from "../../src/security/index.js";
import { flipResult, signedChain, tamperSegment, tempLevel } from "./helpers.js";

const body = (i: number): AuditBody => ({ action: "task.submit", userId: `user-${i}`, result: i % 2 === 0 ? "denied" : "allowed", resource: `task-${i}` });

describe("audit verify checks what storage holds, whatever is missing or garbage", () => {
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let node: Signer;
  let other: Signer;
  beforeEach(async () => {
    level = await tempLevel();
    node = generateSigner();
    other = generateSigner();
  });
  afterEach(async () => level.dispose());

  const raw = () => level.db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" });

  /** This node's chain of 5 entries and a replicated chain of 15 by `other`, in segments of 10. */
  async function writeChains(): Promise<void> {
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    for (let i = 0; i < 5; i++) await log.append(body(i));
    const chain = signedChain(() => other, 15, body);
    expect(await log.ingest(chain)).toMatchObject({ appended: 15, rejected: [] });
    await log.close();
  }

  async function verifyFresh() {
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    try {
      return await log.verify();
    } finally {
      await log.close();
    }
  }

  it("lists in its heads a chain that came after the first time they were asked (they are kept, not read from storage each time)", async () => {
    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    try {
      expect([...(await log.heads()).keys()]).toEqual([]);
      await log.append(body(0));
      expect(await log.ingest(signedChain(() => other, 3, body))).toMatchObject({ appended: 3, rejected: [] });
      const heads = await log.heads();
      expect([...heads.keys()].sort()).toEqual([node.peerId, other.peerId].sort());
      expect(heads.get(other.peerId)?.seq).toBe(3);
      expect(heads.get(node.peerId)?.seq).toBe(1);
    } finally {
      await log.close();
    }
  });

  it("verifies a replicated chain whose head record was deleted from its segments, naming an edited entry", async () => {
    await writeChains();
    await tamperSegment(level.db, other.peerId, 1, (d) => flipResult(d, 2, 13, "denied"));
    await raw().del(`head/${encodeURIComponent(other.peerId)}`);
    const report = await verifyFresh();
    expect(report.ok).toBe(false);
    expect(report.authors).toBe(2);
    expect(report.problems).toEqual([expect.objectContaining({ author: other.peerId, kind: "edited", seq: 13, segment: 1, index: 2 })]);
  });

  it("counts an intact chain without a head record, derived from its segments", async () => {
    await writeChains();
    await raw().del(`head/${encodeURIComponent(other.peerId)}`);
    const report = await verifyFresh();
    expect(report).toMatchObject({ ok: true, authors: 2, entries: 20, problems: [] });
  });

  it("reports a garbage segment as a corrupt finding naming chain and segment, and verifies the other chains", async () => {
    await writeChains();
    const id = segmentDocId(other.peerId, 0);
    const db = raw();
    for await (const key of db.keys({ gte: `${id}/`, lt: `${id}0` })) await db.del(key);
    await db.put(`${id}/snap`, new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 5, 6, 7, 8]));
    const report = await verifyFresh();
    expect(report.ok).toBe(false);
    expect(report.authors).toBe(2);
    expect(report.entries).toBeGreaterThanOrEqual(5);
    expect(report.problems).toEqual([expect.objectContaining({ author: other.peerId, kind: "corrupt", segment: 0 })]);
    expect(report.problems[0]?.reason).toMatch(new RegExp(`audit segment 0 of chain ${other.peerId} is corrupt`));

    const log = new AuditLog({ db: level.db, signer: node, segmentSize: 10 });
    try {
      await expect(log.query({ author: other.peerId })).rejects.toThrow(new RegExp(`audit segment 0 of chain ${other.peerId} is corrupt`));
    } finally {
      await log.close();
    }
  });
});
