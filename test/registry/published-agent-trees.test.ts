import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BlobClient } from "../../protocols/blobs/index.js";
import type { Publication } from "../../node/registry/catalogue.js";
import { createPublishedAgents } from "../../node/registry/published-agents.js";
import { registryHolder, ServedTrees } from "../../node/registry/served-trees.js";
import { captureSkillFolder } from "../../node/registry/skill-folder.js";
import { openBlobStore, type BlobStore } from "../../src/workspace/blob-store.js";
import type { AuditBody } from "../../src/security/index.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function storeWithSkill(dataBytes: number): Promise<{ store: BlobStore; served: ServedTrees; tree: string; blobs: Set<string> }> {
  const home = tempDir("cc-agent-trees-");
  cleanups.push(home.remove);
  const store = await openBlobStore({ dir: join(home.path, "blobs") });
  cleanups.push(() => store.close());
  const dir = join(home.path, "skill");
  mkdirSync(join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "SKILL.md"), "---\nname: scanner\ndescription: finds secrets\n---\n\nRun it.\n");
  writeFileSync(join(dir, "data", "rules.bin"), randomBytes(dataBytes));
  const captured = await captureSkillFolder(dir, store);
  const served = await ServedTrees.open(store);
  return { store, served, tree: captured.treeId, blobs: captured.blobs };
}

const agentPublication = (tree: string): Publication => ({ id: "f".repeat(64), publisher: "attacker", meshId: "mesh", kind: "agent", name: "evil/reviewer", version: "1.0.0", tree, size: 1, files: 1, publishedAt: 1 });

describe("agent publications naming a tree that is no agent definition", () => {
  it("one naming a skill tree this node serves is refused without taking the skill's pin: its blobs survive a collection", async () => {
    const { store, served, tree, blobs } = await storeWithSkill(10_000);
    await served.add(tree, (await store.getTree(tree))!, blobs);
    const audits: AuditBody[] = [];
    const agents = createPublishedAgents({
      selfId: "self",
      catalogue: { list: (kind) => (kind === "agent" ? [agentPublication(tree)] : []) },
      store,
      served,
      client: () => undefined,
      connectedMembers: () => [],
      ownAgentIds: () => [],
      skillsHere: () => [],
      labelsHere: () => [],
      record: async (body) => audits.push(body),
    });
    await agents.refresh();
    expect((await agents.states())[0]).toMatchObject({ available: false, reason: expect.stringMatching(/refused/) });
    expect(audits.some((a) => a.action === "registry.agent" && a.result === "denied")).toBe(true);
    expect([...store.pinnedBy(registryHolder(tree))].sort()).toEqual([tree, ...blobs].sort());
    await store.gc({ downToBytes: 0 });
    for (const digest of blobs) expect(await store.read(digest)).toBeDefined();
  });

  it("one naming a tree larger than an agent definition is refused from its manifest, before any of its blobs is fetched", async () => {
    const { store, tree } = await storeWithSkill(3_000_000);
    // This node holds the manifest only: the blobs would come from a member.
    const index = (await store.getTree(tree))!;
    const home = tempDir("cc-agent-trees-");
    cleanups.push(home.remove);
    const here = await openBlobStore({ dir: join(home.path, "blobs") });
    cleanups.push(() => here.close());
    await here.putTree(tree, index);
    for (const piece of [...(await import("../../src/workspace/manifest-pieces.js")).decodeManifestIndex(tree, index)]) await here.putVerified(piece, (await store.read(piece))!);
    const asked: string[] = [];
    const client = {
      fetchTree: () => Promise.reject(new Error("not asked")),
      fetchBlobs: (_peer: string, _tree: string, digests: Iterable<string>) => {
        asked.push(...digests);
        return Promise.resolve({ unavailable: [...digests] });
      },
    } as unknown as BlobClient;
    const audits: AuditBody[] = [];
    const agents = createPublishedAgents({
      selfId: "self",
      catalogue: { list: (kind) => (kind === "agent" ? [agentPublication(tree)] : []) },
      store: here,
      served: await ServedTrees.open(here),
      client: () => client,
      connectedMembers: () => ["member"],
      ownAgentIds: () => [],
      skillsHere: () => [],
      labelsHere: () => [],
      record: async (body) => audits.push(body),
    });
    await agents.refresh();
    expect(asked).toEqual([]);
    expect((await agents.states())[0]).toMatchObject({ available: false, reason: expect.stringMatching(/refused/) });
    expect(audits.some((a) => a.action === "registry.agent" && a.result === "denied")).toBe(true);
  });
});
