import { spawn } from "node:child_process";
import { Command } from "commander";
import ms from "ms";
import { CoderClawError } from "../../../src/contract/errors.js";
import { EXIT } from "../exit-codes.js";
import { withAdmin, type AdminCall } from "./mesh.js";

function parseSessionTtl(v: string): number {
  const span = ms(v as ms.StringValue);
  if (typeof span !== "number" || !Number.isFinite(span) || span < 60_000 || span > 30 * 86_400_000) {
    throw new CoderClawError("INVALID_INPUT", `--ttl: ${JSON.stringify(v)} is not a duration between 1m and 30d, e.g. 8h`, { field: "ttl" });
  }
  return span;
}

/** `coderclaw ui`: a one-time login link to the running node's dashboard. */
export function uiCommand(setExit: (code: number) => void): Command {
  return new Command("ui")
    .description("print a one-time login link (single use, 60 s) to the dashboard of the running node (start --http)")
    .option("--url <url>", "the node's HTTP address (default: where the running node serves it)")
    .option("--ttl <duration>", "lifetime of the dashboard session", "8h")
    .option("--open", "also open the link in the desktop's browser")
    .action(async (opts: { url?: string; ttl: string; open?: boolean }, cmd: Command) => {
      const ttlMs = parseSessionTtl(opts.ttl);
      const { base, session } = await withAdmin(cmd, false, async (call) => {
        const base = (opts.url ?? (await servedUrl(call))).replace(/\/+$/, "");
        return { base, session: (await call("session.create", { ttlMs })) as { token: string } };
      });
      let response: Response;
      try {
        response = await fetch(`${base}/ui/login-link`, { method: "POST", headers: { authorization: `Bearer ${session.token}` } });
      } catch (err) {
        throw new CoderClawError("UNAVAILABLE", `cannot reach the dashboard at ${base}: is the node started with --http?`, { cause: err });
      }
      const body = (await response.json().catch(() => ({}))) as { code?: string; error?: { message?: string } };
      if (!response.ok || body.code === undefined) {
        throw new CoderClawError("UNAVAILABLE", `${base} refused a login link: ${body.error?.message ?? response.status}`);
      }
      // The code rides in the fragment, which browsers never send to a server or proxy log.
      const link = `${base}/#login=${body.code}`;
      process.stdout.write(`${link}\n`);
      process.stderr.write("the link works once, within 60 s\n");
      if (opts.open) spawn("xdg-open", [link], { stdio: "ignore", detached: true }).on("error", () => process.stderr.write("could not open a browser; open the link yourself\n")).unref();
      setExit(EXIT.ok);
    });
}

/**
 * Where the running node serves its HTTP API, as it says over its control socket: a
 * token goes nowhere else, since the port runtime.yaml names may be another local
 * user's while the node serves elsewhere or not at all. A wildcard address is reached on loopback.
 */
async function servedUrl(call: AdminCall): Promise<string> {
  const { url } = (await call("http.url", undefined)) as { url: string | null };
  if (url === null) throw new CoderClawError("UNAVAILABLE", "the running node serves no HTTP API: start it with --http (or mode: remote-enabled), or pass --url");
  const served = new URL(url);
  if (served.hostname === "0.0.0.0") served.hostname = "127.0.0.1";
  else if (served.hostname === "[::]") served.hostname = "[::1]";
  return served.origin;
}
