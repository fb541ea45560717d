import { spawn } from "node:child_process";
import { Command } from "commander";
import ms from "ms";
import { CoderClawError } from "../../../src/contract/errors.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import type { AccessOptions } from "../runtime-access.js";
import { admin } from "./mesh.js";

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
    .option("--url <url>", "the node's HTTP address (default: runtime.yaml's http section)")
    .option("--ttl <duration>", "lifetime of the dashboard session", "8h")
    .option("--open", "also open the link in the desktop's browser")
    .action(async (opts: { url?: string; ttl: string; open?: boolean }, cmd: Command) => {
      const ttlMs = parseSessionTtl(opts.ttl);
      const base = (opts.url ?? (await configuredUrl(cmd))).replace(/\/+$/, "");
      const session = (await admin(cmd, "session.create", { ttlMs }, false)) as { token: string };
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

async function configuredUrl(cmd: Command): Promise<string> {
  const { loadRuntimeConfig } = await import("../../../src/config/runtime-config.js");
  const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
  const { http } = loadRuntimeConfig({ cwd: process.cwd(), home: dataDir }).config;
  const host = http.host.includes(":") ? `[${http.host}]` : http.host === "0.0.0.0" ? "127.0.0.1" : http.host;
  return `${http.tls === undefined ? "http" : "https"}://${host}:${http.port}`;
}
