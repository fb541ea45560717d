import { lstat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { loadSkill } from "../../src/agents/skills.js";
import { InvalidInputError } from "../../src/contract/errors.js";
import { MAX_CONFIG_BYTES } from "../../src/config/agents-config.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { blobsOf, DEFAULT_MANIFEST_LIMITS, type ManifestLimits } from "../../src/workspace/manifest.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import type { HeldTree } from "./tree-fetch.js";

/** Bounds of a published skill: a skill is instructions and a few scripts, not a repository. */
export const SKILL_TREE_LIMITS: ManifestLimits = { ...DEFAULT_MANIFEST_LIMITS, maxEntries: 10_000, maxFileBytes: 64 * 1024 ** 2, maxTreeBytes: 256 * 1024 ** 2, maxManifestBytes: 8 * 1024 ** 2 };

/** Bounds of a published agent: its definition, one file of at most a configuration file's size. */
export const AGENT_TREE_LIMITS: ManifestLimits = { ...SKILL_TREE_LIMITS, maxEntries: 1, maxTreeBytes: MAX_CONFIG_BYTES };

/** A skill folder captured into the store. */
export interface CapturedSkill extends HeldTree {
  treeId: string;
  /** The skill's name in its SKILL.md. */
  skillName: string;
}

/**
 * Captures the skill folder `dir` (SKILL.md at its top and the files beside
 * it) as a tree whose blobs are copied into `store`, so the published bytes
 * stay served whatever later happens to the folder. Refused, naming the
 * path: a folder that is a link or lacks a valid SKILL.md, and anything the
 * tree could not carry faithfully (links leaving the folder, special files,
 * names a manifest refuses), since publishing the rest would sign a skill
 * other than the one on disk. `.coderclawignore` excludes as it does for tasks.
 */
export async function captureSkillFolder(dir: string, store: BlobStore, limits: ManifestLimits = SKILL_TREE_LIMITS): Promise<CapturedSkill> {
  const root = resolve(dir);
  const st = await lstat(root).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) throw new InvalidInputError(`${root} is not a directory${st?.isSymbolicLink() === true ? " (a link: publish the folder it points to)" : ""}`, "dir");
  const md = await lstat(join(root, "SKILL.md")).catch(() => undefined);
  if (md === undefined || !md.isFile()) throw new InvalidInputError(`${root} has no SKILL.md file at its top`, "dir");
  const skill = loadSkill(root, "user", {});
  // A requirement this process lacks is the installer's business; a SKILL.md that does not parse is not a skill.
  if (skill.info.disabledReason?.includes("SKILL.md") === true) throw new InvalidInputError(skill.info.disabledReason, "SKILL.md");
  return { ...(await captureTree(root, store, limits)), skillName: skill.info.name };
}

/**
 * Captures the folder `root` as a tree whose blobs are copied into `store`.
 * Anything the tree could not carry faithfully is refused, naming its path.
 */
export async function captureTree(root: string, store: BlobStore, limits: ManifestLimits): Promise<HeldTree & { treeId: string }> {
  const snap = await snapshotDirectory(root, { limits });
  const skipped = snap.skipped[0];
  if (skipped !== undefined) throw new InvalidInputError(`${JSON.stringify(skipped.path)} cannot be published: ${skipped.reason}${snap.skipped.length > 1 ? ` (and ${snap.skipped.length - 1} more)` : ""}`, "dir");
  const blobs = blobsOf(snap.manifest);
  for (const piece of snap.pieces) blobs.add(piece.digest);
  for (const digest of blobs) {
    const bytes = await snap.sources.read(digest);
    if (bytes === undefined) throw new InvalidInputError(`a file of ${root} changed while it was read; publish again`, "dir");
    await store.putVerified(digest, bytes);
  }
  await store.putTree(snap.treeId, snap.index);
  return { treeId: snap.treeId, index: snap.index, manifest: snap.manifest, blobs };
}
