import { afterEach, describe, expect, it } from "vitest";
import { startAuditReplicator, type AuditReplicator } from "../../node/audit/audit-replicator.js";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { AUDIT_PAGE } from "../../protocols/audit/messages.js";
import type { ReplicatedLog } from "../../protocols/audit/replication.js";
import { AuditLog, generateSigner } from "../../src/security/index.js";
import { tempLevel } from "../security/helpers.js";
import { connect, connectAll, eventually, startNodes, stopAll } from "./helpers.js";

let nodes: MeshLibp2p[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll(nodes);
  nodes = [];
});

/**
 * A replicator on each node, with no polling rounds: node i's members are
 * those `linked(i, j)` allows (and only those may connect), so a chain must be
 * relayed to reach a node that is not linked to its author. Every heads read
 * of the logs is counted (a served heads request, or growth to tell of).
 */
async function startLogs(count: number, linked: (i: number, j: number) => boolean): Promise<{ logs: AuditLog[]; headsAsked: () => number; exported: () => number }> {
  const ids: string[] = [];
  nodes = await startNodes(count, { admit: (i) => (peer) => ids.indexOf(peer) === -1 || linked(i, ids.indexOf(peer)) });
  ids.push(...nodes.map((n) => n.peerId.toString()));
  const logs: AuditLog[] = [];
  let asked = 0;
  let exported = 0;
  for (const [i, node] of nodes.entries()) {
    const level = await tempLevel();
    const log = new AuditLog({ db: level.db, signer: generateSigner(), segmentSize: 1000 });
    const served: ReplicatedLog = {
      heads: () => {
        asked++;
        return log.heads();
      },
      exportEntries: async (author, after, limit) => {
        const page = await log.exportEntries(author, after, limit);
        exported += page.length;
        return page;
      },
      ingest: (entries) => log.ingest(entries),
      onGrow: (listener) => log.onGrow(listener),
    };
    const members = (): string[] => nodes.filter((other, j) => j !== i && linked(i, j) && node.getConnections(other.peerId).length > 0).map((n) => n.peerId.toString());
    const replicator = await startAuditReplicator({ libp2p: node, audit: served, isMember: (peer) => ids.indexOf(peer) !== -1 && linked(i, ids.indexOf(peer)), members, tipDelayMs: 20 });
    cleanups.push(async () => {
      await replicator.stop();
      await log.close();
      await level.dispose();
    });
    logs.push(log);
  }
  return { logs, headsAsked: () => asked, exported: () => exported };
}

describe("audit replicator", () => {
  it("pushes what grows: entries reach every node of a line with no polling, relayed hop by hop", async () => {
    const { logs } = await startLogs(4, (i, j) => Math.abs(i - j) === 1);
    for (let i = 0; i < 3; i++) await connect(nodes[i]!, nodes[i + 1]!);
    await Promise.all(logs.map((log, i) => log.append({ action: "task.submit", userId: `u-${i}`, result: "allowed", resource: `task-${i}` })));
    const complete = async (): Promise<boolean> => (await Promise.all(logs.map(async (log) => (await log.heads()).size))).every((size) => size === 4);
    await eventually(complete, 10_000, "every chain on every node");
    await logs[0]!.append({ action: "task.cancel", userId: "u-0", result: "allowed", resource: "task-0" });
    await eventually(async () => (await logs[3]!.heads()).get(logs[0]!.author)?.seq === 2, 10_000, "the newest entry at the far end");
    for (const log of logs) expect(await log.verify()).toMatchObject({ ok: true, authors: 4 });
  });

  it("takes each chain once when it joins, though every member it reaches holds all of them", async () => {
    const n = 6;
    let joined = false;
    // Node 0 joins late; the others already hold every chain.
    const { logs, exported } = await startLogs(n, (i, j) => joined || (i !== 0 && j !== 0));
    for (let i = 1; i < n; i++) for (let j = i + 1; j < n; j++) await connect(nodes[i]!, nodes[j]!);
    const perChain = 200;
    for (const log of logs.slice(1)) await Promise.all(Array.from({ length: perChain }, (_, k) => log.append({ action: "task.submit", userId: "u", result: "allowed", resource: `task-${k}` })));
    const holdsAll = async (log: AuditLog): Promise<boolean> => {
      const heads = await log.heads();
      return logs.slice(1).every((other) => heads.get(other.author)?.seq === perChain);
    };
    for (const log of logs.slice(1)) await eventually(() => holdsAll(log), 15_000, "every chain on every member");
    const before = exported();
    joined = true;
    for (let j = 1; j < n; j++) await connect(nodes[0]!, nodes[j]!);
    await eventually(() => holdsAll(logs[0]!), 15_000, "every chain on the joiner");
    // A pull that waits for another under way asks afterwards only for what is still missing: nothing.
    expect(exported() - before).toBeLessThanOrEqual(1.25 * (n - 1) * perChain);
  });

  it("is quiet while nothing changes, and reconciles on reconnect what grew while apart", async () => {
    let apart = false;
    const { logs, headsAsked } = await startLogs(2, () => !apart);
    const [a, b] = logs as [AuditLog, AuditLog];
    await a.append({ action: "task.submit", userId: "u", result: "allowed", resource: "task-1" });
    await connect(nodes[0]!, nodes[1]!);
    await eventually(async () => (await b.heads()).get(a.author)?.seq === 1, 10_000, "the first entry");
    await new Promise((r) => setTimeout(r, 500));
    // Longer than the 5 s rounds that asked every member for every head.
    const before = headsAsked();
    await new Promise((r) => setTimeout(r, 6_000));
    expect(headsAsked()).toBe(before);

    apart = true;
    await nodes[0]!.hangUp(nodes[1]!.peerId);
    await eventually(() => nodes[1]!.getConnections(nodes[0]!.peerId).length === 0, 5_000, "the hang-up");
    await a.append({ action: "task.cancel", userId: "u", result: "allowed", resource: "task-1" });
    await new Promise((r) => setTimeout(r, 200));
    expect((await b.heads()).get(a.author)?.seq).toBe(1);
    apart = false;
    await connect(nodes[1]!, nodes[0]!);
    await eventually(async () => (await b.heads()).get(a.author)?.seq === 2, 10_000, "the entry made while apart");
  }, 20_000);

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
