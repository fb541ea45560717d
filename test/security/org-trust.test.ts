import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { hasCode } from "../../src/contract/errors.js";
import { eventually, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Whether `node`'s own log (not the entries replicated to it) holds a matching entry. */
const auditHas = async (node: CoderClawNode, action: string, pattern: RegExp): Promise<boolean> =>
  (await node.security.current.getAuditLog({ action, result: "denied" })).some((e) => e.author === node.peerId && pattern.test(`${e.body.resource ?? ""} ${e.body.reason ?? ""}`));

/** A project directory whose own team policy asks nothing of a device's trust. */
function lenientWorkspace(): string {
  const tmp = tempDir("cc-lenient-");
  cleanups.push(tmp.remove);
  mkdirSync(join(tmp.path, ".coderClaw"));
  writeFileSync(join(tmp.path, ".coderClaw", "team-policy.yaml"), "enforceTrust: false\nminimumTrustLevel: untrusted\n");
  return tmp.path;
}

describe("the organization's minimumTrustLevel and enforceTrust on every node", () => {
  it("a device below the signed minimum is refused at submit and at the executor, though the local policies of both would allow it", async () => {
    const started = await startNodes(3, (i) => (i === 0 ? {} : { options: { workspaceDir: lenientWorkspace() } }));
    cleanups.push(started.stop);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    await a.createMesh("trust mesh");
    // B is trusted, C only verified.
    await b.pairing.join((await a.pairing.invite("trusted", 60_000)).invite);
    await c.pairing.join((await a.pairing.invite("verified", 60_000)).invite);
    for (const x of started.nodes) for (const y of started.nodes) if (x !== y) await x.dial(y.multiaddrs()[0]!).catch(() => undefined);
    await eventually(() => b.security.current.grants.rolesOf(c.peerId).has("ci") && c.security.current.grants.rolesOf(c.peerId).has("ci"), 15_000, "c's grant on b and c");

    // Before the organization says anything, C's tasks run on B.
    const before = await c.adapter.submitTask({ description: "echo", input: "before", agentId: "echo" }, { route: b.peerId });
    expect(before.placement?.runsOn).toBe(b.peerId);

    await a.security.signPolicy("team", "enforceTrust: true\nminimumTrustLevel: trusted\n");
    const refusesC = (node: CoderClawNode): boolean => !node.security.current.checkTask(node.security.current.contextForDevice(c.peerId, node === c ? "local" : "remote"), { action: "task.submit", agentId: "echo" }).allowed;
    for (const node of [b, c]) await eventually(() => refusesC(node), 15_000, "the organization's policy in force");
    const reason = new RegExp(`organization policy requires device trust trusted, device ${c.peerId} is verified`);

    // At submit: C's own node refuses a request of C's (the decision its HTTP API and control socket take), audited there.
    const atSubmit = await c.security.current.authorizeTask(c.security.current.contextForDevice(c.peerId, "local"), { action: "task.submit", agentId: "echo" });
    expect(atSubmit).toMatchObject({ allowed: false, reason: expect.stringMatching(reason) });
    await eventually(() => auditHas(c, "task.submit", reason), 10_000, "the refusal in c's audit log");

    // At the executor: C's submissions sent to B (through its node's adapter, or straight over the task protocol) are refused there, and audited.
    const tasksOnB = (await b.core.engine.listTasks({})).length;
    const routed = await c.adapter.submitTask({ description: "echo", input: "after", agentId: "echo" }, { route: b.peerId }).catch((e: unknown) => e);
    const atExecutor = await c.client.submit(b.peerId, { description: "sneaky", input: "after", agentId: "echo" }).catch((e: unknown) => e);
    for (const refused of [routed, atExecutor]) {
      expect(hasCode(refused, "PERMISSION_DENIED"), String(refused)).toBe(true);
      expect(String((refused as Error).message)).toMatch(reason);
    }
    await eventually(() => auditHas(b, "task.submit", reason), 10_000, "the refusal in b's audit log");
    expect((await b.core.engine.listTasks({})).length).toBe(tasksOnB);

    // A trusted member is not held back.
    const trusted = await b.adapter.submitTask({ description: "echo", input: "b", agentId: "echo" }, { route: a.peerId });
    expect(trusted.placement?.runsOn).toBe(a.peerId);

    // What is served to every member without a permission, a published skill, is not served to C.
    const folder = join(lenientWorkspace(), "scanner");
    mkdirSync(folder);
    writeFileSync(join(folder, "SKILL.md"), "---\nname: scanner\ndescription: scans\n---\nScan.\n");
    const pub = await a.registry.publishSkill(folder, "team/scanner", "1.0.0");
    await eventually(() => b.registry.catalogue.list("skill").length === 1 && c.registry.catalogue.list("skill").length === 1, 15_000, "the publication on b and c");
    expect(await b.registry.installSkill("team/scanner")).toMatchObject({ tree: pub.tree, changed: true });
    await expect(c.registry.installSkill("team/scanner")).rejects.toThrow(new RegExp(`no connected member served tree ${pub.tree}`));
    for (const node of [a, b]) await eventually(() => auditHas(node, "registry.fetch", new RegExp(`${pub.tree}.*${reason.source}`)), 10_000, "the refused fetch audited");
  }, 60_000);
});
