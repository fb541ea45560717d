import { Command } from "commander";
import { EXIT } from "../exit-codes.js";
import { fieldsOption, printFields } from "../fields.js";
import { resolveIdPrefix } from "../id-prefix.js";
import { humanTime, printJson, table } from "../output.js";
import type { SessionSummary } from "../../../src/security/sessions.js";
import { admin, parseTtl } from "./mesh.js";

/** A session as `session.list` answers: times as ISO strings. */
type ListedSession = Omit<SessionSummary, "issuedAt" | "expiresAt"> & { issuedAt: string; expiresAt: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `coderclaw session create|list|revoke`: bearer tokens for HTTP clients of this node. */
export function sessionCommand(setExit: (code: number) => void): Command {
  const session = new Command("session")
    .description("sessions for HTTP clients of this node (they survive a restart; only a hash of each token is kept)")
    .addHelpText("after", "\nExamples:\n  coderclaw session create --ttl 8h               # prints a bearer token\n  coderclaw session create --read-only --ttl 1d   # GET routes only\n  coderclaw session list\n  coderclaw session revoke 3f2a --reason \"laptop lost\"\n");
  session
    .command("create")
    .description("open a session on this node and print its bearer token (for --server/--token, or CODERCLAW_TOKEN)")
    .option("--user <id>", "user id (default: this device)")
    .option("--roles <list>", "comma-separated roles (default: every role the user holds here)")
    .option("--ttl <duration>", "lifetime, e.g. 1h", "1h")
    .option("--read-only", "the session may only read: every request that would change something is refused (403)")
    .option("--json", "print JSON")
    .action(async (opts: { user?: string; roles?: string; ttl: string; readOnly?: boolean; json?: boolean }, cmd: Command) => {
      const roles = opts.roles?.split(",").map((x) => x.trim()).filter(Boolean);
      const r = (await admin(cmd, "session.create", { ttlMs: parseTtl(opts.ttl), ...(roles && { roles }), ...(opts.user && { userId: opts.user }), ...(opts.readOnly && { readOnly: true }) }, false)) as { id: string; token: string; expiresAt: string; readOnly: boolean };
      if (opts.json) printJson(r);
      else {
        process.stdout.write(`${r.token}\n`);
        process.stderr.write(`session ${r.id}${r.readOnly ? " (read-only)" : ""}; expires ${humanTime(r.expiresAt)}; revoke with: coderclaw session revoke ${r.id.slice(0, 8)}\n`);
      }
      setExit(EXIT.ok);
    });
  session
    .command("list")
    .description("sessions this node issued: user, roles, scope, expiry and state (expired ones are listed for a day)")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      const list = (await admin(cmd, "session.list", undefined, true)) as ListedSession[];
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else if (list.length === 0) process.stdout.write("no sessions\n");
      else {
        const t = table(["session", "user", "roles", "scope", "issued", "expires", "state"]);
        for (const s of list) t.push([s.id, s.userId, s.roles.join(","), s.readOnly ? "read-only" : "read-write", humanTime(s.issuedAt), humanTime(s.expiresAt), s.revokedBecause === undefined ? s.state : `revoked: ${s.revokedBecause}`]);
        process.stdout.write(t.toString() + "\n");
      }
      setExit(EXIT.ok);
    });
  session
    .command("revoke")
    .description("end a session: its token is refused (401) from now on, also after a restart; works with the node stopped too")
    .argument("<session>", "session id, or a unique prefix of one")
    .option("--reason <text>", "why (kept in the audit log and shown by session list)", "")
    .action(async (idArg: string, opts: { reason: string }, cmd: Command) => {
      const known = (await admin(cmd, "session.list", undefined, true)) as ListedSession[];
      const sessionId = resolveIdPrefix("session", idArg, known.map((s) => s.id), (t) => UUID.test(t));
      await admin(cmd, "session.revoke", { sessionId, ...(opts.reason && { reason: opts.reason }) }, true);
      process.stdout.write(`revoked session ${sessionId}\n`);
      setExit(EXIT.ok);
    });
  return session;
}
