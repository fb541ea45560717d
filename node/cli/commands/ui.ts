import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
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
      if (opts.open) openPrivately(link);
      setExit(EXIT.ok);
    });
}

/** The directories of {@link openPrivately}'s pages, under the temporary directory. */
const PAGE_DIR_PREFIX = "coderclaw-ui-";

/** How long a page {@link openPrivately} wrote is kept: its code is spent or expired by then. */
const PAGE_KEPT_MS = 120_000;

/**
 * Opens `link` in the desktop's browser without putting it on a command line,
 * where every local user reads it (`/proc/<pid>/cmdline` of xdg-open and of
 * the browser) and could log in with its code first. The browser is given a
 * page only this user can read, which goes on to the link. Pages older than
 * their code's life, left by earlier runs, go first.
 */
function openPrivately(link: string): void {
  const now = Date.now();
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PAGE_DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const stat = statSync(dir, { throwIfNoEntry: false });
    if (stat !== undefined && stat.uid === process.getuid?.() && now - stat.mtimeMs > PAGE_KEPT_MS) rmSync(dir, { recursive: true, force: true });
  }
  // mkdtemp makes it 0700.
  const page = join(mkdtempSync(join(tmpdir(), PAGE_DIR_PREFIX)), "login.html");
  const attribute = link.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
  writeFileSync(page, `<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer"><meta http-equiv="refresh" content="0;url=${attribute}"><title>CoderClaw</title>\n`, { mode: 0o600 });
  spawn("xdg-open", [pathToFileURL(page).href], { stdio: "ignore", detached: true }).on("error", () => process.stderr.write("could not open a browser; open the link yourself\n")).unref();
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
