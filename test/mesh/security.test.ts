import { afterEach, describe, expect, it } from "vitest";
import { hasCode } from "../../src/contract/errors.js";
import { TaskClient } from "../../node/tasks/task-client.js";
import { eventually, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("security where work runs", () => {
  it("the executing node re-checks each signed submission from its own grants and policies, and audits the decision", async () => {
    const mesh = await startNodes(3);
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await a.createMesh("secure");
    for (const [n, level] of [[b, "trusted"], [c, "verified"]] as const) {
      const { invite } = await a.pairing.invite(level, 60_000);
      await n.pairing.join(invite);
    }
    for (const x of mesh.nodes) for (const y of mesh.nodes) if (x !== y) await x.dial(y.multiaddrs()[0]!).catch(() => undefined);
    await eventually(async () => a.security.current.grants.statements().length >= 2, 10_000, "grants in force on A");

    // B (trusted: developer) may have A run an ordinary agent.
    const ok = await b.adapter.submitTask({ description: "fine", input: "x", agentId: "echo" }, { route: a.peerId });
    expect(ok.placement?.runsOn).toBe(a.peerId);

    // C (verified: ci) may not run the dangerous shell agent on A, whatever C's node says.
    const denied = await c.adapter.submitTask({ description: "rm", input: "rm -rf /", agentId: "shell" }, { route: a.peerId }).catch((e: unknown) => e);
    expect(hasCode(denied, "PERMISSION_DENIED"), JSON.stringify(denied)).toBe(true);
    const audit = await a.security.current.getAuditLog({ action: "task.submit" });
    expect(audit.some((e) => e.body.userId === b.peerId && e.body.result === "allowed")).toBe(true);
    expect(audit.some((e) => e.body.userId === c.peerId && e.body.result === "denied")).toBe(true);

    // C's role (ci) has no task:cancel: A refuses C's cancel of B's running task, and audits it.
    const long = await b.adapter.submitTask({ description: "long", input: "600000 600", agentId: "sleep" }, { route: a.peerId });
    // A runs it as an attempt of B's task.
    const refusedCancel = await c.client.cancel(a.peerId, long.placement!.attemptId!).catch((e: unknown) => e);
    expect(hasCode(refusedCancel, "PERMISSION_DENIED")).toBe(true);
    // B's cancel of its task reaches the attempt on A.
    expect(await b.adapter.cancelTask(long.id)).toBe(true);
    await eventually(async () => (await a.core.engine.getTask(long.placement!.attemptId!))?.status === "cancelled", 10_000, "A cancels the attempt");
    const cancels = await a.security.current.getAuditLog({ action: "task.cancel" });
    expect(cancels.map((e) => [e.body.userId, e.body.result])).toEqual(expect.arrayContaining([[c.peerId, "denied"], [b.peerId, "allowed"]]));

    // A submission signed by B but sent over C's connection is refused before any policy runs.
    const impostor = new TaskClient({ libp2p: c.libp2p, identity: b.identity, meshId: () => c.membership.meshId });
    const forged = await impostor.submit(a.peerId, { description: "forged", input: "x", agentId: "echo" }).catch((e: unknown) => e);
    await impostor.close();
    expect(hasCode(forged, "PERMISSION_DENIED")).toBe(true);
    expect((forged as Error).message).toMatch(/signed for .* arrived from/);

    // Every decision is in A's chain, which verifies.
    const report = await a.security.current.verifyAudit();
    expect(report.ok).toBe(true);
  }, 60_000);
});

describe("audit replication", () => {
  it("members hold each other's audit chains, verified entry by entry, and every chain verifies", async () => {
    const mesh = await startNodes(3);
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await a.createMesh("audited");
    for (const n of [b, c]) {
      const { invite } = await a.pairing.invite("trusted", 60_000);
      await n.pairing.join(invite);
    }
    await b.adapter.submitTask({ description: "audited", input: "x", agentId: "echo" }, { route: a.peerId });
    // C is connected only to A, yet receives B's chain through A.
    for (let i = 0; i < 3; i++) for (const n of mesh.nodes) await n.auditReplicator.syncNow();
    const authors = async (n: typeof a): Promise<Set<string>> => new Set((await n.security.current.getAuditLog({})).map((e) => e.author));
    const seenBy = (n: typeof a): string => `node ${mesh.nodes.indexOf(n)}, connected to ${n.libp2p.getConnections().length}, members ${[a, b, c].map((m) => n.membership.isMember(m.peerId)).join("/")}`;
    for (const n of mesh.nodes) expect([...(await authors(n))].sort(), seenBy(n)).toEqual([a.peerId, b.peerId, c.peerId].sort());
    const aLog = (await a.security.current.getAuditLog({})).filter((e) => e.author === a.peerId).map((e) => e.hash);
    const cCopy = (await c.security.current.getAuditLog({})).filter((e) => e.author === a.peerId).map((e) => e.hash);
    expect(cCopy).toEqual(aLog.slice(0, cCopy.length));
    for (const n of mesh.nodes) {
      const report = await n.security.current.verifyAudit();
      expect(report.ok, JSON.stringify(report.problems)).toBe(true);
      expect(report.authors).toBe(3);
    }
  }, 60_000);
});
