import { Command, Option } from "commander";
import { TASK_STATUSES, type TaskStatus, type TaskSubmitRequest, type TransportAdapter } from "../../../src/contract/types.js";
import { EXIT } from "../exit-codes.js";
import { InvalidInputError } from "../../../src/contract/errors.js";
import { followTask } from "../follow.js";
import { eventLines, printJson, queueTable, taskDetails, taskTable } from "../output.js";
import { submitOptionsFromFlags, type SubmitFlags } from "../submit-options.js";
import { openAccess, type AccessOptions } from "../runtime-access.js";
import { addTaskChangeCommands } from "./task-changes.js";

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

/** `coderclaw task ...` */
export function taskCommand(setExit: (code: number) => void): Command {
  const task = new Command("task").description("submit, inspect and cancel tasks");

  task
    .command("submit")
    .description("submit a task; with --wait, follow it to the end and exit 0 (completed) or 1 (failed/cancelled)")
    .argument("<input>", "the task input (prompt, command, ...)")
    .option("-a, --agent <id>", "agent to run it")
    .option("-d, --description <text>", "short description (default: the first line of the input)")
    .option("-s, --session <id>", "session the task belongs to")
    .option("-w, --wait", "follow the task until it ends, with live progress")
    .option("-r, --route <where>", "auto (in a mesh: place by capability, slots, labels, latency), local (this node), a mesh member's peer id, or remote:auto[gpu,...]", "auto")
    .option("-p, --priority <n>", "among tasks waiting on the node, higher goes first (-100..100, default 0)")
    .option("--requires <list>", "labels and resources the node that runs it must have: gpu,cpu>=4,memoryGiB>=16")
    .option("--deadline <when>", "fail it if it has not started by then: a duration (30m, 2h) or a date")
    .option("--no-wait-for-peer", "refuse at once when no member can start it now, instead of waiting for one")
    .option("--repo [path]", "send a snapshot of this directory (default: the current one) with the task; the executor works on its own copy, and `task diff` / `task apply` bring the changes back")
    .option("--artifacts <glob>", "with --repo: files to bring back with the result (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--json", "print JSON")
    .action(async (input: string, opts: SubmitFlags & { agent?: string; description?: string; session?: string; wait?: boolean; json?: boolean }, cmd: Command) => {
      const request: TaskSubmitRequest = { input, description: opts.description ?? (input.split("\n")[0]!.slice(0, 200) || "task") };
      if (opts.agent !== undefined) request.agentId = opts.agent;
      if (opts.session !== undefined) request.sessionId = opts.session;
      const options = submitOptionsFromFlags(opts);
      setExit(
        await withRuntime(cmd, opts.wait === true, async (adapter, kind) => {
          const accepted = await adapter.submitTask(request, options);
          if (!opts.wait) {
            if (opts.json) printJson(accepted);
            else {
              process.stdout.write(`${accepted.id}\n`);
              if (kind === "storage") process.stderr.write("queued: no node is running on this data directory; it runs at the next `coderclaw start`\n");
              else if (accepted.placement?.reason !== undefined) process.stderr.write(`pending: ${accepted.placement.reason}\n`);
            }
            return EXIT.ok;
          }
          const mode = opts.json ? "quiet" : process.stderr.isTTY ? "tty" : "lines";
          const { state: final, error } = await followTask(adapter, accepted.id, mode);
          if (opts.json) printJson(final);
          else process.stdout.write(final.status === "completed" ? `${final.output ?? ""}\n` : `${final.status}: ${error ?? ""}\n`);
          return exitFor(final.status);
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
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidInputError(`--limit: ${JSON.stringify(v)} is not a whole number 1..10000`, "limit");
      return n;
    }, 50)
    .option("--json", "print JSON")
    .action(async (opts: { status?: TaskStatus; session?: string; limit: number; json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const tasks = await adapter.listTasks({ limit: opts.limit, ...(opts.status && { status: opts.status }), ...(opts.session && { sessionId: opts.session }) });
          if (opts.json) printJson(tasks);
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
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const state = await adapter.getTaskState(id);
          if (!state) {
            process.stderr.write(`coderclaw: task not found: ${id}\n`);
            return EXIT.usage;
          }
          if (opts.json) printJson(state);
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
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
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
    .command("retry")
    .description("run a failed or cancelled task again, as a new task that names it; prints the new task's id")
    .argument("<id>", "task id")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
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
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const cancelled = await adapter.cancelTask(id);
          if (opts.json) printJson({ id, cancelled });
          else process.stdout.write(cancelled ? `cancelled ${id}\n` : `task ${id} had already finished\n`);
          return cancelled ? EXIT.ok : EXIT.taskFailed;
        }),
      );
    });

  addTaskChangeCommands(task, setExit);
  return task;
}

/** `coderclaw queue`: what waits, where, and why. */
export function queueCommand(setExit: (code: number) => void): Command {
  return new Command("queue")
    .description("tasks waiting for a member to run them: where each waits, its priority, age and reason")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const waiting = (await adapter.listTasks({ status: "pending", limit: 1000 })).sort(
            (x, y) => (y.placement?.priority ?? 0) - (x.placement?.priority ?? 0) || x.createdAt.getTime() - y.createdAt.getTime(),
          );
          if (opts.json) printJson(waiting);
          else process.stdout.write(waiting.length === 0 ? "nothing waits\n" : queueTable(waiting) + "\n");
          return EXIT.ok;
        }),
      );
    });
}

export { withRuntime };
