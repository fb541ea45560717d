import { existsSync } from "node:fs";
import { isAbsolute, relative, sep } from "node:path";
import { CoderClawError } from "../contract/errors.js";

/** Where Debian (and most distributions) install bubblewrap. */
export const DEFAULT_BWRAP = "/usr/bin/bwrap";

/**
 * How a node runs processes for work that came from another device: `required`
 * (the default) runs them in a bubblewrap sandbox and refuses them where none
 * can be had; `off` runs them as local work is run.
 */
export type SandboxMode = "required" | "off";

/** What the sandbox of one task shows and hides. */
export interface SandboxSpec {
  /** The bubblewrap binary. */
  bwrap: string;
  /** Read-write: the task's workspace. */
  workspace: string;
  /** Hidden behind empty directories: the node's data directory (keys, database), home directories. */
  hide: readonly string[];
}

/**
 * The argv that runs `argv` inside the sandbox: the whole system read-only,
 * fresh /dev, /proc and /tmp, the hidden paths replaced by empty directories,
 * the workspace bound read-write on top (it may live inside a hidden path, the
 * node's home), and hidden paths inside the workspace hidden again over that
 * bind (a repository the policy allows may hold the data directory or be a
 * home), in new PID and session namespaces that die with the node. The
 * network stays: coding work fetches dependencies and talks to local services.
 *
 * `cwd` (default: the workspace) is where the command starts inside, as a
 * command agent's configured `cwd` asks.
 *
 * Throws UNAVAILABLE, saying what to do, when bubblewrap is not installed.
 */
export function sandboxArgv(spec: SandboxSpec, argv: readonly [string, ...string[]], cwd = spec.workspace): [string, ...string[]] {
  assertSandboxAvailable(spec.bwrap);
  const out: [string, ...string[]] = [spec.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"];
  for (const path of spec.hide) out.push("--tmpfs", path);
  out.push("--bind", spec.workspace, spec.workspace);
  for (const path of spec.hide) if (isInside(path, spec.workspace)) out.push("--tmpfs", path);
  out.push("--chdir", cwd, "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--", ...argv);
  return out;
}

/**
 * Throws UNAVAILABLE, naming the missing binary and how to allow the work, when
 * bubblewrap is not at `bwrap`. Checked when work from another device is
 * admitted, so its submitter hears why at once, and again when its processes
 * start (bubblewrap may be gone by a restart).
 */
export function assertSandboxAvailable(bwrap: string): void {
  if (!existsSync(bwrap)) {
    throw new CoderClawError(
      "UNAVAILABLE",
      `this node runs commands for other devices only in a bubblewrap sandbox, and ${bwrap} is not installed: ` +
        "install it (apt-get install bubblewrap) or set security.sandbox: off in .coderClaw/runtime.yaml (CODERCLAW_SANDBOX=off)",
    );
  }
}

/** Whether `path` lies strictly below `dir`. */
function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
