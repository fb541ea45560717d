import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic, type StatementSigner } from "../../identity/index.js";
import type { BlobClient } from "../../protocols/blobs/index.js";
import { loadSkill } from "../../src/agents/skills.js";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import { emptyLock, formatLockFile, parseLockFile, type LockEntry, type LockFile } from "../../src/registry/lock-file.js";
import { installFolderName, packageNameSchema } from "../../src/registry/package-name.js";
import { signPublication, signYank } from "../../src/registry/publication-statement.js";
import { PUBLISHED_AGENT_FILE, splitTeamAgents } from "../../src/registry/agent-publication.js";
import { MAX_CONFIG_BYTES } from "../../src/config/agents-config.js";
import { compareVersions, parseRange, parseVersion } from "../../src/registry/version-range.js";
import type { AuditBody } from "../../src/security/index.js";
import type { Authorizer } from "../../src/security/authorizer.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { materializeTree } from "../../src/workspace/materialize.js";
import type { ApprovalStatementDeps } from "../approvals/approval-deps.js";
import { createCatalogue, type Catalogue, type Publication } from "./catalogue.js";
import { registryHolder, type ServedTrees } from "./served-trees.js";
import { AGENT_TREE_LIMITS, captureSkillFolder, captureTree, SKILL_TREE_LIMITS } from "./skill-folder.js";
import { fetchTreeFromAny } from "./tree-fetch.js";

/** What a node's registry needs of the node. */
export interface NodeRegistryDeps {
  signer: StatementSigner;
  set: ApprovalStatementDeps["set"];
  meshId: () => string | undefined;
  /** Whether a device may publish, by this node's view of the grants. */
  mayPublish: (deviceId: string) => { allowed: boolean; reason?: string };
  /** Whether a device is an admin of the mesh, by this node's view of the grants. */
  isAdmin: (deviceId: string) => boolean;
  store: BlobStore;
  served: ServedTrees;
  client: () => BlobClient | undefined;
  /** Members connected now: where a tree can be fetched from. */
  connectedMembers: () => string[];
  /** Where installed skills go: a folder the node looks skills up in. */
  skillsDir: string;
  /** Skill folders the node finds now, in lookup order: a published skill may not take the name of one of them. */
  skillsFound: () => Array<{ name: string; dir: string }>;
  /** The lock file: exact versions and trees of what is installed. */
  lockFile: string;
  /** The organization policy in force here (signed by an admin, replicated): what it denies and requires. */
  organisation: () => Pick<Authorizer, "isSkillDenied" | "missingRequiredSkills">;
  record: (body: AuditBody) => Promise<unknown>;
  onError?: (error: Error) => void;
}

/** A skill as `skill install` left it. */
export interface InstalledSkill extends LockEntry {
  name: string;
  dir: string;
  /** False when the lock file named this tree already: nothing was fetched or written. */
  changed: boolean;
}

/** An agent `agent publish` published, or found published already with the same definition (`changed` false). */
export interface AgentPublished extends Publication {
  changed: boolean;
}

/** Bounds of a published agent: one small file. */

/** The next patch version of `version`. */
function nextPatch(version: string): string {
  const [major, minor, patch] = parseVersion(version)!;
  return `${major}.${minor}.${patch + 1}`;
}

/** The file `file`, refused when over `max` bytes (before reading it) or not a regular file. */
async function readBounded(file: string, max: number): Promise<string> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new InvalidInputError(`${file} cannot be read: ${err.code ?? err.message}`, "file");
  });
  if (!st.isFile()) throw new InvalidInputError(`${file} is not a file`, "file");
  if (st.size > max) throw new InvalidInputError(`${file} is ${st.size} bytes, over the limit of ${max}`, "file");
  return readFile(file, "utf8");
}

/** Options of {@link NodeRegistry.installSkill}. */
export interface InstallOptions {
  downgrade?: boolean;
  from?: string;
}

