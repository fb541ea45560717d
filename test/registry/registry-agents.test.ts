import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode } from "../../node/create-node.js";
import { meshAgentListing } from "../../node/registry/published-agents.js";
import { signPublication } from "../../src/registry/publication-statement.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const TEAM_AGENTS = `agents:
  - id: reviewer
    name: Reviewer
    description: reviews what it is given
    capabilities: [review]
    labels: [gpu]
    command: [sh, -c, 'echo "reviewed: $1"', sh, "{input}"]
    input: arg
`;

function teamAgentsFile(text: string): string {
  const tmp = tempDir("cc-agents-");
  cleanups.push(tmp.remove);
  const file = join(tmp.path, "team-agents.yaml");
  writeFileSync(file, text);
  return file;
}

/** Whether `node`'s own log (not the entries replicated to it) holds a matching entry. */
const auditHas = async (node: CoderClawNode, action: string, result: "allowed" | "denied", pattern: RegExp): Promise<boolean> =>
  (await node.security.current.getAuditLog({ action, result })).some((e) => e.author === node.peerId && pattern.test(`${e.body.resource ?? ""} ${e.body.reason ?? ""}`));

const stateOf = async (node: CoderClawNode, id: string) => (await node.publishedAgents.states()).find((s) => s.id === id);

describe("agents published to the mesh", () => {
  it("publish on A: the agent runs on B (which has its label), routed there; C and A list it with the reason; C's record leaves it out", async () => {
    // Only B declares the label the agent requires.
    const started = await startNodes(3, (i) => ({ options: { sandbox: "off", ...(i === 1 && { labels: ["gpu"] }) } }));
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const file = teamAgentsFile(TEAM_AGENTS);

    const [published] = await a.registry.publishAgents(file, "team");
    expect(published).toMatchObject({ name: "team/reviewer", version: "1.0.0", kind: "agent", publisher: a.peerId, changed: true });
    expect(await auditHas(a, "registry.publish", "allowed", /team\/reviewer@1\.0\.0/)).toBe(true);
    // The same definition again is left as it is; a changed one is the next patch.
    expect((await a.registry.publishAgents(file, "team"))[0]).toMatchObject({ version: "1.0.0", changed: false });

    await eventually(async () => (await stateOf(b, "reviewer"))?.available === true, 15_000, "reviewer runs on b");
    await eventually(async () => (await stateOf(c, "reviewer"))?.reason !== undefined, 15_000, "reviewer listed on c");
    expect(await stateOf(c, "reviewer")).toMatchObject({ name: "team/reviewer", version: "1.0.0", available: false, reason: "this node lacks the label(s) gpu it requires" });
    expect(await stateOf(a, "reviewer")).toMatchObject({ available: false, reason: "this node lacks the label(s) gpu it requires" });
    expect((await c.adapter.listAgents()).find((x) => x.id === "reviewer")).toMatchObject({ available: false, unavailableReason: "this node lacks the label(s) gpu it requires" });

    // B offers it in its signed record; C does not.
    await eventually(async () => (await a.directory.members()).some((m) => m.peerId === b.peerId && m.record.agents.includes("reviewer")), 15_000, "b offers reviewer");
    // C's signed record says why it does not; A's listing shows where the agent runs in the mesh and why not elsewhere.
    await eventually(async () => (await a.directory.members()).find((m) => m.peerId === c.peerId)?.record.unavailable?.reviewer !== undefined, 15_000, "c's record says why");
    const cRecord = (await a.directory.members()).find((m) => m.peerId === c.peerId)!.record;
    expect([cRecord.agents.includes("reviewer"), cRecord.unavailable]).toEqual([false, { reviewer: "this node lacks the label(s) gpu it requires" }]);
    const [listed] = await meshAgentListing(a.publishedAgents, () => a.directory.members());
    expect(listed!.members.sort((x, y) => (x.peer === b.peerId ? -1 : y.peer === b.peerId ? 1 : 0))).toEqual([
      { peer: b.peerId, runs: true },
      { peer: c.peerId, runs: false, reason: "this node lacks the label(s) gpu it requires" },
    ]);

    const task = await a.adapter.submitTask({ description: "review", input: "the diff", agentId: "reviewer" });
    for await (const _ of a.adapter.streamTaskUpdates(task.id));
    const state = (await a.adapter.getTaskState(task.id))!;
    expect(state).toMatchObject({ status: "completed", output: "reviewed: the diff\n" });
    expect(state.placement?.runsOn).toBe(b.peerId);

    // A new definition is the next patch; every member takes the newest.
    writeFileSync(file, TEAM_AGENTS.replace("reviewed:", "checked:"));
    expect((await a.registry.publishAgents(file, "team"))[0]).toMatchObject({ version: "1.0.1", changed: true });
    await eventually(async () => (await stateOf(c, "reviewer"))?.version === "1.0.1", 15_000, "1.0.1 on c");
    const second = await c.adapter.submitTask({ description: "review", input: "again", agentId: "reviewer" });
    for await (const _ of c.adapter.streamTaskUpdates(second.id));
    expect(await c.adapter.getTaskState(second.id)).toMatchObject({ status: "completed", output: "checked: again\n" });
  }, 90_000);

  it("an agent publication by a member without registry:publish, one taking the id of another team's agent or of a node's own agent, is refused and audited on every node", async () => {
    const started = await startNodes(3, () => ({ options: { sandbox: "off" } }));
    cleanups.push(started.stop);
    const meshId = await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];

    await expect(c.registry.publishAgents(teamAgentsFile(TEAM_AGENTS), "team")).rejects.toThrow(/may not publish/);
    const forged = signPublication(c.identity, { meshId, kind: "agent", name: "team/reviewer", version: "1.0.0", tree: "0".repeat(64), size: 10, files: 1 });
    await c.membership.add([forged]);
    for (const node of [a, b, c]) {
      await eventually(() => auditHas(node, "registry.publication", "denied", new RegExp(`may not publish.*${forged.id.slice(0, 16)}`)), 15_000, "the forged publication refused");
      expect(await node.publishedAgents.states()).toEqual([]);
    }

    // A second team's agent of the same id would take over the first's tasks: neither runs, on any node.
    const [ours] = await a.registry.publishAgents(teamAgentsFile(TEAM_AGENTS.replace("    labels: [gpu]\n", "")), "team");
    await eventually(async () => (await stateOf(b, "reviewer"))?.available === true, 15_000, "team/reviewer on b");
    const [theirs] = await a.registry.publishAgents(teamAgentsFile(TEAM_AGENTS.replace("reviewed:", "stolen:")), "aaa");
    for (const node of [a, b, c]) {
      for (const p of [ours!, theirs!]) await eventually(() => auditHas(node, "registry.agent", "denied", new RegExp(`agent id reviewer is published under aaa/reviewer and team/reviewer: neither is run.*${p.id.slice(0, 16)}`)), 15_000, `${p.name} refused`);
      expect(await stateOf(node, "reviewer")).toBeUndefined();
    }

    // `echo` is every node's own: a publication of it is refused by each, never run in its place.
    const echo = await a.registry.publishAgents(teamAgentsFile(TEAM_AGENTS.replace("id: reviewer", "id: echo")), "team");
    for (const node of [a, b, c]) {
      await eventually(() => auditHas(node, "registry.agent", "denied", new RegExp(`team/echo@1\\.0\\.0 .*has an agent echo of its own.*${echo[0]!.id.slice(0, 16)}`)), 15_000, "the echo publication refused");
      expect(node.core.agents.get("echo")?.info.description).toBe("Returns the task input as its output");
    }
  }, 90_000);

  it("a member that took a published agent still runs it after a restart with the publisher offline, and serves its definition to a member that was offline", async () => {
    const started = await startNodes(3, () => ({ options: { sandbox: "off" } }));
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const noLabel = TEAM_AGENTS.replace("    labels: [gpu]\n", "");
    await c.stop();
    await a.registry.publishAgents(teamAgentsFile(noLabel), "team");
    await eventually(async () => (await stateOf(b, "reviewer"))?.available === true, 15_000, "reviewer on b");
    await a.stop();
    await b.stop();
    const again = await createNode({ dataDir: started.homes[1]!, mdns: false, sandbox: "off" });
    cleanups.push(() => again.stop());
    await eventually(async () => (await stateOf(again, "reviewer"))?.available === true, 15_000, "reviewer on b after its restart");
    const task = await again.adapter.submitTask({ description: "review", input: "offline", agentId: "reviewer" });
    for await (const _ of again.adapter.streamTaskUpdates(task.id));
    expect(await again.adapter.getTaskState(task.id)).toMatchObject({ status: "completed", output: "reviewed: offline\n" });
    // C was offline when it was published: it learns of it and fetches its definition from the restarted B, the publisher being gone.
    const cAgain = await createNode({ dataDir: started.homes[2]!, mdns: false, sandbox: "off" });
    cleanups.push(() => cAgain.stop());
    expect(await stateOf(cAgain, "reviewer")).toBeUndefined();
    await cAgain.dial(again.multiaddrs()[0]!);
    await eventually(async () => (await stateOf(cAgain, "reviewer"))?.available === true, 15_000, "reviewer on c, fetched from b");
  }, 90_000);
});
