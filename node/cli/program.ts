import { Command, CommanderError } from "commander";
import { VERSION } from "../../src/version.js";
import { queueCommand, taskCommand } from "./commands/task.js";
import { infoCommands } from "./commands/info.js";
import { startCommand } from "./commands/start.js";
import { meshCommands } from "./commands/mesh.js";
import { demoCommand } from "./commands/demo.js";
import { configCommand } from "./commands/config.js";
import { auditCommand } from "./commands/audit.js";
import { policyCommand } from "./commands/policy.js";
import { workflowCommand } from "./commands/workflow.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";

/** Build the `coderclaw` command tree. `setExit` records the process exit code. */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("coderclaw")
    .description("CoderClaw: run AI coding-agent tasks locally, on a server, or across a mesh of your machines")
    .version(VERSION)
    .option("--home <dir>", "data directory (default $CODERCLAW_HOME, else ~/.coderclaw)")
    .option("--server <url>", "talk to a remote node over HTTP instead of this machine's node")
    .option("--token <token>", "bearer token for --server (or CODERCLAW_TOKEN)")
    .showHelpAfterError()
    .exitOverride();
  program.addCommand(taskCommand(setExit));
  program.addCommand(queueCommand(setExit));
  for (const c of infoCommands(setExit)) program.addCommand(c);
  program.addCommand(startCommand(setExit));
  for (const c of meshCommands(setExit)) program.addCommand(c);
  program.addCommand(demoCommand(setExit));
  program.addCommand(configCommand(setExit));
  program.addCommand(auditCommand(setExit));
  program.addCommand(policyCommand(setExit));
  program.addCommand(workflowCommand(setExit));
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successful exits; anything else commander refuses is usage.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`coderclaw: ${err instanceof Error ? err.message : String(err)}\n`);
    return exitCodeFor(err);
  }
}
