import { Command, Option } from "commander";
import ms from "ms";
import { CoderClawError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { humanTime, printJson, table } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import { admin } from "./mesh.js";
import { serverAdapter, type AccessOptions } from "../runtime-access.js";

interface Entry {
  author: string;
  seq: number;
  time: number;
  body: { action: string; userId: string; deviceId?: string; resource?: string; result: string; reason?: string };
}

/** A date, or a duration meaning that long ago (`--since 5m`, as `journalctl` and `docker logs` take it). */
function isoOption(flag: string, what: string): Option {
  const name = flag.split(" ")[0]!;
  return new Option(flag, what).argParser((v) => {
    const span = ms(v as ms.StringValue);
    if (typeof span === "number" && Number.isFinite(span) && span > 0) return new Date(Date.now() - span).toISOString();
    const d = /^\d{4}-\d{2}-\d{2}/.test(v) ? new Date(v) : new Date(NaN);
    if (Number.isNaN(d.getTime())) throw new CoderClawError("INVALID_INPUT", `${name}: ${JSON.stringify(v)} is neither a date (2026-11-24, 2026-11-24T10:00:00Z) nor a duration ago (90s, 5m, 2h, 1d)`, { field: name.slice(2) });
    return d.toISOString();
  });
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new CoderClawError("INVALID_INPUT", `--limit: ${JSON.stringify(v)} is not a whole number 1..100000`, { field: "limit" });
  return n;
}

/** `coderclaw audit query` and `coderclaw audit verify`. */
export function auditCommand(setExit: (code: number) => void): Command {
  const audit = new Command("audit").description("the tamper-evident audit log (this node's and those replicated to it)");
  audit
    .command("query")
    .description("the newest entries (all chains, ordered by time, oldest first)")
    .option("--user <id>", "only this user")
    .option("--action <action>", "only this action, e.g. task.submit")
    .addOption(new Option("--result <result>", "only this result").choices(["allowed", "denied", "error"]))
    .addOption(isoOption("--since <date>", "from this date"))
    .addOption(isoOption("--until <date>", "up to this date"))
    .option("-n, --limit <n>", "the newest this many", parseLimit, 1000)
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { user?: string; action?: string; result?: string; since?: string; until?: string; limit: number; json?: boolean; fields?: string[] }, cmd: Command) => {
      const query = {
        limit: opts.limit,
        ...(opts.user && { userId: opts.user }),
        ...(opts.action && { action: opts.action }),
        ...(opts.result && { result: opts.result as "allowed" | "denied" | "error" }),
        ...(opts.since && { startDate: opts.since }),
        ...(opts.until && { endDate: opts.until }),
      };
      const server = serverAdapter(cmd.optsWithGlobals<AccessOptions>());
      let entries: Entry[];
      if (server) {
        try {
          const { startDate, endDate, ...rest } = query;
          entries = await server.getAuditLog({ ...rest, ...(startDate && { startDate: new Date(startDate) }), ...(endDate && { endDate: new Date(endDate) }) });
        } finally {
          await server.close();
        }
      } else entries = (await admin(cmd, "audit.query", query, true)) as Entry[];
      if (opts.fields) printFields(entries, opts.fields, opts.json === true);
      else if (opts.json) printJson(entries);
      else {
        const t = table(["time", "author", "seq", "action", "user", "resource", "result", "reason"]);
        for (const e of entries) t.push([humanTime(e.time), e.author.slice(-8), e.seq, e.body.action, e.body.userId.slice(-12), e.body.resource ?? "", e.body.result, (e.body.reason ?? "").slice(0, 40)]);
        process.stdout.write(entries.length === 0 ? "no entries\n" : t.toString() + "\n");
      }
      setExit(EXIT.ok);
    });
  audit
    .command("verify")
    .description("check every chain: hashes, signatures, links; names the first bad entry of each bad chain, and forks")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const report = (await admin(cmd, "audit.verify", undefined, true)) as { ok: boolean; authors: number; entries: number; problems: Array<Record<string, unknown>>; forks: unknown[] };
      if (opts.json) printJson(report);
      else {
        process.stdout.write(`${report.ok ? "ok" : "TAMPERED"}: ${report.entries} entries in ${report.authors} chain(s)\n`);
        for (const p of report.problems) process.stdout.write(`  ${JSON.stringify(p)}\n`);
        if (report.forks.length > 0) process.stdout.write(`  ${report.forks.length} fork(s) kept as evidence\n`);
      }
      setExit(report.ok ? EXIT.ok : EXIT.taskFailed);
    });
  return audit;
}
