import { Command } from "commander";
import { EXIT } from "../exit-codes.js";
import { agentTable, printJson, skillTable } from "../output.js";
import { withRuntime } from "./task.js";

/** `coderclaw agents`, `skills` and `status`. */
export function infoCommands(setExit: (code: number) => void): Command[] {
  const agents = new Command("agents")
    .description("list agents, with why an agent cannot run here")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listAgents();
          if (opts.json) printJson(list);
          else process.stdout.write(agentTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const skills = new Command("skills")
    .description("list skills, with the missing requirement of disabled ones")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listSkills();
          if (opts.json) printJson(list);
          else process.stdout.write(list.length === 0 ? "no skills\n" : skillTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const status = new Command("status")
    .description("runtime status")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter, kind) => {
          const s = { ...(await adapter.getStatus()), reachedThrough: kind };
          if (opts.json) printJson(s);
          else process.stdout.write(Object.entries(s).map(([k, v]) => `${k.padEnd(14)} ${String(v)}`).join("\n") + "\n");
          return s.healthy ? EXIT.ok : EXIT.runtime;
        }),
      );
    });
  return [agents, skills, status];
}
