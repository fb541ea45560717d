import { Command } from "commander";
import { CoderClawError, InvalidInputError } from "../../../src/contract/errors.js";
import { readWorkflowSource, workflowTemplates, type WorkflowRecord } from "../../../src/workflows/index.js";
import { EXIT } from "../exit-codes.js";
import { humanTime, printJson, table } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import { workflowAccess, type WorkflowAccess } from "../workflow-access.js";

const WAIT_POLL_MS = 300;

/** `--set name=value`, repeatable: the workflow's named input values. */
function collectValue(text: string, previous: Record<string, string>): Record<string, string> {
  const at = text.indexOf("=");
  if (at <= 0) throw new InvalidInputError(`"${text.slice(0, 80)}" is not name=value`, "--set");
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}

/** Run `body` with the command's access to the node's workflows, closed afterwards. */
async function withWorkflows<T>(cmd: Command, body: (workflows: WorkflowAccess) => Promise<T>): Promise<T> {
  const workflows = workflowAccess(cmd);
  try {
    return await body(workflows);
  } finally {
    await workflows.close();
  }
}

const time = humanTime;

function stepsTable(r: WorkflowRecord): string {
  const t = table(["step", "agent", "status", "tries", "task", "error"]);
  for (const step of r.definition.steps) {
    const s = r.steps[step.id]!;
    const last = s.attempts[s.attempts.length - 1];
    t.push([step.id, step.agent ?? "(default)", s.reason === undefined ? s.status : `${s.status} (${s.reason})`, String(s.attempts.length), last?.taskId ?? "", (s.status === "failed" || s.status === "retrying" ? (s.error ?? "") : "").slice(0, 60)]);
  }
  return t.toString();
}

/** Follow a workflow until it ends, printing each step's changes of status; the exit code says how it ended. */
async function follow(workflows: WorkflowAccess, id: string, json: boolean, setExit: (code: number) => void): Promise<void> {
  const seen = new Map<string, string>();
  for (;;) {
    const r = await workflows.get(id);
    if (!json) {
      for (const step of r.definition.steps) {
        const s = r.steps[step.id]!;
        const key = `${s.status}/${s.attempts.length}`;
        if (seen.get(step.id) === key) continue;
        seen.set(step.id, key);
        if (s.status !== "pending") process.stdout.write(`${time(Date.now())}  ${step.id}: ${s.status}${s.attempts.length > 1 ? ` (try ${s.attempts.length})` : ""}${s.status === "failed" || s.status === "retrying" ? `: ${s.error ?? ""}` : ""}\n`);
      }
    }
    if (r.status !== "running") {
      if (json) printJson(r);
      else process.stdout.write(`workflow ${r.id} ${r.status}${r.error !== undefined ? `: ${r.error}` : ""}\n`);
      setExit(r.status === "completed" ? EXIT.ok : EXIT.taskFailed);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
  }
}

/** `coderclaw workflow run|list|show|cancel|templates`. */
export function workflowCommand(setExit: (code: number) => void): Command {
  const workflow = new Command("workflow").description("run a graph of steps, each a task, on this machine's node (which keeps it going across restarts), or on the node of --server");

  workflow
    .command("run")
    .description("start a workflow from a file or a shipped template (see `workflow templates`)")
    .argument("<template-or-file>", "a template name (feature, bug-fix, ...) or a workflow YAML file")
    .option("-i, --input <text>", "the workflow's input (filled in for ${input})")
    .option("--set <name=value>", "a named input value (filled in for ${input.name}); repeatable", collectValue, {})
    .option("--wait", "follow it to its end; exit 0 if it completed, 1 if not")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { input?: string; set: Record<string, string>; wait?: boolean; json?: boolean }, cmd: Command) => {
      if (opts.input !== undefined && Object.keys(opts.set).length > 0) throw new InvalidInputError("give the input as text (--input) or as named values (--set), not both", "--set");
      const { file, text } = readWorkflowSource(name, process.cwd());
      const input = Object.keys(opts.set).length > 0 ? opts.set : (opts.input ?? "");
      await withWorkflows(cmd, async (workflows) => {
        const started = await workflows.start(file, text, input);
        if (!opts.wait) {
          if (opts.json) printJson(started);
          else process.stdout.write(`workflow ${started.id} (${started.name}) started; follow it with: coderclaw workflow show ${started.id} --wait\n`);
          setExit(EXIT.ok);
          return;
        }
        if (!opts.json) process.stdout.write(`workflow ${started.id} (${started.name}) started\n`);
        await follow(workflows, started.id, opts.json === true, setExit);
      });
    });

  workflow
    .command("list")
    .description("workflows of this node, newest first")
    .option("-n, --limit <n>", "at most this many", "50")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { limit: string; json?: boolean; fields?: string[] }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new InvalidInputError(`"${opts.limit}" is not a positive whole number`, "--limit");
      const list = (await withWorkflows(cmd, (workflows) => workflows.list(limit))) as Array<{ id: string; name: string; status: string; createdAt: string; steps: Record<string, number> }>;
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else {
        const t = table(["id", "name", "status", "created", "steps"]);
        for (const w of list) t.push([w.id, w.name, w.status, w.createdAt.replace("T", " ").slice(0, 19), Object.entries(w.steps).map(([k, v]) => `${v} ${k}`).join(", ")]);
        process.stdout.write(list.length === 0 ? "no workflows\n" : `${t.toString()}\n`);
      }
      setExit(EXIT.ok);
    });

  workflow
    .command("show")
    .description("a workflow's steps and where each stands")
    .argument("<id>", "workflow id")
    .option("--wait", "follow it to its end")
    .option("--json", "print JSON")
    .action(async (id: string, opts: { wait?: boolean; json?: boolean }, cmd: Command) =>
      withWorkflows(cmd, async (workflows) => {
        if (opts.wait) return follow(workflows, id, opts.json === true, setExit);
        const r = await workflows.get(id);
        if (opts.json) printJson(r);
        else process.stdout.write(`workflow ${r.id} (${r.definition.name}): ${r.status}${r.error !== undefined ? `: ${r.error}` : ""}\n${stepsTable(r)}\n`);
        setExit(EXIT.ok);
      }),
    );

  workflow
    .command("cancel")
    .description("cancel a running workflow: its running steps' tasks are cancelled, the rest skipped")
    .argument("<id>", "workflow id")
    .action(async (id: string, _opts: unknown, cmd: Command) =>
      withWorkflows(cmd, async (workflows) => {
        if (!(await workflows.cancel(id))) throw new CoderClawError("INVALID_TRANSITION", `workflow ${id} had already ended`);
        process.stdout.write(`workflow ${id} cancelled\n`);
        setExit(EXIT.ok);
      }),
    );

  workflow
    .command("templates")
    .description("the workflow templates shipped with CoderClaw (copy one to edit it)")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      if (opts.json) printJson(workflowTemplates());
      else process.stdout.write(`${workflowTemplates().join("\n")}\n`);
      setExit(EXIT.ok);
    });
  return workflow;
}
