import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import ms from "ms";
import { CoderClawError, InvalidInputError } from "../../../src/contract/errors.js";
import { DIGEST_PATTERN } from "../../../src/workspace/manifest.js";
import { commitsIn } from "../../../src/workspace/agent-repository.js";
import { parseInput } from "../../../src/contract/parse-input.js";
import { EXIT } from "../exit-codes.js";
import { printJson } from "../output.js";
import { writeResultArtifacts } from "../../workspaces/result-artifacts.js";
import { applyResultCommits, applyResultPatch } from "../../workspaces/result-patch.js";
import { admin, withAdmin } from "./mesh.js";
import { serverAdapter, type AccessOptions } from "../runtime-access.js";
import type { HTTPTransportAdapter } from "../../../src/transport/http-adapter.js";
import { terminalSafe } from "../terminal-guard.js";

const ResultFileSchema = z.object({ kind: z.enum(["patch", "commits", "artifact"]), path: z.string().min(1).max(4096), size: z.number().int().nonnegative(), chunks: z.array(z.string().regex(DIGEST_PATTERN)).max(1_000_000) });
const ChangesSchema = z.object({
  result: z.object({ patchBytes: z.number(), changed: z.object({ added: z.number(), modified: z.number(), deleted: z.number() }), artifacts: z.array(z.object({ path: z.string(), size: z.number() })), commits: z.number().int().nonnegative().optional() }).loose(),
  files: z.array(ResultFileSchema).max(100_000),
});
const BlobsSchema = z.object({ blobs: z.array(z.string()).min(1).max(4096) });

/** A task's full id from what the user typed: a full id or a unique prefix of one. */
export type TaskIdResolver = (cmd: Command, text: string) => Promise<string>;

const ArtifactListSchema = z.object({ artifacts: z.array(z.object({ path: z.string().min(1).max(4096), size: z.number() })).max(10_000) });

/** How many files a git patch adds, deletes and modifies, read from its headers. */
function patchCounts(patch: Buffer): { added: number; modified: number; deleted: number } {
  const text = patch.toString("utf8");
  const files = (text.match(/^diff --git /gm) ?? []).length;
  const added = (text.match(/^new file mode /gm) ?? []).length;
  const deleted = (text.match(/^deleted file mode /gm) ?? []).length;
  return { added, deleted, modified: files - added - deleted };
}

/** The same as {@link changesOf}, read from the node's HTTP API (`--server`): the patch or the commits, or the list of artifacts and then each. */
async function changesOverHttp(server: HTTPTransportAdapter, taskId: string, grant: string | undefined, want: WantedChanges): Promise<Awaited<ReturnType<typeof changesOf>>> {
  const id = encodeURIComponent(taskId);
  const query = grant === undefined ? "" : `?grant=${encodeURIComponent(grant)}`;
  const patch = want === "patch" ? await server.fetchBytes(`/tasks/${id}/patch${query}`) : Buffer.alloc(0);
  const commits = want === "commits" ? await server.fetchBytes(`/tasks/${id}/commits${query}`) : Buffer.alloc(0);
  const { artifacts: listed } = parseInput(ArtifactListSchema, await server.call("GET", `/tasks/${id}/artifacts${query}`));
  const artifacts = [];
  if (want === "artifacts") for (const a of listed) artifacts.push({ path: a.path, bytes: await server.fetchBytes(`/tasks/${id}/artifacts/${a.path.split("/").map(encodeURIComponent).join("/")}${query}`) });
  return { result: { patchBytes: patch.byteLength, changed: patchCounts(patch), artifacts: listed, ...(want === "commits" && { commits: commitsIn(commits) }) }, patch, commits, artifacts };
}

/** Which bytes of a result a command reads: the patch (`diff`, `apply`), the agent's commits (their `--commits`) or the artifacts (`artifacts`). */
type WantedChanges = "patch" | "commits" | "artifacts";

/** The result file kind each of {@link WantedChanges} reads. */
const KIND_OF: Readonly<Record<WantedChanges, z.infer<typeof ResultFileSchema>["kind"]>> = { patch: "patch", commits: "commits", artifacts: "artifact" };

/** Where the node looks for a result it does not hold: `--grant` (from `task grant` on the submitter) and `--from` members. */
interface SourceOptions {
  grant?: string;
  from?: string[];
}

