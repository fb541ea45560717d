import { resolve } from "node:path";
import { Command } from "commander";
import { isDeviceId } from "../../../identity/device-id.js";
import { InvalidInputError } from "../../../src/contract/errors.js";
import type { InstalledSkill, SkillListing } from "../../registry/node-registry.js";
import type { Publication } from "../../registry/catalogue.js";
import type { LockEntry } from "../../../src/registry/lock-file.js";
import { EXIT } from "../exit-codes.js";
import { printJson, table } from "../output.js";
import { admin } from "./mesh.js";

/**
 * `--registry`: in a mesh the registry is the mesh itself, so it names this node's mesh (by name or id), or a member
 * (device id) to fetch from; the member it returns, if any.
 */
async function registryPeer(cmd: Command, registry: string | undefined): Promise<string | undefined> {
  if (registry === undefined) return undefined;
  if (isDeviceId(registry)) return registry;
  const status = (await admin(cmd, "mesh.status", {}, false)) as { meshId: string | null; name: string | null };
  if (registry !== status.meshId && registry !== status.name) {
    throw new InvalidInputError(`${JSON.stringify(registry.slice(0, 80))} is neither this node's mesh (${status.name ?? "none"}${status.meshId === null ? "" : `, ${status.meshId}`}) nor a device id: the mesh is the registry`, "--registry");
  }
  return undefined;
}

/** `team/name@range` as name and range. */
function splitSpec(spec: string): { name: string; range?: string } {
  const at = spec.lastIndexOf("@");
  return at <= 0 ? { name: spec } : { name: spec.slice(0, at), range: spec.slice(at + 1) };
}

/** `coderclaw skill publish|install|list|remove`: skills shared through the mesh, signed by their publisher. */
export function skillCommand(setExit: (code: number) => void): Command {
  const skill = new Command("skill").description("skills shared through the mesh: publish a folder, install by name and version range, list, remove");

  skill
    .command("publish")
    .description("publish a skill folder (SKILL.md and its files) to the mesh under a name and version (needs registry:publish)")
    .argument("<dir>", "the skill folder")
    .requiredOption("--as <name>", "the name to publish under, like team/security-scanner")
    .requiredOption("--version <version>", "the version, like 1.2.0")
    .option("--json", "print JSON")
    .action(async (dir: string, opts: { as: string; version: string; json?: boolean }, cmd: Command) => {
      const pub = (await admin(cmd, "skill.publish", { dir: resolve(dir), name: opts.as, version: opts.version }, false)) as Publication;
      if (opts.json) printJson(pub);
      else process.stdout.write(`published ${pub.name}@${pub.version}: tree ${pub.tree}, ${pub.files} files, ${pub.size} bytes (statement ${pub.id.slice(0, 16)})\n`);
      setExit(EXIT.ok);
    });

  skill
    .command("install")
    .description("install the newest published version a range accepts (1.2.0, ^1.2.0, ~1.2.0; default: newest), from any member that holds it")
    .argument("<name[@range]>", "e.g. team/security-scanner@^1.2.0")
    .option("--registry <mesh|member>", "this node's mesh (by name or id), or a member's device id to fetch from")
    .option("--downgrade", "allow a version older than the one the lock file records")
    .option("--json", "print JSON")
    .action(async (spec: string, opts: { registry?: string; downgrade?: boolean; json?: boolean }, cmd: Command) => {
      const from = await registryPeer(cmd, opts.registry);
      const { name, range } = splitSpec(spec);
      const done = (await admin(cmd, "skill.install", { name, ...(range !== undefined && { range }), ...(opts.downgrade === true && { downgrade: true }), ...(from !== undefined && { from }) }, false)) as InstalledSkill;
      if (opts.json) printJson(done);
      else process.stdout.write(done.changed ? `installed ${done.name}@${done.version} (tree ${done.tree.slice(0, 16)}) in ${done.dir}\n` : `${done.name}@${done.version} is installed already\n`);
      setExit(EXIT.ok);
    });

  skill
    .command("yank")
    .description("withdraw a published version (its publisher or an admin): no member installs it for a range any more")
    .argument("<name@version>", "e.g. team/security-scanner@1.2.0")
    .requiredOption("--reason <text>", "why, shown to every member")
    .option("--json", "print JSON")
    .action(async (spec: string, opts: { reason: string; json?: boolean }, cmd: Command) => {
      const { name, range } = splitSpec(spec);
      if (range === undefined) throw new InvalidInputError(`${JSON.stringify(spec.slice(0, 100))} names no version: use team/name@1.2.0`, "name@version");
      const done = (await admin(cmd, "skill.yank", { name, version: range, reason: opts.reason }, false)) as { yank: string };
      if (opts.json) printJson(done);
      else process.stdout.write(`yanked ${name}@${range} (statement ${done.yank.slice(0, 16)}); every member applies it once it arrives\n`);
      setExit(EXIT.ok);
    });

  skill
    .command("update")
    .description("install the newest version each installed skill's range accepts (the range it was installed with)")
    .argument("[names...]", "skills to update (default: every installed one)")
    .option("--json", "print JSON")
    .action(async (names: string[], opts: { json?: boolean }, cmd: Command) => {
      const done = (await admin(cmd, "skill.update", names.length === 0 ? {} : { names }, false)) as InstalledSkill[];
      if (opts.json) printJson(done);
      else for (const s of done) process.stdout.write(s.changed ? `updated ${s.name} to ${s.version} (range ${s.range})\n` : `${s.name}@${s.version} is the newest ${s.range} allows\n`);
      setExit(EXIT.ok);
    });

  skill
    .command("list")
    .description("skills installed here (and whether a newer version is published) and those the mesh offers")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = (await admin(cmd, "skill.list", {}, false)) as SkillListing;
      if (opts.json) printJson(list);
      else {
        const t = table(["skill", "installed", "latest", "state"]);
        const installed = new Map(list.installed.map((s) => [s.name, s]));
        for (const a of list.available) {
          const here = installed.get(a.name);
          t.push([a.name, here?.version ?? "", a.latest ?? "(all yanked)", here === undefined ? "available" : here.yanked !== undefined ? "installed, yanked" : here.outdated ? "outdated" : "installed"]);
        }
        for (const s of list.installed) if (!list.available.some((a) => a.name === s.name)) t.push([s.name, s.version, "", "installed (no longer published)"]);
        process.stdout.write(t.length === 0 ? "no skills published in this mesh\n" : `${t.toString()}\n`);
      }
      setExit(EXIT.ok);
    });

  skill
    .command("remove")
    .description("remove an installed skill and its lock file entry")
    .argument("<name>", "e.g. team/security-scanner")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const removed = (await admin(cmd, "skill.remove", { name }, false)) as LockEntry;
      if (opts.json) printJson(removed);
      else process.stdout.write(`removed ${name}@${removed.version}\n`);
      setExit(EXIT.ok);
    });
  return skill;
}
