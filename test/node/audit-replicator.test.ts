import { afterEach, describe, expect, it } from "vitest";
import { startAuditReplicator, type AuditReplicator } from "../../node/audit/audit-replicator.js";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { AUDIT_PAGE } from "../../protocols/audit/messages.js";
import { AuditLog, generateSigner } from "../../src/security/index.js";
import { tempLevel } from "../security/helpers.js";
import { connectAll, startNodes, stopAll } from "./helpers.js";

let nodes: MeshLibp2p[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll(nodes);
  nodes = [];
});

describe("audit replicator", () => {
  it("pulls a chain longer than a page, page by page, and the copy verifies", async () => {
    nodes = await startNodes(2);
    await connectAll(nodes);
    const logs: AuditLog[] = [];
    const replicators: AuditReplicator[] = [];
    for (const [i, node] of nodes.entries()) {
      const level = await tempLevel();
      const log = new AuditLog({ db: level.db, signer: generateSigner(), segmentSize: 1000 });
      const other = nodes[1 - i]!.peerId.toString();
      const replicator = await startAuditReplicator({ libp2p: node, audit: log, isMember: () => true, members: () => [other], intervalMs: 3_600_000 });
      cleanups.push(async () => {
        await replicator.stop();
        await log.close();
        await level.dispose();
      });
      logs.push(log);
      replicators.push(replicator);
    }
    const [a, b] = logs as [AuditLog, AuditLog];
    const total = 2 * AUDIT_PAGE + 200;
    await Promise.all(Array.from({ length: total }, (_, i) => a.append({ action: "task.submit", userId: `u-${i % 7}`, result: "allowed", resource: `task-${i}` })));

    await replicators[1]!.syncNow();
    const copied = await b.exportEntries(a.author);
    expect(copied).toHaveLength(total);
    expect(copied.map((e) => Buffer.from(e).toString("hex"))).toEqual((await a.exportEntries(a.author)).map((e) => Buffer.from(e).toString("hex")));
    expect(await b.verify()).toMatchObject({ ok: true, authors: 1, entries: total });
    // Nothing new: a second round pulls nothing and changes nothing.
    await replicators[1]!.syncNow();
    expect(await b.exportEntries(a.author)).toHaveLength(total);
  });
});
