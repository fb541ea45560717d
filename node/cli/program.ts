import { Command, CommanderError } from "commander";
import { VERSION } from "../../src/version.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { terminalSafe } from "./terminal-guard.js";

type SetExit = (code: number) => void;

/**
 * The modules of commands, in the order help lists them, by the top-level
 * names each defines. A command's module imports what it runs (a node, the
 * engine, YAML, LevelDB...), half a second of loading on a slow machine, so
 * only the module of the command asked for is loaded; help, completion and a
 * name no module has load them all. `test/cli/program.test.ts` holds these
 * names to what the modules define.
 */
export const COMMAND_MODULES: ReadonlyArray<{ readonly names: readonly string[]; load(setExit: SetExit): Promise<Command[]> }> = [
  { names: ["task"], load: async (s) => [(await import("./commands/task.js")).taskCommand(s)] },
  { names: ["queue"], load: async (s) => [(await import("./commands/task.js")).queueCommand(s)] },
  { names: ["agents", "skills", "status"], load: async (s) => (await import("./commands/info.js")).infoCommands(s) },
  { names: ["start"], load: async (s) => [(await import("./commands/start.js")).startCommand(s)] },
  { names: ["id", "peers", "ping", "doctor", "mesh", "devices"], load: async (s) => (await import("./commands/mesh.js")).meshCommands(s) },
  { names: ["session"], load: async (s) => [(await import("./commands/session.js")).sessionCommand(s)] },
  { names: ["demo"], load: async (s) => [(await import("./commands/demo.js")).demoCommand(s)] },
  { names: ["config"], load: async (s) => [(await import("./commands/config.js")).configCommand(s)] },
  { names: ["audit"], load: async (s) => [(await import("./commands/audit.js")).auditCommand(s)] },
  { names: ["policy"], load: async (s) => [(await import("./commands/policy.js")).policyCommand(s)] },
  { names: ["workflow"], load: async (s) => [(await import("./commands/workflow.js")).workflowCommand(s)] },
  { names: ["approvals"], load: async (s) => [(await import("./commands/approvals.js")).approvalsCommand(s)] },
  { names: ["skill"], load: async (s) => [(await import("./commands/skill.js")).skillCommand(s)] },
  { names: ["agent"], load: async (s) => [(await import("./commands/agent.js")).agentCommand(s)] },
  { names: ["roles"], load: async (s) => [(await import("./commands/roles.js")).rolesCommand(s)] },
  { names: ["ui"], load: async (s) => [(await import("./commands/ui.js")).uiCommand(s)] },
  { names: ["service"], load: async (s) => [(await import("./commands/service.js")).serviceCommand(s)] },
  { names: ["completion"], load: async (s) => [(await import("./commands/completion.js")).completionCommand(s)] },
  { names: ["logs"], load: async (s) => [(await import("./commands/logs.js")).logsCommand(s)] },
];

/** Root options that take a value: what follows them is not the command's name. */
const ROOT_VALUE_OPTIONS = new Set(["--home", "--server", "--token"]);

/** The command `argv` runs (its first word that is no root option nor an option's value), if any. */
export function commandNameOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (ROOT_VALUE_OPTIONS.has(arg)) i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

/**
 * Build the `coderclaw` command tree. `setExit` records the process exit code.
 * With `argv`, only the module of the command it names is loaded (every one
 * when it names none a module has, for help, completion and commander's
 * suggestions); without, every one.
 */
export async function buildProgram(setExit: SetExit, argv?: readonly string[]): Promise<Command> {
  const program = new Command("coderclaw")
    .description("CoderClaw: run AI coding-agent tasks locally, on a server, or across a mesh of your machines")
    .option("--home <dir>", "data directory (default $CODERCLAW_HOME, else ~/.coderclaw)")
    .option("--server <url>", "talk to a remote node over HTTP instead of this machine's node")
    .option("--token <token>", "bearer token for --server (or CODERCLAW_TOKEN)")
    .showHelpAfterError()
    .exitOverride();
  const name = argv === undefined ? undefined : commandNameOf(argv);
  const only = COMMAND_MODULES.find((m) => name !== undefined && name !== "completion" && m.names.includes(name));
  // `version` is this module's own: it needs none of the others.
  const loading = name === "version" ? [] : only === undefined ? COMMAND_MODULES : [only];
  for (const commands of await Promise.all(loading.map((m) => m.load(setExit)))) {
    for (const c of commands) program.addCommand(c);
  }
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
  try {
    const program = await buildProgram((c) => (code = c), argv);
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successful exits; anything else commander refuses is usage.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    // An error's message may carry another device's words (a task's error, a member's answer).
    process.stderr.write(`coderclaw: ${terminalSafe(err instanceof Error ? err.message : String(err))}\n`);
    return exitCodeFor(err);
  }
}
