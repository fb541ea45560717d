import { afterEach, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Each node's own chain, as far as it has written it. */
const ownSeq = async (node: CoderClawNode): Promise<number> => (await node.security.audit.heads()).get(node.peerId)?.seq ?? 0;

describe("the audit entries a mesh writes as members join", () => {
  it("grow with the members, not with their square: a grant or name is logged where it is issued and on the device it names", async () => {
    const n = 5;
    const mesh = await startNodes(n);
    cleanups.push(mesh.stop);
    await formMesh(mesh.nodes);
    const [founder] = mesh.nodes as [CoderClawNode];
    // Every member holds every grant and every name, and the founder holds every member's whole log.
    for (const node of mesh.nodes) {
      await eventually(() => node.security.current.grants.statements().length === n - 1 && node.security.deviceNames().size === n, 15_000, "grants and names everywhere");
    }
    await eventually(
      async () => {
        const held = await founder.security.audit.heads();
        for (const node of mesh.nodes) if ((held.get(node.peerId)?.seq ?? 0) < (await ownSeq(node))) return false;
        return true;
      },
      20_000,
      "every log replicated to the founder",
    );
    const count = async (action: string): Promise<number> => (await founder.security.current.getAuditLog({ action, result: "allowed" })).length;
    // Each device names itself: once, on itself (was: on every member, n * n).
    expect(await count("device.rename")).toBe(n);
    // Each joiner's grant: on the founder that issued it and on the joiner (was: on every member, n * (n - 1)).
    expect(await count("grant.add")).toBe(2 * (n - 1));
  }, 60_000);
});