/** `skill list`: what is installed here (and whether a newer version is published) and what the mesh offers. */
export interface SkillListing {
  installed: Array<LockEntry & { name: string; latest?: string; outdated: boolean; yanked?: string }>;
  /** `latest`: the newest version not yanked (none when every one is); `yanked`: versions withdrawn. */
  available: Array<{ name: string; latest?: string; versions: string[]; yanked: string[]; publisher: string; installed?: string }>;
  /** Published skills the organization policy requires that are not installed here, with what stands in the way. */
  requiredMissing: Array<{ name: string; problem: string }>;
}

/** The mesh registry as one node runs it: publish, install, list and remove skills. */
export interface NodeRegistry {
  readonly catalogue: Catalogue;
  /** Capture `dir`, keep and serve its tree, sign its publication as `name` at `version` and add it to the mesh's statements. */
  publishSkill(dir: string, name: string, version: string): Promise<Publication>;
  /**
   * Publish each agent the team-agents file `file` declares as `<team>/<id>`, at `version` or else the newest
   * published version's next patch (1.0.0 for a first); an agent whose definition is the newest version's is left as it is.
   */
  publishAgents(file: string, team: string, version?: string): Promise<AgentPublished[]>;
  /**
   * Install the newest version of `name` that `range` accepts (default `*`); a version older than the locked one only with
   * `downgrade`. Fetched from `from` (a connected member) when given, else from the publisher or any connected member.
   */
  installSkill(name: string, range?: string, options?: InstallOptions): Promise<InstalledSkill>;
  /** Withdraw `name`@`version` (this device must be its publisher or an admin): no longer installed for a range, anywhere. */
  yankSkill(name: string, version: string, reason: string): Promise<{ yank: string }>;
  /** Install, for each of `names` (default: every installed skill), the newest version the range it was installed with accepts. */
  updateSkills(names?: readonly string[]): Promise<InstalledSkill[]>;
  /** Remove an installed skill: its folder, its lock entry, and (unless published here) its blobs' pin. */
  removeSkill(name: string): Promise<LockEntry>;
  listSkills(): Promise<SkillListing>;
  /** Remove every installed skill the organization policy denies (audited): the policy may come after the install. */
  removeDenied(): Promise<Array<LockEntry & { name: string; denied: string }>>;
  /** Registry names the organization policy requires that the lock file lacks. */
  missingRequired(): Promise<string[]>;
  close(): void;
}

/**
 * A node's registry (issue 23). Publications are signed statements in the
 * mesh's set, checked by every receiver (see {@link createCatalogue}); their
 * trees travel over the blob protocol from any member that holds them, and a
 * member that installed a tree serves it in turn. Every refusal is audited
 * with its reason before it reaches the caller.
 */
