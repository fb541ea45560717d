import { Command } from "commander";
import { formatRuntimeConfig, loadRuntimeConfig } from "../../../src/config/runtime-config.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { checkConfiguration } from "../config-check.js";
import type { AccessOptions } from "../runtime-access.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { printJson } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";

/** `coderclaw config check [file]` and `coderclaw config show`. */
export function configCommand(setExit: (code: number) => void): Command {
  const config = new Command("config").description("check and show the runtime configuration (.coderClaw/runtime.yaml)");
  config
    .command("check")
    .description("validate the configuration start would read (runtime.yaml, team-agents.yaml, the agents they declare, security.yaml, team-policy.yaml), or one named file; lists every error with file, line and key")
    .argument("[file]", "one file to check, judged by its name (security.yaml, team-policy.yaml, team-agents.yaml, else a runtime.yaml)")
    .option("--json", "print JSON")
    .action((file: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const home = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
      const r = checkConfiguration({ cwd: process.cwd(), home, ...(file !== undefined && { file }) });
      if (r.files.length === 0) throw new CoderClawError("CONFIG", `no .coderClaw/runtime.yaml in ${process.cwd()}, its parents or the CoderClaw home ${home}; name a file to check`);
      if (opts.json) printJson(r);
      else {
        for (const p of r.problems) process.stderr.write(`${p.message}\n`);
        for (const w of r.warnings) process.stdout.write(`warning: ${w}\n`);
        process.stdout.write(r.ok ? `ok: ${r.files.join(", ")}\n` : "");
        if (!r.ok) process.stderr.write(`${r.problems.length} error(s) in ${r.files.join(", ")}\n`);
      }
      setExit(r.ok ? EXIT.ok : EXIT.usage);
    });
  config
    .command("show")
    .description("the effective configuration, with where each value came from (default, file:line, env)")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action((opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      const loaded = loadRuntimeConfig({ cwd: process.cwd(), home: resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home) });
      if (opts.fields) printFields([loaded], opts.fields, opts.json === true);
      else if (opts.json) printJson(loaded);
      else process.stdout.write(formatRuntimeConfig(loaded) + "\n");
      setExit(EXIT.ok);
    });
  return config;
}
