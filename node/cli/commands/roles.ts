import { Command } from "commander";
import ms from "ms";
import { InvalidInputError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { printJson, table } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import type { AccessOptions } from "../runtime-access.js";
import { admin } from "./mesh.js";

/** A grant or revocation is signed by this machine's device, so it goes through its node, not a remote server. */
function refuseServer(cmd: Command): void {
  if (cmd.optsWithGlobals<AccessOptions>().server !== undefined) throw new InvalidInputError("roles are granted by this machine's node, which signs them, through its control socket; --server is not supported", "--server");
}

/** `coderclaw roles list|grant|revoke`: who holds which role in the mesh, signed by its admins. */
export function rolesCommand(setExit: (code: number) => void): Command {
  const roles = new Command("roles").description("roles in the mesh: list them; admins grant and revoke them (signed, replicated to every member)");

  roles
    .command("list")
    .description("every device and user holding a role here")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      refuseServer(cmd);
      const list = (await admin(cmd, "roles.list", {}, false)) as Array<{ subject: string; roles: string[]; admin: boolean; founder: boolean }>;
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else {
        const t = table(["subject", "roles", "note"]);
        for (const r of list) t.push([r.subject, r.roles.join(", "), r.founder ? "founder" : ""]);
        process.stdout.write(`${t.toString()}\n`);
      }
      setExit(EXIT.ok);
    });

  roles
    .command("grant")
    .description("grant roles to a device or user (this device must be an admin)")
    .argument("<subject>", "a device id or a user id")
    .argument("<roles...>", "roles: admin, developer, readonly, ci, or one the policy defines")
    .option("--ttl <duration>", "the grant lapses after this long (1h, 30d)", (v: string) => {
      const n = ms(v as ms.StringValue);
      if (typeof n !== "number" || !Number.isFinite(n) || n < 60_000) throw new InvalidInputError(`"${v.slice(0, 40)}" is not a duration of at least a minute such as 1h or 30d`, "--ttl");
      return n;
    })
    .option("--json", "print JSON")
    .action(async (subject: string, names: string[], opts: { ttl?: number; json?: boolean }, cmd: Command) => {
      refuseServer(cmd);
      const done = (await admin(cmd, "roles.grant", { subject, roles: names, ...(opts.ttl !== undefined && { ttlMs: opts.ttl }) }, false)) as { grant: string; roles: string[] };
      if (opts.json) printJson(done);
      else process.stdout.write(`granted ${done.roles.join(", ")} to ${subject} (statement ${done.grant.slice(0, 16)}); every member applies it once it arrives\n`);
      setExit(EXIT.ok);
    });

  roles
    .command("revoke")
    .description("take one role from a device or user (this device must be an admin); the other roles the same grants gave stay")
    .argument("<subject>", "a device id or a user id")
    .argument("<role>", "the role to take away")
    .option("--reason <text>", "why, recorded with the revocation")
    .option("--json", "print JSON")
    .action(async (subject: string, role: string, opts: { reason?: string; json?: boolean }, cmd: Command) => {
      refuseServer(cmd);
      const done = (await admin(cmd, "roles.revoke", { subject, role, ...(opts.reason !== undefined && { reason: opts.reason }) }, false)) as { revoked: string[]; regranted?: string };
      if (opts.json) printJson(done);
      else process.stdout.write(`revoked ${role} from ${subject} (${done.revoked.length} grant${done.revoked.length === 1 ? "" : "s"}${done.regranted === undefined ? "" : "; its other roles granted again"})\n`);
      setExit(EXIT.ok);
    });
  return roles;
}