/** `--grant` and `--from`, on each command that reads a task's changes. */
function withSources(command: Command): Command {
  return command
    .option("--grant <token>", "a grant the task's submitter made for this device (`coderclaw task grant <id> --to <this device>` there): fetch the result from any member holding it")
    .option("--from <device...>", "members to ask for the result first (after the submitter when it is connected)");
}

/**
 * What a task that carried code changed, asked of the running node (which
 * fetches it from a member that holds it), or of `--server`: the result's
 * record, and the bytes of the part `want` names (the other comes back empty).
 */
async function changesOf(cmd: Command, taskId: string, want: WantedChanges, sources: SourceOptions = {}): Promise<{ result: z.infer<typeof ChangesSchema>["result"]; patch: Buffer; commits: Buffer; artifacts: Array<{ path: string; bytes: Buffer }> }> {
  const server = serverAdapter(cmd.optsWithGlobals<AccessOptions>());
  if (server !== undefined) {
    if (sources.from !== undefined) throw new InvalidInputError("--from is for the node on this machine, not --server", "--from");
    try {
      return await changesOverHttp(server, taskId, sources.grant, want);
    } finally {
      await server.close();
    }
  }
  // The node answers the files, then their bytes some blobs at a time: a line of its control socket is bounded, a result is not.
  return withAdmin(cmd, false, async (call) => {
    const { result, files } = parseInput(ChangesSchema, await call("task.changes", { taskId, ...sources }));
    // As the HTTP API answers 404 for it, so that `--server` and the node on this machine end the same way.
    if (want === "commits" && result.commits === undefined) throw new CoderClawError("NOT_FOUND", `task ${taskId} was not submitted with --commits: its agent's work is in its patch (task diff)`);
    const wanted = files.filter((f) => f.kind === KIND_OF[want]);
    const digests = wanted.flatMap((f) => f.chunks);
    const blobs: Buffer[] = [];
    while (blobs.length < digests.length) {
      const asked = digests.slice(blobs.length, blobs.length + 4096);
      const answered = parseInput(BlobsSchema, await call("task.blobs", { taskId, digests: asked, ...sources })).blobs;
      if (answered.length > asked.length) throw new CoderClawError("PROTOCOL", `the node answered ${answered.length} blobs for ${asked.length}`);
      for (const [i, text] of answered.entries()) {
        const blob = Buffer.from(text, "base64");
        if (createHash("sha256").update(blob).digest("hex") !== asked[i]) throw new CoderClawError("PROTOCOL", `the node answered other bytes for blob ${asked[i]}`);
        blobs.push(blob);
      }
    }
    let next = 0;
    const bytesOf = (file: z.infer<typeof ResultFileSchema>): Buffer => {
      const bytes = Buffer.concat(blobs.slice(next, (next += file.chunks.length)));
      if (bytes.byteLength !== file.size) throw new CoderClawError("PROTOCOL", `${file.path} is ${file.size} bytes, its blobs ${bytes.byteLength}`);
      return bytes;
    };
    const read = wanted.map((file) => ({ path: file.path, bytes: bytesOf(file) }));
    const only = (kind: WantedChanges): Buffer => (want === kind ? (read[0]?.bytes ?? Buffer.alloc(0)) : Buffer.alloc(0));
    return { result, patch: only("patch"), commits: only("commits"), artifacts: want === "artifacts" ? read : [] };
  });
}

/** How many commits a task's agent made, in words. */
function commitsSaid(taskId: string, count: number | undefined): string {
  return `task ${taskId}'s agent made ${count ?? 0} commit(s)`;
}

/** `task apply --commits`: the agent's commits on top of `target`'s HEAD, or nothing and why; answers the exit code. */
async function applyCommits(cmd: Command, id: string, target: string, opts: SourceOptions & { check?: boolean; "3way"?: boolean }): Promise<number> {
  const { result, commits } = await changesOf(cmd, id, "commits", sourcesOf(opts));
  if (commits.byteLength === 0) {
    process.stdout.write(`${commitsSaid(id, result.commits)}: nothing to apply\n`);
    return EXIT.ok;
  }
  const outcome = await applyResultCommits(target, commits, { check: opts.check === true, threeWay: opts["3way"] === true });
  if (!outcome.ok) {
    process.stderr.write(`coderclaw: task ${id}'s commits ${outcome.why === "unsafe" ? "are refused for" : "do not go onto"} ${target}; nothing was changed:\n${terminalSafe(outcome.message)}\n`);
    return EXIT.taskFailed;
  }
  process.stdout.write(outcome.applied ? `${outcome.commits} commit(s) of task ${id} are on ${target}'s HEAD\n` : `task ${id}'s ${outcome.commits} commit(s) go onto ${target} cleanly\n`);
  return EXIT.ok;
}

