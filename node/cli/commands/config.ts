import { Command } from "commander";
import { checkRuntimeConfig, findRuntimeConfigFile, formatRuntimeConfig, loadRuntimeConfig } from "../../../src/config/runtime-config.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { printJson } from "../output.js";

/** `coderclaw config check [file]` and `coderclaw config show`. */
export function configCommand(setExit: (code: number) => void): Command {
  const config = new Command("config").description("check and show the runtime configuration (.coderClaw/runtime.yaml)");
  config
    .command("check")
    .description("validate a runtime.yaml (default: the one this directory uses); errors name file, line and key")
    .argument("[file]", "path to runtime.yaml")
    .option("--json", "print JSON")
    .action((file: string | undefined, opts: { json?: boolean }) => {
      const path = file ?? findRuntimeConfigFile(process.cwd(), process.env);
      if (path === undefined) throw new CoderClawError("CONFIG", "no .coderClaw/runtime.yaml here or in the CoderClaw home; name a file to check");
      const r = checkRuntimeConfig(path);
      if (opts.json) printJson(r.ok ? { ok: true, file: r.file, warnings: r.warnings } : { ok: false, file: r.file, error: { code: r.error.code, message: r.error.message } });
      else if (r.ok) process.stdout.write(`${r.file}: ok${r.warnings.map((w) => `\nwarning: ${w}`).join("")}\n`);
      else process.stderr.write(`${r.error.message}\n`);
      setExit(r.ok ? EXIT.ok : EXIT.usage);
    });
  config
    .command("show")
    .description("the effective configuration, with where each value came from (default, file:line, env)")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const loaded = loadRuntimeConfig({ cwd: process.cwd() });
      if (opts.json) printJson(loaded);
      else process.stdout.write(formatRuntimeConfig(loaded) + "\n");
      setExit(EXIT.ok);
    });
  return config;
}
