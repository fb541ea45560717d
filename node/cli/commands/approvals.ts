import { Command } from "commander";
import { InvalidInputError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { printJson, table } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import type { AccessOptions } from "../runtime-access.js";
import { admin } from "./mesh.js";

/** A decision is signed by this machine's device, so it goes through its node, not a remote server. */
function refuseServer(cmd: Command): void {
  if (cmd.optsWithGlobals<AccessOptions>().server !== undefined) throw new InvalidInputError("a decision is signed by this machine's node through its control socket; --server is not supported for approvals", "--server");
}

/** A request as `approval.list` answers: a workflow step's or a task's. */
type Row = { id: string; workflowName?: string; step?: string; description?: string; rule?: string; agent?: string; deadline: string };

/** `coderclaw approvals list|approve|deny`: workflow steps and tasks that wait for a person's decision. */
export function approvalsCommand(setExit: (code: number) => void): Command {
  const approvals = new Command("approvals").description("steps and tasks waiting for approval: list them, approve or deny one from any member");

  approvals
    .command("list")
    .description("approval requests: this node's workflow steps, and tasks any member's policy holds")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      refuseServer(cmd);
      const list = (await admin(cmd, "approval.list", {}, false)) as Row[];
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else {
        const t = table(["id", "what", "why", "agent", "denied at"]);
        for (const a of list) {
          const what = a.workflowName !== undefined ? `${a.workflowName}: step ${a.step ?? "?"}` : (a.description ?? "");
          t.push([a.id, what, a.rule ?? "approval: required", a.agent ?? "(default)", a.deadline.replace("T", " ").slice(0, 19)]);
        }
        process.stdout.write(list.length === 0 ? "no approvals waiting\n" : `${t.toString()}\n`);
      }
      setExit(EXIT.ok);
    });

  for (const [name, approve] of [["approve", true], ["deny", false]] as const) {
    approvals
      .command(name)
      .description(`${name} a request: signed by this device, it reaches the node that owns the request, which checks this device may approve`)
      .argument("<id>", "the request's id as `approvals list` prints it (<workflow>/<step>/<request>, or task/<task id>)")
      .option("--reason <text>", "why, recorded with the decision")
      .action(async (id: string, opts: { reason?: string }, cmd: Command) => {
        refuseServer(cmd);
        const { statement } = (await admin(cmd, "approval.decide", { id, approve, ...(opts.reason !== undefined && { reason: opts.reason }) }, false)) as { statement: string };
        process.stdout.write(`${approve ? "approval" : "denial"} of ${id} signed (statement ${statement.slice(0, 16)}); the owner of the request applies it once it arrives\n`);
        setExit(EXIT.ok);
      });
  }
  return approvals;
}
