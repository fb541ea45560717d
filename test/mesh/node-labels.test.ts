import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode } from "../../node/index.js";
import { InvalidInputError } from "../../src/contract/errors.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("labels and resources of a node", () => {
  it("travel in its signed record to the other members, and a node without them reads as having none", async () => {
    const mesh = await startNodes(2, (i) => (i === 1 ? { options: { labels: ["gpu", "macos"], resources: { cpu: 8, memoryGiB: 32 } } } : {}));
    cleanups.push(mesh.stop);
    const [a, b] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await formMesh(mesh.nodes);

    await eventually(async () => (await a.directory.members()).some((c) => c.peerId === b.peerId), 10_000, "A reads B's record");
    const seenByA = (await a.directory.members()).find((c) => c.peerId === b.peerId)!;
    expect([seenByA.record.labels, seenByA.record.resources]).toEqual([["gpu", "macos"], { cpu: 8, memoryGiB: 32 }]);

    await eventually(async () => (await b.directory.members()).some((c) => c.peerId === a.peerId), 10_000, "B reads A's record");
    const seenByB = (await b.directory.members()).find((c) => c.peerId === a.peerId)!;
    expect([seenByB.record.labels ?? [], seenByB.record.resources ?? {}]).toEqual([[], {}]);
    expect("labels" in seenByB.record).toBe(false);
  }, 60_000);

  it("refuses malformed labels or resources before it opens anything, naming the option", async () => {
    const home = tempDir("cc-labels-");
    cleanups.push(() => home.remove());
    const refused = async (options: Parameters<typeof createNode>[0]): Promise<InvalidInputError> => {
      const err: unknown = await createNode({ dataDir: home.path, mdns: false, ...options }).then(
        (n) => n.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidInputError);
      return err as InvalidInputError;
    };
    expect((await refused({ labels: ["has space"] })).field).toBe("labels.0");
    expect((await refused({ resources: { cpu: -1 } })).field).toBe("resources.cpu");
    expect((await refused({ resources: { cpu: Number.NaN } })).field).toBe("resources.cpu");
    // Nothing was created: no identity, no store.
    expect(readdirSync(home.path)).toEqual([]);
  }, 30_000);
});
