import { Command, CommanderError } from "commander";
import { VERSION } from "../../src/version.js";
import { queueCommand, taskCommand } from "./commands/task.js";
import { infoCommands } from "./commands/info.js";
import { startCommand } from "./commands/start.js";
import { meshCommands } from "./commands/mesh.js";
import { sessionCommand } from "./commands/session.js";
import { demoCommand } from "./commands/demo.js";
import { configCommand } from "./commands/config.js";
import { auditCommand } from "./commands/audit.js";
import { policyCommand } from "./commands/policy.js";
import { workflowCommand } from "./commands/workflow.js";
import { approvalsCommand } from "./commands/approvals.js";
import { skillCommand } from "./commands/skill.js";
import { agentCommand } from "./commands/agent.js";
import { rolesCommand } from "./commands/roles.js";
import { uiCommand } from "./commands/ui.js";
import { serviceCommand } from "./commands/service.js";
import { completionCommand } from "./commands/completion.js";
import { logsCommand } from "./commands/logs.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { CoderClawError } from "../../src/contract/errors.js";

/** Build the `coderclaw` command tree. `setExit` records the process exit code. */
export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("coderclaw")
    .description("CoderClaw: run AI coding-agent tasks locally, on a server, or across a mesh of your machines")
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
  program.addCommand(sessionCommand(setExit));
  program.addCommand(demoCommand(setExit));
  program.addCommand(configCommand(setExit));
  program.addCommand(auditCommand(setExit));
  program.addCommand(policyCommand(setExit));
  program.addCommand(workflowCommand(setExit));
  program.addCommand(approvalsCommand(setExit));
  program.addCommand(skillCommand(setExit));
  program.addCommand(agentCommand(setExit));
  program.addCommand(rolesCommand(setExit));
  program.addCommand(uiCommand(setExit));
  program.addCommand(serviceCommand(setExit));
  program.addCommand(completionCommand(setExit));
  program.addCommand(logsCommand(setExit));
  program.addCommand(
    new Command("version")
      .description("this CLI's version (also --version or -V, before any command)")
      .option("--json", "print JSON")
      .action((opts: { json?: boolean }) => {
        if (opts.json) process.stdout.write(JSON.stringify({ version: VERSION, node: process.versions.node }) + "\n");
        else process.stdout.write(`coderclaw ${VERSION} (node ${process.versions.node})\n`);
        setExit(EXIT.ok);
      }),
  );
  program.hook("preAction", (_root, action) => refuseUnservedServer(action));
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

/**
 * The commands the HTTP API serves: they honour `--server`. Every other command
 * is refused with it, since it would otherwise act on this machine while the
 * user believes it acted on the server.
 */
const SERVED_OVER_HTTP = new Set(["task submit", "task list", "task show", "task events", "task retry", "task cancel", "task wait", "task logs", "queue", "agents", "skills", "status", "audit query", "workflow run", "workflow list", "workflow show", "workflow cancel", "task diff", "task apply", "task artifacts"]);

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

function refuseUnservedServer(action: Command): void {
  if (action.optsWithGlobals<{ server?: string }>().server === undefined) return;
  const path = commandPath(action);
  if (SERVED_OVER_HTTP.has(path)) return;
  throw new CoderClawError("INVALID_INPUT", `--server: the HTTP API does not offer \`${path}\`; run it on the node's machine without --server (served over HTTP: ${[...SERVED_OVER_HTTP].join(", ")})`, { field: "server" });
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  // Only before any command: after one, `--version` is that command's (`skill publish --version 1.2.0`), which commander
  // would hand to the root's version option wherever it appeared.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
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