export function createNodeRegistry(deps: NodeRegistryDeps): NodeRegistry {
  const catalogue = createCatalogue(deps);
  const self = deps.signer.peerId;
  const staging = join(deps.skillsDir, ".staging");
  // What a process killed while building a folder left aside is removed before the first call.
  let serial: Promise<unknown> = rm(staging, { recursive: true, force: true }).catch((err: Error) => deps.onError?.(err));
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = serial.then(fn);
    serial = run.catch(() => undefined);
    return run;
  };

  const audit = (action: string, resource: string, result: "allowed" | "denied", reason: string): Promise<unknown> => deps.record({ action, userId: self, deviceId: self, resource, result, reason });
  /** Runs a registry call; a refusal is audited `denied` with its reason before it reaches the caller. */
  const audited = async <T>(action: string, resource: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await serially(call);
    } catch (err) {
      await audit(action, resource, "denied", err instanceof Error ? err.message : String(err));
      throw err;
    }
  };

  const readLock = async (): Promise<LockFile> => {
    const text = await readFile(deps.lockFile, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    return text === undefined ? emptyLock() : parseLockFile(text, deps.lockFile);
  };
  const writeLock = (lock: LockFile): Promise<void> => writeFileAtomic(deps.lockFile, formatLockFile(lock));
  const publishedHere = (tree: string): boolean => catalogue.list("skill").some((p) => p.tree === tree && p.publisher === self);

  const refuseDenied = (...names: string[]): void => {
    const denied = names.find((n) => deps.organisation().isSkillDenied(n));
    if (denied !== undefined) throw new CoderClawError("PERMISSION_DENIED", `skill ${denied} is denied by the organization policy`);
  };

  const checkName = (name: string): void => {
    const parsed = packageNameSchema.safeParse(name);
    if (!parsed.success) throw new InvalidInputError(`${JSON.stringify(name.slice(0, 100))} ${parsed.error.issues[0]!.message}`, "name");
  };

  /** The mesh a publication from this device goes to, when this device may publish there. */
  const mayPublishHere = (): string => {
    const meshId = deps.meshId();
    if (meshId === undefined) throw new CoderClawError("INVALID_INPUT", "this node is in no mesh: a publication is made to a mesh");
    const may = deps.mayPublish(self);
    if (!may.allowed) throw new CoderClawError("PERMISSION_DENIED", `this device may not publish to the mesh's registry: ${may.reason ?? "registry:publish not granted"}; an admin grants a role with registry:publish`);
    return meshId;
  };

  /** What every publication checks first; the mesh it is made to. */
  const publishable = (kind: Publication["kind"], name: string, version: string): string => {
    checkName(name);
    if (parseVersion(version) === undefined) throw new InvalidInputError(`${JSON.stringify(version.slice(0, 40))} is not a version like 1.2.0`, "version");
    const meshId = mayPublishHere();
    // Every receiver refuses a member's version of a name another device publishes (and then that device's as well).
    const owner = catalogue.list(kind).find((p) => p.name === name && p.publisher !== self);
    if (owner !== undefined && !deps.isAdmin(self)) throw new CoderClawError("PERMISSION_DENIED", `${name} is published by ${owner.publisher}: only it or an admin publishes its versions`);
    const taken = catalogue.list(kind).find((p) => p.name === name && p.version === version);
    if (taken !== undefined) throw new CoderClawError("INVALID_INPUT", `${name}@${version} is published already (tree ${taken.tree.slice(0, 16)}); publish a new version`);
    return meshId;
  };

  /** Serve a captured tree and sign its publication into the mesh's statements. */
  const publishCaptured = async (kind: Publication["kind"], name: string, version: string, meshId: string, captured: Awaited<ReturnType<typeof captureTree>>): Promise<Publication> => {
    await deps.served.add(captured.treeId, captured.index, captured.blobs);
    const size = captured.manifest.entries.reduce((n, e) => n + (e.kind === "file" ? e.size : 0), 0);
    const statement = signPublication(deps.signer, { meshId, kind, name, version, tree: captured.treeId, size, files: captured.manifest.entries.length });
    const { refused } = await deps.set.add([{ id: statement.id, kind: "statement", bytes: statement.bytes }]);
    if (refused.length > 0) throw new CoderClawError("UNAVAILABLE", `the publication was not taken into the mesh's statements: ${refused[0]!.reason}`);
    await audit("registry.publish", `${name}@${version}`, "allowed", `${kind}: tree ${captured.treeId.slice(0, 16)}, ${statement.body.files} files, ${size} bytes (statement ${statement.id.slice(0, 16)})`);
    return { ...statement.body, id: statement.id };
  };

  const publishSkill = (dir: string, name: string, version: string): Promise<Publication> =>
    audited("registry.publish", `${name}@${version}`, async () => {
      const meshId = publishable("skill", name, version);
      refuseDenied(name);
      const captured = await captureSkillFolder(dir, deps.store);
      refuseDenied(captured.skillName);
      return publishCaptured("skill", name, version, meshId, captured);
    });

  /** One agent's file captured as a tree, written aside in the staging folder first. */
  const captureAgent = async (text: string): Promise<Awaited<ReturnType<typeof captureTree>>> => {
    const dir = join(staging, `agent-${randomBytes(6).toString("hex")}`);
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, PUBLISHED_AGENT_FILE), text);
      return await captureTree(dir, deps.store, AGENT_TREE_LIMITS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  const publishAgents = (file: string, team: string, version?: string): Promise<AgentPublished[]> =>
    audited("registry.publish", file, async () => {
      // Before anything is read or stored: a device that may not publish leaves no blobs behind.
      mayPublishHere();
      const text = await readBounded(file, MAX_CONFIG_BYTES);
      const agents = splitTeamAgents(text, file, team);
      const done: AgentPublished[] = [];
      for (const agent of agents) {
        const newest = catalogue.list("agent").find((p) => p.name === agent.name);
        const captured = await captureAgent(agent.text);
        // The same definition as the newest version: publishing it again would only add a statement.
        if (version === undefined && newest?.tree === captured.treeId) {
          done.push({ ...newest, changed: false });
          continue;
        }
        const next = version ?? (newest === undefined ? "1.0.0" : nextPatch(newest.version));
        const meshId = publishable("agent", agent.name, next);
        done.push({ ...(await publishCaptured("agent", agent.name, next, meshId, captured)), changed: true });
      }
      return done;
    });

  /** Write the tree into the skills folder: built aside, checked, then renamed into place over any older version. */
  const place = async (name: string, held: Awaited<ReturnType<typeof fetchTreeFromAny>>): Promise<string> => {
    const folder = installFolderName(name);
    const built = join(staging, `${folder}-${randomBytes(6).toString("hex")}`);
    await materializeTree(held.manifest, built, (d) => {
      const bytes = deps.store.readSync(d);
      if (bytes === undefined) throw new CoderClawError("NOT_FOUND", `blob ${d} of the tree is not held here whole`);
      return bytes;
    }, { limits: SKILL_TREE_LIMITS });
    try {
      const loaded = loadSkill(built, "user", {});
      if (loaded.info.disabledReason?.includes("SKILL.md") === true) throw new InvalidInputError(loaded.info.disabledReason.replace(built, folder), "SKILL.md");
      refuseDenied(loaded.info.name);
      const target = join(deps.skillsDir, folder);
      // Skills are found by the name in their SKILL.md, the first folder in lookup order winning: a package must not
      // shadow a skill this node has from elsewhere (a bundled one, another package), nor be shadowed by one.
      const other = deps.skillsFound().find((s) => s.name === loaded.info.name && resolve(s.dir) !== resolve(target));
      if (other !== undefined) throw new InvalidInputError(`its SKILL.md names skill ${loaded.info.name}, which ${other.dir} provides here already`, "SKILL.md");
      const old = `${built}.old`;
      await rename(target, old).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
      await rename(built, target);
      await rm(old, { recursive: true, force: true });
      return target;
    } finally {
      await rm(built, { recursive: true, force: true });
    }
  };

  const installSkill = (name: string, rangeText = "*", options: InstallOptions = {}): Promise<InstalledSkill> =>
    audited("registry.install", `${name}@${rangeText}`, async () => {
      checkName(name);
      refuseDenied(name);
      const range = parseRange(rangeText);
      const found = catalogue.resolve("skill", name, range);
      if ("missing" in found) throw new CoderClawError("NOT_FOUND", found.missing);
      const lock = await readLock();
      const locked = lock.skills[name];
      const dir = join(deps.skillsDir, installFolderName(name));
      // The same tree locked and its folder in place: nothing to do (a folder removed by hand is written again).
      if (locked?.tree === found.tree && (await lstat(dir).then((st) => st.isDirectory(), () => false))) {
        if (locked.range !== range.text) await writeLock({ ...lock, skills: { ...lock.skills, [name]: { ...locked, range: range.text } } });
        return { ...locked, range: range.text, name, dir, changed: false };
      }
      if (locked !== undefined && compareVersions(found.version, locked.version) < 0 && options.downgrade !== true) {
        throw new CoderClawError("INVALID_INPUT", `${name} is locked at ${locked.version}; ${found.version} would be a downgrade (pass --downgrade to allow it)`);
      }
      if (options.from !== undefined && !deps.connectedMembers().includes(options.from)) throw new InvalidInputError(`${options.from.slice(0, 60)} is not a member connected to this node`, "from");
      const peers = options.from !== undefined ? [options.from] : [found.publisher, ...deps.connectedMembers()].filter((p, i, all) => p !== self && all.indexOf(p) === i);
      // A tree this node serves already keeps its pin; one refused or not fetched whole leaves no blobs pinned (and
      // served after a restart): else every publication a member fails to install, required ones unasked, fills its disk.
      const servedBefore = deps.served.has(found.tree);
      let held: Awaited<ReturnType<typeof fetchTreeFromAny>>;
      try {
        held = await fetchTreeFromAny({ store: deps.store, client: deps.client, limits: SKILL_TREE_LIMITS }, found.tree, peers, registryHolder(found.tree));
        await place(name, held);
      } catch (err) {
        if (!servedBefore) await deps.store.unpin(registryHolder(found.tree));
        throw err;
      }
      const entry: LockEntry = { version: found.version, tree: found.tree, publication: found.id, publisher: found.publisher, range: range.text, installedAt: new Date().toISOString() };
      await writeLock({ ...lock, skills: { ...lock.skills, [name]: entry } });
      await deps.served.add(found.tree, held.index, held.blobs);
      if (locked !== undefined && !publishedHere(locked.tree)) await deps.served.drop(locked.tree);
      await audit("registry.install", `${name}@${found.version}`, "allowed", `tree ${found.tree.slice(0, 16)} by ${found.publisher} (statement ${found.id.slice(0, 16)})`);
      return { ...entry, name, dir, changed: true };
    });

  const yankSkill = (name: string, version: string, reason: string): Promise<{ yank: string }> =>
    audited("registry.yank", `${name}@${version}`, async () => {
      checkName(name);
      const meshId = deps.meshId();
      const target = catalogue.list("skill").find((p) => p.name === name && p.version === version);
      if (meshId === undefined || target === undefined) throw new CoderClawError("NOT_FOUND", `${name}@${version} is not published in this mesh`);
      if (target.yanked !== undefined) throw new CoderClawError("INVALID_INPUT", `${name}@${version} is ${target.yanked}`);
      if (target.publisher !== self && !deps.isAdmin(self)) throw new CoderClawError("PERMISSION_DENIED", `only the publisher of ${name}@${version} (${target.publisher}) or an admin yanks it`);
      const statement = signYank(deps.signer, { meshId, publication: target.id, reason });
      const { refused } = await deps.set.add([{ id: statement.id, kind: "statement", bytes: statement.bytes }]);
      if (refused.length > 0) throw new CoderClawError("UNAVAILABLE", `the yank was not taken into the mesh's statements: ${refused[0]!.reason}`);
      await audit("registry.yank", `${name}@${version}`, "allowed", `${reason} (statement ${statement.id.slice(0, 16)})`);
      return { yank: statement.id };
    });

  const updateSkills = async (names?: readonly string[]): Promise<InstalledSkill[]> => {
    const lock = await readLock();
    const done: InstalledSkill[] = [];
    for (const name of names ?? Object.keys(lock.skills)) {
      const locked = lock.skills[name];
      if (locked === undefined) throw new CoderClawError("NOT_FOUND", `${name} is not installed here (not in ${deps.lockFile})`);
      done.push(await installSkill(name, locked.range));
    }
    return done;
  };

  const removeSkill = (name: string): Promise<LockEntry> =>
    audited("registry.remove", name, async () => {
      checkName(name);
      const lock = await readLock();
      const locked = lock.skills[name];
      if (locked === undefined) throw new CoderClawError("NOT_FOUND", `${name} is not installed here (not in ${deps.lockFile})`);
      await uninstall(name, locked);
      await audit("registry.remove", `${name}@${locked.version}`, "allowed", `tree ${locked.tree.slice(0, 16)}`);
      return locked;
    });

  /**
   * Take an installed skill out: its folder moved aside in one rename before its lock entry goes (a kill in between
   * leaves no folder where skills are looked up; what is aside goes at the next start), then its blobs' pin unless
   * published here.
   */
  const uninstall = async (name: string, entry: LockEntry): Promise<void> => {
    const aside = join(staging, `${installFolderName(name)}-removed-${randomBytes(6).toString("hex")}`);
    await mkdir(staging, { recursive: true });
    await rename(join(deps.skillsDir, installFolderName(name)), aside).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
    const lock = await readLock();
    const { [name]: _removed, ...rest } = lock.skills;
    await writeLock({ ...lock, skills: rest });
    await rm(aside, { recursive: true, force: true });
    if (!publishedHere(entry.tree)) await deps.served.drop(entry.tree);
  };

  /** Remove each installed skill the organization policy denies, by its registry name or its SKILL.md name. */
  const removeDenied = (): Promise<Array<LockEntry & { name: string; denied: string }>> =>
    serially(async () => {
      const removed: Array<LockEntry & { name: string; denied: string }> = [];
      for (const [name, entry] of Object.entries((await readLock()).skills)) {
        const dir = join(deps.skillsDir, installFolderName(name));
        const skillName = await lstat(dir).then((st) => (st.isDirectory() ? loadSkill(dir, "user", {}).info.name : undefined), () => undefined);
        const denied = [name, skillName].find((n) => n !== undefined && deps.organisation().isSkillDenied(n));
        if (denied === undefined) continue;
        await uninstall(name, entry);
        await audit("registry.remove", `${name}@${entry.version}`, "allowed", `skill ${denied} is denied by the organization policy: removed (tree ${entry.tree.slice(0, 16)})`);
        removed.push({ ...entry, name, denied });
      }
      return removed;
    });

  const listSkills = async (): Promise<SkillListing> => {
    const lock = await readLock();
    const byName = new Map<string, Publication[]>();
    for (const p of catalogue.list("skill")) byName.set(p.name, [...(byName.get(p.name) ?? []), p]);
    const newest = (name: string): Publication | undefined => byName.get(name)?.find((p) => p.yanked === undefined);
    const installed = Object.entries(lock.skills).map(([name, entry]) => {
      const latest = newest(name)?.version;
      const yanked = byName.get(name)?.find((p) => p.id === entry.publication)?.yanked;
      return { name, ...entry, ...(latest !== undefined && { latest }), outdated: latest !== undefined && compareVersions(latest, entry.version) > 0, ...(yanked !== undefined && { yanked }) };
    });
    const available = [...byName.entries()].map(([name, versions]) => ({
      name,
      ...(newest(name) !== undefined && { latest: newest(name)!.version }),
      versions: versions.map((p) => p.version),
      yanked: versions.filter((p) => p.yanked !== undefined).map((p) => p.version),
      publisher: versions[0]!.publisher,
      ...(lock.skills[name] !== undefined && { installed: lock.skills[name].version }),
    }));
    const requiredMissing = (await missingRequired()).map((name) => {
      const found = catalogue.resolve("skill", name, parseRange("*"));
      return { name, problem: "missing" in found ? found.missing : deps.organisation().isSkillDenied(name) ? "denied as well as required" : "not installed yet" };
    });
    return { installed, available, requiredMissing };
  };

  const missingRequired = async (): Promise<string[]> => {
    const lock = await readLock();
    return deps.organisation().missingRequiredSkills(Object.keys(lock.skills)).filter((n) => packageNameSchema.safeParse(n).success);
  };

  return { catalogue, publishSkill, publishAgents, installSkill, yankSkill, updateSkills, removeSkill, removeDenied, listSkills, missingRequired, close: () => catalogue.close() };
}