/** The source options given, without keys for those absent. */
function sourcesOf(opts: SourceOptions): SourceOptions {
  return { ...(opts.grant !== undefined && { grant: opts.grant }), ...(opts.from !== undefined && { from: opts.from }) };
}

const CleanedSchema = z.object({ released: z.array(z.string()), removed: z.number(), freedBytes: z.number() });
const GrantSchema = z.object({ taskId: z.string(), tree: z.string(), grantee: z.string(), expires: z.string(), grant: z.string() });

/** A duration option (30m, 2h, 7d) in ms. */
function duration(flag: string): (v: string) => number {
  return (v) => {
    const n = ms(v as ms.StringValue);
    if (typeof n !== "number" || !Number.isFinite(n) || n < 0) throw new InvalidInputError(`"${v.slice(0, 40)}" is not a duration such as 30m, 2h or 7d`, flag);
    return n;
  };
}

/** `task diff`, `task apply`, `task artifacts` and `task clean`, added to `coderclaw task`. */
export function addTaskChangeCommands(task: Command, setExit: (code: number) => void, resolveId: TaskIdResolver): void {
  task
    .command("clean")
    .description("let go of what tasks that carried code keep on this node: their results (so they can no longer be diffed or applied) and every blob nothing else holds")
    .argument("[ids...]", "tasks whose results go (full ids or unique prefixes; default: every task's)")
    .option("--older-than <duration>", "only results kept at least this long (30m, 2h, 7d)", duration("--older-than"))
    .option("--json", "print JSON")
    .action(async (idArgs: string[], opts: { olderThan?: number; json?: boolean }, cmd: Command) => {
      const taskIds = idArgs.length === 0 ? undefined : await Promise.all(idArgs.map((a) => resolveId(cmd, a)));
      const done = parseInput(CleanedSchema, await admin(cmd, "task.clean", { ...(taskIds !== undefined && { taskIds }), ...(opts.olderThan !== undefined && { olderThanMs: opts.olderThan }) }, false));
      if (opts.json) printJson(done);
      else process.stdout.write(`released ${done.released.length} task result${done.released.length === 1 ? "" : "s"}; removed ${done.removed} blobs and trees, ${done.freedBytes} bytes\n`);
      setExit(EXIT.ok);
    });

  task
    .command("grant")
    .description("let another device fetch what a task you submitted with --repo changed, from any member that holds it (prints a token for its `task diff|apply|artifacts --grant`)")
    .argument("<id>", "task id, or a unique prefix of one")
    .requiredOption("--to <device>", "the device id that may fetch it")
    .option("--for <duration>", "how long the grant holds (30m, 2h, 7d)", duration("--for"), 24 * 3600_000)
    .option("--json", "print JSON")
    .action(async (idArg: string, opts: { to: string; for: number; json?: boolean }, cmd: Command) => {
      const granted = parseInput(GrantSchema, await admin(cmd, "task.grant", { taskId: await resolveId(cmd, idArg), grantee: opts.to, ttlMs: opts.for }, false));
      if (opts.json) printJson(granted);
      else process.stdout.write(`${granted.grant}\n`);
      setExit(EXIT.ok);
    });

  withSources(task.command("diff"))
    .description("print what a task that carried code (--repo) changed, as a git patch")
    .argument("<id>", "task id, or a unique prefix of one")
    .option("--stat", "only how many files were added, modified and deleted")
    .option("--commits", "the commits its agent made instead (submitted with --commits), as an mbox for `git am`")
    .option("--json", "print JSON")
    .action(async (idArg: string, opts: SourceOptions & { stat?: boolean; json?: boolean; commits?: boolean }, cmd: Command) => {
      const id = await resolveId(cmd, idArg);
      if (opts.commits === true) {
        const { result, commits } = await changesOf(cmd, id, "commits", sourcesOf(opts));
        if (opts.json) printJson({ commits: result.commits ?? 0, series: commits.toString("utf8") });
        else if (opts.stat || commits.byteLength === 0) process.stdout.write(`${commitsSaid(id, result.commits)} (${commits.byteLength} bytes)\n`);
        else process.stdout.write(commits);
        setExit(EXIT.ok);
        return;
      }
      const { result, patch } = await changesOf(cmd, id, "patch", sourcesOf(opts));
      if (opts.json) printJson({ ...result, patch: patch.toString("utf8") });
      else if (opts.stat || patch.byteLength === 0) process.stdout.write(`${result.changed.added} added, ${result.changed.modified} modified, ${result.changed.deleted} deleted (${patch.byteLength} bytes of patch)\n`);
      else process.stdout.write(patch);
      setExit(EXIT.ok);
    });

  withSources(task.command("apply"))
    .description("apply what a task that carried code changed onto this tree; on a conflict nothing is changed")
    .argument("<id>", "task id, or a unique prefix of one")
    .option("--repo <path>", "the tree to apply to, as the task was submitted with --repo (default: the current directory)")
    .option("--check", "only say whether it applies cleanly")
    .option("--3way", "fall back to a three-way merge where the tree has moved on (git repositories)")
    .option("--commits", "make the commits its agent made (submitted with --commits) commits of this repository, on top of its HEAD")
    .action(async (idArg: string, opts: SourceOptions & { repo?: string; check?: boolean; "3way"?: boolean; commits?: boolean }, cmd: Command) => {
      const id = await resolveId(cmd, idArg);
      if (opts.commits === true) {
        setExit(await applyCommits(cmd, id, resolve(opts.repo ?? process.cwd()), opts));
        return;
      }
      const { patch } = await changesOf(cmd, id, "patch", sourcesOf(opts));
      if (patch.byteLength === 0) {
        process.stdout.write(`task ${id} changed nothing\n`);
        setExit(EXIT.ok);
        return;
      }
      const target = resolve(opts.repo ?? process.cwd());
      const outcome = await applyResultPatch(target, patch, { check: opts.check === true, threeWay: opts["3way"] === true });
      if (!outcome.ok) {
        const said = {
          unsafe: `task ${id}'s patch is refused for ${target}; nothing was changed: ${outcome.message}`,
          "does-not-apply": `task ${id} does not apply to ${target}; nothing was changed:\n${outcome.message}`,
          conflicts: `task ${id} conflicts with ${target}; nothing was changed:\n${outcome.message}`,
          failed: `applying task ${id} to ${target} failed:\n${outcome.message}`,
        }[outcome.why];
        process.stderr.write(`coderclaw: ${terminalSafe(said)}\n`);
        setExit(EXIT.taskFailed);
        return;
      }
      process.stdout.write(outcome.applied ? `applied task ${id} to ${target}\n` : `task ${id} applies cleanly to ${target}\n`);
      setExit(EXIT.ok);
    });

  withSources(task.command("artifacts"))
    .description("write the artifacts a task that carried code brought back (--artifacts GLOB at submit)")
    .argument("<id>", "task id, or a unique prefix of one")
    .option("--out <dir>", "where to write them (default: ./artifacts-<first 8 of the id>)")
    .option("--json", "print JSON (paths and sizes)")
    .action(async (idArg: string, opts: SourceOptions & { out?: string; json?: boolean }, cmd: Command) => {
      const id = await resolveId(cmd, idArg);
      const { result, artifacts } = await changesOf(cmd, id, "artifacts", sourcesOf(opts));
      const out = resolve(opts.out ?? `artifacts-${id.slice(0, 8)}`);
      const refused = await writeResultArtifacts(out, artifacts);
      if (refused !== undefined) {
        process.stderr.write(`coderclaw: task ${id}'s artifacts are refused; nothing was written: ${terminalSafe(refused)}\n`);
        setExit(EXIT.taskFailed);
        return;
      }
      if (opts.json) printJson({ out, artifacts: result.artifacts });
      else process.stdout.write(artifacts.length === 0 ? `task ${id} brought no artifacts back\n` : `${artifacts.length} artifact(s) in ${out}\n`);
      setExit(EXIT.ok);
    });
}
