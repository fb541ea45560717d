import { afterEach, describe, expect, it } from "vitest";
import { AUDIT_PAGE, createAuditCodec, type AuditMessage } from "../../../protocols/audit/messages.js";
import { AuditRefusedError, auditRequestShape, pullAuditLog, serveAuditLog, type ReplicatedLog } from "../../../protocols/audit/replication.js";
import { memoryChannelPair, RequestChannel } from "../../../protocols/framing/index.js";
import { AuditLog, generateSigner, type AuditBody, type Signer } from "../../../src/security/index.js";
import { flipResult, tamperSegment, tempLevel } from "../../security/helpers.js";

const SEGMENT = 10;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const denial = (i: number): AuditBody => ({ action: "task.submit", userId: `u-${i % 3}`, result: "denied", resource: `task-${i}` });

/** A node's audit log on its own temp LevelDB home. */
async function node(segmentSize = SEGMENT) {
  const level = await tempLevel();
  const signer: Signer = generateSigner();
  let log = new AuditLog({ db: level.db, signer, segmentSize });
  cleanups.push(async () => {
    await log.close();
    await level.dispose();
  });
  return {
    get log() {
      return log;
    },
    /** Edit a stored segment of `author`'s chain behind the log's back (closed meanwhile, so nothing of it stays in memory). */
    async tamper(author: string, segment: number, edit: Parameters<typeof tamperSegment>[3]) {
      await log.close();
      await tamperSegment(level.db, author, segment, edit);
      log = new AuditLog({ db: level.db, signer, segmentSize });
    },
  };
}

/** Requests to `server` over an in-memory pair that encodes every message as the wire does. */
function link(server: ReplicatedLog): RequestChannel<AuditMessage> {
  const [near, far] = memoryChannelPair<AuditMessage>({ codec: createAuditCodec(), peers: ["client", "server"] });
  const serving = serveAuditLog(far, server);
  const requests = new RequestChannel(near, auditRequestShape, { timeoutMs: 10_000 });
  cleanups.push(async () => {
    await requests.close();
    await serving;
  });
  return requests;
}

const hex = (entries: Uint8Array[]): string[] => entries.map((e) => Buffer.from(e).toString("hex"));

describe("audit replication", () => {
  it("catches up on a chain longer than a page in pages, and a second pull adds nothing", async () => {
    const [a, b] = [await node(1000), await node(1000)];
    const total = 2 * AUDIT_PAGE + 17;
    await Promise.all(Array.from({ length: total }, (_, i) => a.log.append(denial(i))));
    const pages: number[] = [];
    const served: ReplicatedLog = {
      heads: () => a.log.heads(),
      exportEntries: async (author, after, limit) => {
        const page = await a.log.exportEntries(author, after, limit);
        pages.push(page.length);
        return page;
      },
      ingest: (entries) => a.log.ingest(entries),
    };
    const requests = link(served);

    expect(await pullAuditLog(requests, b.log)).toEqual({ appended: total, behind: [] });
    expect(pages).toEqual([AUDIT_PAGE, AUDIT_PAGE, 17]);
    expect(hex(await b.log.exportEntries(a.log.author))).toEqual(hex(await a.log.exportEntries(a.log.author)));
    expect(await b.log.verify()).toMatchObject({ ok: true, authors: 1, entries: total });

    expect(await pullAuditLog(requests, b.log)).toEqual({ appended: 0, behind: [] });
    expect(pages).toHaveLength(3);
  });

  it("carries a chain through a relay to a node that never spoke to its author", async () => {
    const [a, relay, b] = [await node(), await node(), await node()];
    for (let i = 0; i < 25; i++) await a.log.append(denial(i));
    for (let i = 0; i < 4; i++) await relay.log.append(denial(i));
    await b.log.append(denial(0));

    expect(await pullAuditLog(link(a.log), relay.log)).toEqual({ appended: 25, behind: [] });
    expect(await pullAuditLog(link(relay.log), b.log)).toEqual({ appended: 29, behind: [] });
    expect(hex(await b.log.exportEntries(a.log.author))).toEqual(hex(await a.log.exportEntries(a.log.author)));
    expect(await b.log.verify()).toMatchObject({ ok: true, authors: 3, entries: 30 });
  });

  it("refuses an entry a relay edited, keeping the authentic entries before it", async () => {
    const [a, relay, b] = [await node(), await node(), await node()];
    for (let i = 0; i < 15; i++) await a.log.append(denial(i));
    await pullAuditLog(link(a.log), relay.log);
    // The relay turns a denial in its copy of a's chain into an approval, keeping a's signature.
    await relay.tamper(a.log.author, 0, (d) => flipResult(d, 6, 7, "allowed"));

    const report = await pullAuditLog(link(relay.log), b.log);
    expect(report.behind).toEqual([a.log.author]);
    expect(hex(await b.log.exportEntries(a.log.author))).toEqual(hex((await a.log.exportEntries(a.log.author)).slice(0, 6)));
    expect(await b.log.query({ result: "allowed" })).toEqual([]);
    expect(await b.log.verify()).toMatchObject({ ok: true, entries: 6 });

    // The honest author still brings b the rest.
    expect(await pullAuditLog(link(a.log), b.log)).toEqual({ appended: 9, behind: [] });
  });

  it("stops pulling a chain at a gap and still pulls the others", async () => {
    const [a, relay, b] = [await node(), await node(), await node()];
    for (let i = 0; i < 25; i++) await a.log.append(denial(i));
    for (let i = 0; i < 3; i++) await relay.log.append(denial(i));
    await pullAuditLog(link(a.log), relay.log);
    // The relay's copy of a's chain loses its first entries: what it serves begins past b's head.
    await relay.tamper(a.log.author, 0, (d) => void d.entries.splice(0, 4));
    const ingested: number[] = [];
    const counting: ReplicatedLog = {
      heads: () => b.log.heads(),
      exportEntries: (author, after, limit) => b.log.exportEntries(author, after, limit),
      ingest: async (entries) => {
        ingested.push(entries.length);
        return b.log.ingest(entries);
      },
    };

    const report = await pullAuditLog(link(relay.log), counting);
    expect(report).toEqual({ appended: 3, behind: [a.log.author] });
    // One page of a's chain was tried and added nothing; the pull asked for no more of it.
    expect([...ingested].sort((x, y) => x - y)).toEqual([3, 21]);
    expect(await b.log.exportEntries(a.log.author)).toEqual([]);
    expect(hex(await b.log.exportEntries(relay.log.author))).toEqual(hex(await relay.log.exportEntries(relay.log.author)));
  });

  it("answers what is not a request with a refusal the asker reads as one", async () => {
    const a = await node();
    const requests = link(a.log);
    await expect(requests.request((rid) => ({ t: "entries", rid, entries: [] }))).rejects.toBeInstanceOf(AuditRefusedError);
    await expect(requests.request((rid) => ({ t: "heads-ans", rid, heads: [] }))).rejects.toThrow("unexpected heads-ans");
    // The channel stays open for real requests.
    expect(await requests.request((rid) => ({ t: "heads", rid }))).toMatchObject({ t: "heads-ans", heads: [] });
  });
});
