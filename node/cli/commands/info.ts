import { Command } from "commander";
import ms from "ms";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import type { AccessOptions } from "../runtime-access.js";
import { EXIT } from "../exit-codes.js";
import { agentTable, printJson, skillTable } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import { withRuntime } from "./task.js";

/** `coderclaw agents`, `skills` and `status`. */
export function infoCommands(setExit: (code: number) => void): Command[] {
  const agents = new Command("agents")
    .description("list agents, with why an agent cannot run here")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listAgents();
          if (opts.fields) printFields(list, opts.fields, opts.json === true);
          else if (opts.json) printJson(list);
          else process.stdout.write(agentTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const skills = new Command("skills")
    .description("list skills, with the missing requirement of disabled ones")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter) => {
          const list = await adapter.listSkills();
          if (opts.fields) printFields(list, opts.fields, opts.json === true);
          else if (opts.json) printJson(list);
          else process.stdout.write(list.length === 0 ? "no skills\n" : skillTable(list) + "\n");
          return EXIT.ok;
        }),
      );
    });
  const status = new Command("status")
    .description("runtime status")
    .addHelpText("after", "\nExamples:\n  coderclaw status\n  coderclaw status --json\n  coderclaw --server https://node.example:7420 --token $T status\n")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      setExit(
        await withRuntime(cmd, false, async (adapter, kind) => {
          const status = await adapter.getStatus();
          // Without a node, storage was opened by this command: its uptime and health are this process's, not a node's.
          if (kind === "storage") {
            const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
            if (opts.json) printJson({ running: false, dataDir, totalTasks: status.totalTasks, version: status.version });
            else process.stdout.write(`no node is running on ${dataDir} (start one with \`coderclaw start\`)\n${"totalTasks".padEnd(14)} ${status.totalTasks}\n`);
            return EXIT.runtime;
          }
          const s = { running: true, ...status, reachedThrough: kind };
          if (opts.json) printJson(s);
          else process.stdout.write(Object.entries(s).map(([k, v]) => `${k.padEnd(14)} ${k === "uptime" ? ms(Number(v)) : String(v)}`).join("\n") + "\n");
          return s.healthy ? EXIT.ok : EXIT.runtime;
        }),
      );
    });
  return [agents, skills, status];
}
