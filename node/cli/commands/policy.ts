import { readFileSync, statSync } from "node:fs";
import { Command, Option } from "commander";
import { CoderClawError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { printJson } from "../output.js";
import { admin } from "./mesh.js";

/** Largest policy file read. */
const MAX_POLICY_BYTES = 256 * 1024;

/** `coderclaw policy sign FILE`: as an admin, sign a policy for the whole mesh. */
export function policyCommand(setExit: (code: number) => void): Command {
  const policy = new Command("policy").description("mesh-wide policies, signed by an admin and replicated to every member");
  policy
    .command("sign <file>")
    .description("sign FILE (a security.yaml, or a team-policy.yaml with --scope team) for the mesh; per scope, the newest admin-signed policy replaces the local file on every node")
    .addOption(new Option("--scope <scope>", "which policy FILE is").choices(["repo", "team"]).default("repo"))
    .option("--json", "print JSON")
    .action(async (file: string, opts: { scope: "repo" | "team"; json?: boolean }, cmd: Command) => {
      let text: string;
      try {
        if (statSync(file).size > MAX_POLICY_BYTES) throw new Error(`larger than ${MAX_POLICY_BYTES} bytes`);
        text = readFileSync(file, "utf8");
      } catch (err) {
        throw new CoderClawError("INVALID_INPUT", `${file}: cannot be read: ${(err as Error).message}`, { field: "file" });
      }
      const result = await admin(cmd, "policy.sign", { scope: opts.scope, text, file }, true);
      if (opts.json) printJson(result);
      else process.stdout.write(`signed ${opts.scope} policy ${file} for the mesh\n`);
      setExit(EXIT.ok);
    });
  return policy;
}
