import { Command, Option } from "commander";
import Table from "cli-table3";
import { EXIT } from "../exit-codes.js";
import { printJson } from "../output.js";
import { admin } from "./mesh.js";

interface Entry {
  author: string;
  seq: number;
  time: number;
  body: { action: string; userId: string; deviceId?: string; resource?: string; result: string; reason?: string };
}

function isoOption(flag: string, what: string): Option {
  return new Option(flag, what).argParser((v) => {
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new Error(`${flag.split(" ")[0]} must be a date, e.g. 2026-11-24 or 2026-11-24T10:00:00Z`);
    return d.toISOString();
  });
}

/** `coderclaw audit query` and `coderclaw audit verify`. */
export function auditCommand(setExit: (code: number) => void): Command {
  const audit = new Command("audit").description("the tamper-evident audit log (this node's and those replicated to it)");
  audit
    .command("query")
    .description("entries, oldest first")
    .option("--user <id>", "only this user")
    .option("--action <action>", "only this action, e.g. task.submit")
    .addOption(new Option("--result <result>", "only this result").choices(["allowed", "denied", "error"]))
    .addOption(isoOption("--since <date>", "from this date"))
    .addOption(isoOption("--until <date>", "up to this date"))
    .option("-n, --limit <n>", "at most this many", (v) => Number(v), 1000)
    .option("--json", "print JSON")
    .action(async (opts: { user?: string; action?: string; result?: string; since?: string; until?: string; limit: number; json?: boolean }, cmd: Command) => {
      const entries = (await admin(cmd, "audit.query", {
        limit: opts.limit,
        ...(opts.user && { userId: opts.user }),
        ...(opts.action && { action: opts.action }),
        ...(opts.result && { result: opts.result }),
        ...(opts.since && { startDate: opts.since }),
        ...(opts.until && { endDate: opts.until }),
      }, true)) as Entry[];
      if (opts.json) printJson(entries);
      else {
        const t = new Table({ head: ["time", "author", "seq", "action", "user", "resource", "result", "reason"], style: { head: [] } });
        for (const e of entries) t.push([new Date(e.time).toISOString().slice(0, 19), e.author.slice(-8), e.seq, e.body.action, e.body.userId.slice(-12), e.body.resource ?? "", e.body.result, (e.body.reason ?? "").slice(0, 40)]);
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
