import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./temp-dir.js";

/** The built CLI entry point; `npm test` builds before running tests. */
export const CLI = fileURLToPath(new URL("../../dist/node/cli/main.js", import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
}

/** Run a Node script to completion; bounded in time. */
export function runScript(script: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env, stdio: ["ignore", "pipe", "pipe"], ...(cwd !== undefined && { cwd }) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${basename(script)} ${args.join(" ")} did not finish in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run the CLI to completion with a data directory; bounded in time. */
export function runCli(args: string[], home: string, timeoutMs = 20_000, env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runScript(CLI, args, timeoutMs, { ...process.env, CODERCLAW_HOME: home, ...env }, cwd);
}

/** Start a long-running CLI command (e.g. `start`) and wait until its stderr shows `ready`. */
export function startCli(args: string[], home: string, ready: RegExp, timeoutMs = 20_000): Promise<{ child: ChildProcess; output: () => string; stop: () => Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CODERCLAW_HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`coderclaw ${args.join(" ")} not ready in ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({
          child,
          output: () => out,
          stop: () =>
            new Promise((r) => {
              if (child.exitCode !== null) return r(child.exitCode);
              child.once("exit", (code) => r(code));
              child.kill("SIGINT");
            }),
        });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`coderclaw ${args.join(" ")} exited with ${code}: ${out}`));
    });
  });
}

/**
 * A node started from the CLI in a fresh temp home (`start --no-mdns`, then
 * `startArgs`), with its device id and what it printed while starting; the home's
 * removal and the node's stop go on `cleanups`.
 */
export async function startHomeNode(prefix: string, cleanups: Array<() => unknown>, startArgs: string[] = []): Promise<{ home: string; id: string; output: string }> {
  const home = tempDir(prefix);
  cleanups.push(home.remove);
  const started = await startCli(["start", "--no-mdns", ...startArgs], home.path, /control socket/);
  cleanups.push(started.stop);
  const id = JSON.parse((await runCli(["id", "--json"], home.path)).stdout) as { deviceId: string };
  return { home: home.path, id: id.deviceId, output: started.output() };
}
