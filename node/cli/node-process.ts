import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ControlClientAdapter } from "../control/control-client.js";

const here = fileURLToPath(import.meta.url);
// From sources (tests run TypeScript directly) the runnable CLI is the built one.
const CLI = here.endsWith(".ts") ? resolve(dirname(here), "../../dist/node/cli/main.js") : join(dirname(here), "main.js");

/** A `coderclaw start` process on 127.0.0.1 and a control connection to it. */
export interface NodeProcess {
  readonly home: string;
  readonly child: ChildProcess;
  readonly client: ControlClientAdapter;
  readonly deviceId: string;
  /** The first listen address, with /p2p/<id>. */
  readonly addr: string;
  /** SIGINT, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
}

/**
 * Start `coderclaw start --no-mdns` with `home` as data directory (and working
 * directory, so a `.coderClaw/runtime.yaml` there declares its agents) and
 * connect to its control socket. Used by `coderclaw demo` and the multi-process tests.
 */
export async function startNodeProcess(home: string, extraArgs: string[] = [], timeoutMs = 30_000): Promise<NodeProcess> {
  const child = spawn(process.execPath, [CLI, "--home", home, "start", "--no-mdns", ...extraArgs], { cwd: home, stdio: ["ignore", "ignore", "pipe"] });
  let out = "";
  const addr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`node in ${home} did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
      const listening = /listening (\S+)/.exec(out);
      if (out.includes("control socket") && listening) {
        clearTimeout(timer);
        resolve(listening[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`node in ${home} exited with ${code}:\n${out}`));
    });
  });
  child.removeAllListeners("exit");
  const token = readFileSync(join(home, "control.token"), "utf8").trim();
  const client = await ControlClientAdapter.connect(join(home, "control.sock"), token);
  const { deviceId } = (await client.admin("node.id")) as { deviceId: string };
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const end = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    await client.close().catch(() => undefined);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return { home, child, client, deviceId, addr, stop: (graceMs = 8000) => end("SIGINT", graceMs), kill: () => end("SIGKILL", 0) };
}
