import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { encodeCanonical } from "../../identity/canonical.js";
import { signStatement } from "../../identity/statement.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../../node/create-node.js";
import { registryHolder } from "../../node/registry/served-trees.js";
import { signPublication, signYank } from "../../src/registry/publication-statement.js";
import { writeManifestCbor } from "../../src/workspace/manifest-cbor.js";
import { blobDigest } from "../../src/workspace/manifest.js";
import { parseRange } from "../../src/registry/version-range.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A skill folder: SKILL.md, a script, and a data file of `dataBytes` random bytes (several blobs). */
function skillFolder(name: string, dataBytes: number): { dir: string; files: Record<string, Buffer> } {
  const tmp = tempDir("cc-skill-");
  cleanups.push(tmp.remove);
  const dir = join(tmp.path, name);
  const files: Record<string, Buffer> = {
    "SKILL.md": Buffer.from(`---\nname: ${name}\ndescription: finds secrets in a diff\n---\n\nRun scripts/scan.sh on the diff.\n`),
    "scripts/scan.sh": Buffer.from("#!/bin/sh\ngrep -n SECRET \"$@\"\n"),
    "data/rules.bin": randomBytes(dataBytes),
  };
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
  return { dir, files };
}

const auditHas = async (node: CoderClawNode, action: string, result: "allowed" | "denied", pattern: RegExp): Promise<boolean> =>
  (await node.security.current.getAuditLog({ action, result })).some((e) => pattern.test(`${e.body.resource ?? ""} ${e.body.reason ?? ""}`));

const skillsDir = (node: CoderClawNode): string => join(node.dataDir, "skills");
const lockOf = (node: CoderClawNode): { skills: Record<string, { version: string; tree: string }> } => JSON.parse(readFileSync(join(node.dataDir, "skills.lock.json"), "utf8"));

