import { Command, Option } from "commander";
import ms from "ms";
import { TASK_STATUSES, TERMINAL_STATUSES, type TaskEvent, type TaskStatus, type TaskSubmitRequest, type TaskUpdateEvent, type TransportAdapter } from "../../../src/contract/types.js";
import { DEFAULT_MAX_INPUT_BYTES } from "../../../src/engine/submit-schema.js";
import { EXIT } from "../exit-codes.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import { followTask, type FollowResult } from "../follow.js";
import { resolveIdPrefix } from "../id-prefix.js";
import { eventLines, printJson, queueTable, taskDetails, taskTable } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import { submitOptionsFromFlags, type SubmitFlags } from "../submit-options.js";
import { openAccess, type AccessOptions } from "../runtime-access.js";
import { addTaskChangeCommands } from "./task-changes.js";
import { resolveDeviceId } from "./mesh.js";
import { isDeviceId } from "../../../identity/device-id.js";
import { terminalSafe } from "../terminal-guard.js";

/** Run `fn` with the runtime, closing it afterwards; returns the exit code. */
async function withRuntime(cmd: Command, runTasks: boolean, fn: (adapter: TransportAdapter, kind: string) => Promise<number>): Promise<number> {
  const { adapter, kind } = await openAccess(cmd.optsWithGlobals<AccessOptions>(), runTasks);
  try {
    return await fn(adapter, kind);
  } finally {
    await adapter.close();
  }
}

/** Exit code for a finished task. */
const exitFor = (status: TaskStatus): number => (status === "completed" ? EXIT.ok : EXIT.taskFailed);

const FULL_TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A task id from a full id or a unique prefix of one (at least 4 characters) among the newest 1000 tasks (what every API lists at once). */
export async function resolveTaskId(adapter: TransportAdapter, text: string): Promise<string> {
  if (FULL_TASK_ID.test(text)) return text;
  const ids = (await adapter.listTasks({ limit: 1000 })).map((t) => t.id);
  return resolveIdPrefix("task", text, ids, (t) => FULL_TASK_ID.test(t));
}

/** Ctrl-C as an abort signal, for as long as a command follows a task. */
function onInterrupt(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  process.once("SIGINT", abort);
  return { signal: controller.signal, dispose: () => process.off("SIGINT", abort) };
}

/**
 * Follow a task to its end and print its outcome (`--wait`, `task wait`). Ctrl-C
 * stops following, not the task: it says so and how to re-attach, unless
 * `--cancel-on-interrupt` asked to cancel it.
 */
async function followToEnd(adapter: TransportAdapter, id: string, kind: string, opts: { json?: boolean; cancelOnInterrupt?: boolean }): Promise<number> {
  const mode = opts.json ? "quiet" : process.stderr.isTTY ? "tty" : "lines";
  const interrupt = onInterrupt();
  let followed: FollowResult;
  try {
    followed = await followTask(adapter, id, mode, interrupt.signal);
  } finally {
    interrupt.dispose();
  }
  if (followed.interrupted) {
    if (opts.cancelOnInterrupt) {
      const cancelled = await adapter.cancelTask(id);
      process.stderr.write(cancelled ? `interrupted: cancelled task ${id}\n` : `interrupted: task ${id} had already finished\n`);
    } else if (kind === "in-process") {
      process.stderr.write(`interrupted: task ${id} ran in this process (no node runs on this data directory) and stops with it; coderclaw task show ${id}\n`);
    } else {
      process.stderr.write(`interrupted: task ${id} keeps running; re-attach with: coderclaw task wait ${id}\n`);
    }
    return EXIT.interrupted;
  }
  const { state: final, error } = followed;
  if (opts.json) printJson(final);
  else process.stdout.write(final.status === "completed" ? `${final.output ?? ""}\n` : `${final.status}: ${error ?? ""}\n`);
  return exitFor(final.status);
}

