import { spawn } from "node:child_process";

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Run `node script ...args` until `enough` says so of a line it printed, then
 * SIGKILL it and wait for it to exit. Rejects when it exits first or prints no
 * such line within `timeoutMs`.
 */
export async function runThenKill(script: string, args: readonly string[], enough: (line: string) => boolean, timeoutMs = 20_000): Promise<void> {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let buffer = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the child did not get far enough in time; stderr: ${stderr}`)), timeoutMs);
    proc.stdout.on("data", (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      if (lines.filter(enough).length > 0) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on("exit", (code) => reject(new Error(`child exited early with ${code}: ${stderr}`)));
  });
  proc.removeAllListeners("exit");
  const exited = new Promise((r) => proc.on("exit", r));
  proc.kill("SIGKILL");
  await exited;
}

/**
 * Run `node script ...args` until `due` says so of the lines it printed, then
 * SIGKILL it `extraMs` later at whatever await it is in. Answers every whole
 * line it printed (a line cut by the kill reports no finished step); rejects
 * when it exits by itself.
 */
export function killAfterPrinted(script: string, args: readonly string[], due: (lines: string[]) => boolean, extraMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    let killing = false;
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!killing && due(out.split("\n").slice(0, -1))) {
        killing = true;
        setTimeout(() => child.kill("SIGKILL"), extraMs);
      }
    });
    child.on("exit", (code, signal) => {
      if (signal !== "SIGKILL") return reject(new Error(`${script} exited with ${code}: ${stderr}`));
      resolve(out.split("\n").slice(0, -1));
    });
  });
}