describe("the mesh registry on three nodes", () => {
  it("publish on A, install on B, then on C through B with A offline: same bytes, locked; a tampered blob on the only holder is refused", async () => {
    const started = await startNodes(3);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const scanner = skillFolder("security-scanner", 2_500_000);
    const other = skillFolder("lint-helper", 1_500_000);
    const pub = await a.registry.publishSkill(scanner.dir, "team/security-scanner", "1.2.0");
    const pub2 = await a.registry.publishSkill(other.dir, "team/lint-helper", "0.1.0");
    expect(pub).toMatchObject({ name: "team/security-scanner", version: "1.2.0", publisher: a.peerId, files: 3 });
    expect(await auditHas(a, "registry.publish", "allowed", /team\/security-scanner@1\.2\.0/)).toBe(true);

    await eventually(() => b.registry.catalogue.list("skill").length === 2, 15_000, "both publications on b");
    await b.registry.installSkill("team/security-scanner", "^1.0.0");
    await b.registry.installSkill("team/lint-helper");
    await eventually(() => c.registry.catalogue.list("skill").length === 2, 15_000, "both publications on c");
    await a.stop();

    // The only holder's copy of a lint-helper blob is damaged on disk: it is not served as good bytes, and C installs nothing of it.
    const damaged = [...b.registry.catalogue.list("skill")].find((p) => p.id === pub2.id)!;
    const dataDigest = blobDigest(other.files["data/rules.bin"]!.subarray(0, 1024 * 1024));
    const blobFile = join(b.dataDir, "blobs", dataDigest.slice(0, 2), dataDigest.slice(2));
    writeFileSync(blobFile, Buffer.alloc(1024 * 1024, 7));
    await expect(c.registry.installSkill("team/lint-helper")).rejects.toThrow(new RegExp(`no connected member served tree ${damaged.tree}`));
    expect(existsSync(join(skillsDir(c), "team.lint-helper"))).toBe(false);
    // What the failed install fetched is not kept pinned (nor served after a restart): only the audit entry stays.
    expect(c.blobStore.pinnedBy(registryHolder(damaged.tree)).size).toBe(0);
    expect(await auditHas(c, "registry.install", "denied", /team\/lint-helper/)).toBe(true);

    const installed = await c.registry.installSkill("team/security-scanner", "~1.2.0");
    expect(installed).toMatchObject({ version: "1.2.0", tree: pub.tree, publisher: a.peerId, changed: true });
    for (const [path, bytes] of Object.entries(scanner.files)) expect(readFileSync(join(skillsDir(c), "team.security-scanner", path)).equals(bytes)).toBe(true);
    expect(c.blobs.client.counters(b.peerId).received).toBeGreaterThan(2_500_000);
    expect(lockOf(c).skills["team/security-scanner"]).toMatchObject({ version: "1.2.0", tree: pub.tree });
    expect(readdirSync(skillsDir(c)).sort()).toEqual([".staging", "team.security-scanner"]);
    expect((await c.registry.installSkill("team/security-scanner")).changed).toBe(false);
    rmSync(join(skillsDir(c), "team.security-scanner"), { recursive: true });
    expect((await c.registry.installSkill("team/security-scanner")).changed).toBe(true);
    expect(readFileSync(join(skillsDir(c), "team.security-scanner", "SKILL.md")).equals(scanner.files["SKILL.md"]!)).toBe(true);

    const listing = await c.registry.listSkills();
    expect(listing.installed).toMatchObject([{ name: "team/security-scanner", version: "1.2.0", outdated: false }]);
    expect(listing.available.map((p) => p.name).sort()).toEqual(["team/lint-helper", "team/security-scanner"]);
    expect(await c.registry.removeSkill("team/security-scanner")).toMatchObject({ version: "1.2.0" });
    expect(existsSync(join(skillsDir(c), "team.security-scanner"))).toBe(false);
    expect(lockOf(c).skills).toEqual({});
  }, 90_000);

  it("a publication or a yank by a member not allowed to is refused at every receiver; a yanked version is not installed; a folder or a tree escaping its folder is refused at publish and at install", async () => {
    const started = await startNodes(3);
    cleanups.push(started.stop);
    const meshId = await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const folder = skillFolder("helper", 10);

    // B holds developer only: its CLI refuses before signing, and a publication it signs anyway is refused everywhere.
    await eventually(() => b.security.current.grants.rolesOf(b.peerId).has("developer"), 15_000, "b's grant on b");
    await expect(b.registry.publishSkill(folder.dir, "team/helper", "1.0.0")).rejects.toThrow(/may not publish/);
    expect(await auditHas(b, "registry.publish", "denied", /team\/helper@1\.0\.0/)).toBe(true);
    const forged = signPublication(b.identity, { meshId, kind: "skill", name: "team/helper", version: "1.0.0", tree: "0".repeat(64), size: 10, files: 1 });
    await b.membership.add([forged]);
    for (const node of [a, b, c]) {
      await eventually(() => auditHas(node, "registry.publication", "denied", new RegExp(`may not publish.*${forged.id.slice(0, 16)}`)), 15_000, `the forged publication refused on ${node === a ? "a" : node === b ? "b" : "c"}`);
      expect(node.registry.catalogue.list("skill")).toEqual([]);
    }
    await expect(c.registry.installSkill("team/helper")).rejects.toThrow(/no skill team\/helper is published/);

    // A yank by a member that neither published the version nor is an admin changes nothing anywhere; the publisher's own does.
    const good = skillFolder("helper2", 10);
    await a.registry.publishSkill(good.dir, "team/helper2", "1.0.0");
    writeFileSync(join(good.dir, "NOTES.md"), "1.1.0\n");
    const broken = await a.registry.publishSkill(good.dir, "team/helper2", "1.1.0");
    await eventually(() => b.registry.catalogue.list("skill").length === 2 && c.registry.catalogue.list("skill").length === 2, 15_000, "helper2 on b and c");
    await expect(b.registry.yankSkill("team/helper2", "1.1.0", "mine now")).rejects.toThrow(/only the publisher of team\/helper2@1\.1\.0 .* or an admin yanks it/);
    const forgedYank = signYank(b.identity, { meshId, publication: broken.id, reason: "mine now" });
    await b.membership.add([forgedYank]);
    for (const node of [a, c]) await eventually(() => auditHas(node, "registry.yank", "denied", new RegExp(`neither the publisher.*${forgedYank.id.slice(0, 16)}`)), 15_000, "the forged yank refused");
    expect(c.registry.catalogue.resolve("skill", "team/helper2", parseRange("^1.0.0"))).toMatchObject({ version: "1.1.0" });
    await a.registry.yankSkill("team/helper2", "1.1.0", "breaks on empty diffs");
    await eventually(() => c.registry.catalogue.list("skill").some((p) => p.yanked !== undefined), 15_000, "the yank on c");
    expect(await c.registry.installSkill("team/helper2", "^1.0.0")).toMatchObject({ version: "1.0.0" });
    await expect(c.registry.installSkill("team/helper2", "1.1.0")).rejects.toThrow(/every version of team\/helper2 that 1\.1\.0 accepts is yanked: 1\.1\.0 \(yanked by .*: breaks on empty diffs\)/);
    expect(await auditHas(c, "registry.install", "denied", /team\/helper2@1\.1\.0.*yanked/)).toBe(true);
    expect((await c.registry.listSkills()).available).toMatchObject([{ name: "team/helper2", latest: "1.0.0", yanked: ["1.1.0"] }]);

    // A publication of the same version with other content, backdated to come "first": neither is taken, anywhere.
    const backdated = signStatement(a.identity, "publication", { ...signPublication(a.identity, { meshId, kind: "skill", name: "team/helper2", version: "1.0.0", tree: "1".repeat(64), size: 1, files: 1 }).body, publishedAt: 1 });
    await a.membership.add([backdated]);
    for (const node of [a, b, c]) {
      await eventually(() => auditHas(node, "registry.publication", "denied", new RegExp(`published with different content.*${backdated.id.slice(0, 16)}`)), 15_000, "the backdated publication refused");
    }
    await expect(b.registry.installSkill("team/helper2", "1.0.0")).rejects.toThrow(/team\/helper2@1\.0\.0 is published with different content/);
    expect((await c.registry.listSkills()).installed).toMatchObject([{ name: "team/helper2", version: "1.0.0" }]);

    // A link out of the folder: refused at publish, naming it.
    symlinkSync("../../../etc/passwd", join(folder.dir, "passwd"));
    await expect(a.registry.publishSkill(folder.dir, "team/helper", "1.0.0")).rejects.toThrow(/"passwd" cannot be published/);
    expect(await auditHas(a, "registry.publish", "denied", /team\/helper@1\.0\.0.*passwd/)).toBe(true);

    // A tree with a path out of its folder, signed by an admin anyway: every installer refuses it, naming the entry.
    const piece = writeManifestCbor({ version: 1, entries: [{ path: "../outside.sh", kind: "file", executable: true, size: 0, chunks: [] }] });
    const index = encodeCanonical({ version: 1, pieces: [blobDigest(piece)] });
    const tree = blobDigest(index);
    // C holds it already (no member can serve other bytes under its id, so where it comes from does not matter).
    await c.blobStore.putVerified(blobDigest(piece), piece);
    await c.blobStore.putTree(tree, index);
    const evil = signPublication(a.identity, { meshId, kind: "skill", name: "team/evil", version: "1.0.0", tree, size: 0, files: 1 });
    await a.membership.add([evil]);
    await eventually(() => c.registry.catalogue.list("skill").some((p) => p.name === "team/evil"), 15_000, "the evil publication on c");
    await expect(c.registry.installSkill("team/evil")).rejects.toThrow(/outside\.sh/);
    expect(await auditHas(c, "registry.install", "denied", /team\/evil.*outside\.sh/)).toBe(true);
    expect(existsSync(join(skillsDir(c), "team.evil"))).toBe(false);
    expect(existsSync(join(c.dataDir, "outside.sh"))).toBe(false);
    expect(c.blobStore.pinnedBy(registryHolder(tree)).size).toBe(0);
  }, 90_000);

  it("versions: the newest a range accepts, a downgrade only when asked, outdated listed; a restarted member still serves what it installed", async () => {
    const started = await startNodes(3);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b, c] = started.nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const v1 = skillFolder("fmt", 100);
    await a.registry.publishSkill(v1.dir, "team/fmt", "1.0.0");
    writeFileSync(join(v1.dir, "SKILL.md"), "---\nname: fmt\ndescription: formats, better\n---\n");
    const v11 = await a.registry.publishSkill(v1.dir, "team/fmt", "1.1.0");
    await expect(a.registry.publishSkill(v1.dir, "team/fmt", "1.1.0")).rejects.toThrow(/team\/fmt@1\.1\.0 is published already/);
    await eventually(() => b.registry.catalogue.list("skill").length === 2 && c.registry.catalogue.list("skill").length === 2, 15_000, "both versions on b and c");

    expect(await b.registry.installSkill("team/fmt", "^1.0.0")).toMatchObject({ version: "1.1.0", tree: v11.tree });
    await expect(b.registry.installSkill("team/fmt", "1.0.0")).rejects.toThrow(/locked at 1\.1\.0; 1\.0\.0 would be a downgrade/);
    expect(await auditHas(b, "registry.install", "denied", /team\/fmt@1\.0\.0.*downgrade/)).toBe(true);
    expect(await b.registry.installSkill("team/fmt", "1.0.0", { downgrade: true })).toMatchObject({ version: "1.0.0", changed: true });
    expect(readFileSync(join(skillsDir(b), "team.fmt", "SKILL.md"), "utf8")).toMatch(/finds secrets/);
    expect((await b.registry.listSkills()).installed).toMatchObject([{ name: "team/fmt", version: "1.0.0", latest: "1.1.0", outdated: true }]);
    // `update` stays within the range each skill was installed with: 1.0.0 exactly, then * once installed so.
    expect(await b.registry.updateSkills()).toMatchObject([{ name: "team/fmt", version: "1.0.0", changed: false }]);
    expect(await b.registry.installSkill("team/fmt")).toMatchObject({ version: "1.1.0", range: "*" });
    writeFileSync(join(v1.dir, "CHANGES.md"), "1.2.0: faster\n");
    const v12 = await a.registry.publishSkill(v1.dir, "team/fmt", "1.2.0");
    await eventually(() => b.registry.catalogue.list("skill").length === 3, 15_000, "1.2.0 on b");
    expect(await b.registry.updateSkills(["team/fmt"])).toMatchObject([{ version: "1.2.0", tree: v12.tree, changed: true }]);

    // A package may not shadow a skill the node has from elsewhere (here a bundled one), nor another package's.
    await a.registry.publishSkill(skillFolder("git-status", 10).dir, "team/gs", "1.0.0");
    await a.registry.publishSkill(skillFolder("fmt", 10).dir, "team/fmt-fork", "1.0.0");
    await eventually(() => b.registry.catalogue.list("skill").length === 5, 15_000, "the shadowing packages on b");
    await expect(b.registry.installSkill("team/gs")).rejects.toThrow(/names skill git-status, which .*skills\/git-status provides here already/);
    await expect(b.registry.installSkill("team/fmt-fork")).rejects.toThrow(/names skill fmt, which .*team\.fmt provides here already/);
    expect(Object.keys(lockOf(b).skills)).toEqual(["team/fmt"]);

    // B restarts and A goes: C still installs, from B's store.
    await b.stop();
    // As a kill while a folder was being built would leave it: removed before the restarted node's first registry call.
    mkdirSync(join(skillsDir(b), ".staging", "team.fmt-0123456789ab"), { recursive: true });
    const b2 = await createNode({ dataDir: b.dataDir, mdns: false, agents: createBuiltinRegistry([]) });
    cleanups.push(() => b2.stop());
    expect((await b2.registry.installSkill("team/fmt", "1.2.0")).changed).toBe(false);
    expect(existsSync(join(skillsDir(b), ".staging", "team.fmt-0123456789ab"))).toBe(false);
    await a.stop();
    await c.dial(b2.multiaddrs()[0]!);
    await eventually(() => c.registry.catalogue.list("skill").some((p) => p.name === "team/fmt" && p.version === "1.2.0"), 15_000, "1.2.0 on c");
    await expect(c.registry.installSkill("team/fmt", "^1.1.0", { from: a.peerId })).rejects.toThrow(/is not a member connected to this node/);
    expect(await c.registry.installSkill("team/fmt", "^1.1.0", { from: b2.peerId })).toMatchObject({ version: "1.2.0", tree: v12.tree });
    expect(c.blobs.client.counters(b2.peerId).received).toBeGreaterThan(0);
    expect(readFileSync(join(skillsDir(c), "team.fmt", "CHANGES.md"), "utf8")).toBe("1.2.0: faster\n");
  }, 90_000);
});