/** Reads a task input from stdin (`task submit -`), refusing more than `maxBytes`. */
async function readStdin(maxBytes: number): Promise<string> {
  if (process.stdin.isTTY) throw new CoderClawError("INVALID_INPUT", "task submit -: stdin is a terminal; pipe the input in, e.g. `cat prompt.md | coderclaw task submit -`", { field: "input" });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      process.stdin.destroy();
      throw new CoderClawError("INVALID_INPUT", `task submit -: stdin holds more than ${maxBytes} bytes, the largest task input`, { field: "input" });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const METADATA_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** `--metadata key=value`, repeatable; a key given twice or not an identifier is refused. */
function collectMetadata(pair: string, previous: Record<string, string>): Record<string, string> {
  const eq = pair.indexOf("=");
  const key = eq < 0 ? pair : pair.slice(0, eq);
  if (eq < 0 || !METADATA_KEY.test(key)) throw new CoderClawError("INVALID_INPUT", `--metadata: ${JSON.stringify(pair)} is not key=value with a key like build.id (letters, digits, _ . -; at most 64)`, { field: "metadata" });
  if (key === "timeoutMs") throw new CoderClawError("INVALID_INPUT", "--metadata: use --timeout for timeoutMs", { field: "metadata" });
  if (Object.hasOwn(previous, key)) throw new CoderClawError("INVALID_INPUT", `--metadata: key ${key} given twice`, { field: "metadata" });
  return { ...previous, [key]: pair.slice(eq + 1) };
}

/** `--timeout`: a positive duration (90s, 10m, 2h). */
function parseTimeout(text: string): number {
  const span = ms(text as ms.StringValue);
  if (typeof span !== "number" || !Number.isFinite(span) || span < 1000) throw new CoderClawError("INVALID_INPUT", `--timeout: ${JSON.stringify(text)} is not a duration of at least 1s, e.g. 90s, 10m, 2h`, { field: "timeout" });
  return span;
}

/** `coderclaw task ...` */
export function taskCommand(setExit: (code: number) => void): Command {
  const task = new Command("task")
    .description("submit, inspect and cancel tasks")
    .addHelpText("after", "\nExamples:\n  coderclaw task submit -a shell 'npm test' --wait\n  coderclaw task list --status running\n  coderclaw task wait 01a2          # a unique prefix of the id is enough\n  coderclaw task logs -f 01a2\n");

  task
    .command("submit")
    .description("submit a task; with --wait, follow it to the end and exit 0 (completed) or 1 (failed/cancelled)")
    .addHelpText("after", "\nExamples:\n  coderclaw task submit -a echo hello --wait\n  coderclaw task submit -a shell 'make test' --repo --wait    # run on a copy of this directory\n  coderclaw task submit -a shell 'nvidia-smi' --requires gpu\n  git diff | coderclaw task submit -a code-reviewer - --wait\n")
    .argument("<input>", "the task input (prompt, command, ...); - reads it from stdin (at most 1 MiB)")
    .option("-a, --agent <id>", "agent to run it")
    .option("-d, --description <text>", "short description (default: the first line of the input)")
    .option("-s, --session <id>", "session the task belongs to")
    .option("-w, --wait", "follow the task until it ends, with live progress")
    .option("--cancel-on-interrupt", "with --wait: Ctrl-C cancels the task (without it, the task keeps running and the command to re-attach is printed)")
    .option("-m, --model <model>", "model for the agent to use (agents that take one)")
    .option("--timeout <duration>", "stop the task after this long, e.g. 90s, 10m (sets metadata.timeoutMs, which the shell agent honours)")
    .option("--metadata <key=value>", "metadata for the task (repeatable)", collectMetadata, {})
    .option("-r, --route <where>", "auto (in a mesh: place by capability, slots, labels, latency), local (this node), a member's device id, name or id prefix, or remote:auto[gpu,...]", "auto")
    .option("-p, --priority <n>", "among tasks waiting on the node, higher goes first (-100..100, default 0)")
    .option("--requires <list>", "labels and resources the node that runs it must have: gpu,cpu>=4,memoryGiB>=16")
    .option("--deadline <when>", "fail it if it has not started by then: a duration (30m, 2h) or a date")
    .option("--no-wait-for-peer", "refuse at once when no member can start it now, instead of waiting for one")
    .option("--repo [path]", "send a snapshot of this directory (default: the current one) with the task; the executor works on its own copy, and `task diff` / `task apply` bring the changes back")
    .option("--artifacts <glob>", "with --repo: files to bring back with the result (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--commits", "with --repo: make the workspace a git repository whose HEAD is the snapshot; the agent's commits come back (task diff|apply --commits)")
    .option("--json", "print JSON")
    .action(async (inputArg: string, opts: SubmitFlags & { agent?: string; description?: string; session?: string; wait?: boolean; json?: boolean; cancelOnInterrupt?: boolean; model?: string; timeout?: string; metadata: Record<string, string> }, cmd: Command) => {
      const input = inputArg === "-" ? await readStdin(DEFAULT_MAX_INPUT_BYTES) : inputArg;
      const request: TaskSubmitRequest = { input, description: opts.description ?? (input.split("\n")[0]!.slice(0, 200) || "task") };
      if (opts.agent !== undefined) request.agentId = opts.agent;
      if (opts.session !== undefined) request.sessionId = opts.session;
      if (opts.model !== undefined) request.model = opts.model;
      const metadata: Record<string, unknown> = { ...opts.metadata, ...(opts.timeout !== undefined && { timeoutMs: parseTimeout(opts.timeout) }) };
      if (Object.keys(metadata).length > 0) request.metadata = metadata;
      // A member named by its name or a prefix of its id or fingerprint, as everywhere else (over --server, among the server's devices).
      const byPrefix = !["auto", "local"].includes(opts.route) && !opts.route.startsWith("remote:") && !isDeviceId(opts.route);
      const options = submitOptionsFromFlags(byPrefix ? { ...opts, route: await resolveDeviceId(cmd, opts.route) } : opts);
      setExit(
        await withRuntime(cmd, opts.wait === true, async (adapter, kind) => {
          const accepted = await adapter.submitTask(request, options);
          if (!opts.wait) {
            if (opts.json) printJson(accepted);
            else {
              process.stdout.write(`${accepted.id}\n`);
              if (kind === "storage") process.stderr.write("queued: no node is running on this data directory; it runs at the next `coderclaw start`\n");
              else if (accepted.placement?.reason !== undefined) process.stderr.write(`pending: ${terminalSafe(accepted.placement.reason)}\n`);
            }
            return EXIT.ok;
          }
          if (!opts.json) process.stderr.write(`task ${accepted.id}\n`);
          return followToEnd(adapter, accepted.id, kind, opts);
        }),
      );
    });

  task
    .command("list")
    .description("list tasks, newest first")
    .addOption(new Option("--status <status>", "only tasks with this status").choices(TASK_STATUSES as string[]))
    .option("-s, --session <id>", "only tasks of this session")
    .option("-n, --limit <n>", "at most this many", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new CoderClawError("INVALID_INPUT", `--limit: ${JSON.stringify(v)} is not a whole number 1..10000`, { field: "limit" });
      return n;
    }, 50)
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .addHelpText("after", "\nExamples:\n  coderclaw task list --status running\n  coderclaw task list --fields id,status,agentId\n  coderclaw task list --json --fields id,placement.runsOn\n")
    .action(async (opts: { status?: TaskStatus; session?: string; limit: number; json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const tasks = await adapter.listTasks({ limit: opts.limit, ...(opts.status && { status: opts.status }), ...(opts.session && { sessionId: opts.session }) });
          if (opts.fields) printFields(tasks, opts.fields, opts.json === true);
          else if (opts.json) printJson(tasks);
          else process.stdout.write(tasks.length === 0 ? "no tasks\n" : taskTable(tasks) + "\n");
          return EXIT.ok;
        }),
      );
    });

  task
    .command("show")
    .description("show one task")
    .argument("<id>", "task id")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (idArg: string, opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const id = await resolveTaskId(adapter, idArg);
          const state = await adapter.getTaskState(id);
          if (!state) {
            process.stderr.write(`coderclaw: task not found: ${id}\n`);
            return EXIT.usage;
          }
          if (opts.fields) printFields([state], opts.fields, opts.json === true);
          else if (opts.json) printJson(state);
          else process.stdout.write(taskDetails(state) + "\n");
          return EXIT.ok;
        }),
      );
    });

  task
    .command("events")
    .description("show a task's full history")
    .argument("<id>", "task id")
    .option("--json", "print JSON")
    .action(async (idArg: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const id = await resolveTaskId(adapter, idArg);
          let events;
          if (adapter.getTaskEvents) events = await adapter.getTaskEvents(id);
          else {
            events = [];
            for await (const u of adapter.streamTaskUpdates(id)) events.push(u);
          }
          if (opts.json) printJson(events);
          else process.stdout.write(eventLines(events) + "\n");
          return EXIT.ok;
        }),
      );
    });

  task
    .command("wait")
    .description("re-attach to a task: follow it to its end with live progress; exit 0 (completed) or 1 (failed/cancelled)")
    .argument("<id>", "task id")
    .option("--cancel-on-interrupt", "Ctrl-C cancels the task (without it, the task keeps running)")
    .option("--json", "print the final state as JSON")
    .action(async (idArg: string, opts: { json?: boolean; cancelOnInterrupt?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter, kind) => {
          const id = await resolveTaskId(adapter, idArg);
          if ((await adapter.getTaskState(id)) === null) throw new CoderClawError("NOT_FOUND", `no task ${id}`);
          return followToEnd(adapter, id, kind, opts);
        }),
      );
    });

  task
    .command("logs")
    .description("a task's history; with -f, then follow it live until it ends")
    .argument("<id>", "task id")
    .option("-f, --follow", "keep following until the task ends (Ctrl-C stops following; the task runs on)")
    .option("--json", "one JSON object per event and line (JSON Lines), as they come")
    .action(async (idArg: string, opts: { follow?: boolean; json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const id = await resolveTaskId(adapter, idArg);
          const state = await adapter.getTaskState(id);
          if (state === null) throw new CoderClawError("NOT_FOUND", `no task ${id}`);
          const history: Array<TaskEvent | TaskUpdateEvent> = adapter.getTaskEvents ? await adapter.getTaskEvents(id) : [];
          const print = (events: Array<TaskEvent | TaskUpdateEvent>): void => {
            if (opts.json) for (const e of events) process.stdout.write(JSON.stringify(e) + "\n");
            else if (events.length > 0) process.stdout.write(eventLines(events) + "\n");
          };
          print(history);
          if (!opts.follow || TERMINAL_STATUSES.has(state.status)) return EXIT.ok;
          const interrupt = onInterrupt();
          let last = state.status;
          const afterSeq = history.reduce((max, e) => Math.max(max, e.seq ?? 0), 0);
          try {
            for await (const u of adapter.streamTaskUpdates(id, { signal: interrupt.signal, ...(afterSeq > 0 && { afterSeq }) })) {
              last = u.status;
              print([u]);
            }
          } catch (err) {
            if (!interrupt.signal.aborted) throw err;
          } finally {
            interrupt.dispose();
          }
          if (interrupt.signal.aborted) {
            process.stderr.write(`stopped following; task ${id} runs on (coderclaw task logs -f ${id} to follow again)\n`);
            return EXIT.interrupted;
          }
          return exitFor(last);
        }),
      );
    });

  task
    .command("retry")
    .description("run a failed or cancelled task again, as a new task that names it; prints the new task's id")
    .argument("<id>", "task id")
    .option("--json", "print JSON")
    .action(async (idArg: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const id = await resolveTaskId(adapter, idArg);
          if (!adapter.retryTask) throw new Error("this runtime cannot retry tasks");
          const again = await adapter.retryTask(id);
          if (opts.json) printJson(again);
          else process.stdout.write(`${again.id}\n`);
          return EXIT.ok;
        }),
      );
    });

  task
    .command("cancel")
    .description("cancel a task; exit 0 when cancelled, 1 when it had already finished")
    .argument("<id>", "task id")
    .option("--json", "print JSON")
    .action(async (idArg: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const id = await resolveTaskId(adapter, idArg);
          const cancelled = await adapter.cancelTask(id);
          if (opts.json) printJson({ id, cancelled });
          else process.stdout.write(cancelled ? `cancelled ${id}\n` : `task ${id} had already finished\n`);
          return cancelled ? EXIT.ok : EXIT.taskFailed;
        }),
      );
    });

  addTaskChangeCommands(task, setExit, async (cmd, text) => (FULL_TASK_ID.test(text) ? text : openAccess(cmd.optsWithGlobals<AccessOptions>(), false).then(async ({ adapter }) => resolveTaskId(adapter, text).finally(() => adapter.close()))));
  return task;
}

/** `coderclaw queue`: what waits, where, and why. */
export function queueCommand(setExit: (code: number) => void): Command {
  return new Command("queue")
    .description("tasks waiting for a member to run them: where each waits, its priority, age and reason")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const waiting = (await adapter.listTasks({ status: "pending", limit: 1000 })).sort(
            (x, y) => (y.placement?.priority ?? 0) - (x.placement?.priority ?? 0) || x.createdAt.getTime() - y.createdAt.getTime(),
          );
          if (opts.fields) printFields(waiting, opts.fields, opts.json === true);
          else if (opts.json) printJson(waiting);
          else process.stdout.write(waiting.length === 0 ? "nothing waits\n" : queueTable(waiting) + "\n");
          return EXIT.ok;
        }),
      );
    });
}

export { withRuntime };
