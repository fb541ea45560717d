import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createProcessRecords, processStartTime } from "../../src/agents/process-records.js";
import { runProcess } from "../../src/agents/process.js";
import { tempDir } from "../helpers/temp-dir.js";
import { isAlive } from "../helpers/processes.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real `sleep` in its own process group, as agents start them. */
function sleeper(): number {
  const child = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
  child.unref();
  const pid = child.pid!;
  cleanups.push(() => isAlive(pid) && process.kill(-pid, "SIGKILL"));
  return pid;
}

describe("process records", () => {
  it("keeps a record while a process runs and drops it when it ends", async () => {
    const d = tempDir("cc-proc-");
    cleanups.push(() => d.remove());
    const records = createProcessRecords(join(d.path, "run"));
    const seen: string[][] = [];
    const result = await runProcess({
      argv: ["/bin/sh", "-c", "echo $$"],
      cwd: d.path,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      signal: new AbortController().signal,
      records,
      onLine: () => seen.push(readdirSync(join(d.path, "run"))),
    });
    expect(seen).toEqual([[String(result.pid)]]);
    expect(readdirSync(join(d.path, "run"))).toEqual([]);
  });

  it("kills a recorded group whose leader is the process started, and spares a pid now held by another process", async () => {
    const d = tempDir("cc-proc-");
    cleanups.push(() => d.remove());
    const dir = join(d.path, "run");
    const records = createProcessRecords(dir);
    const ours = sleeper();
    records.record(ours);
    const reused = sleeper();
    // What a record of an earlier process with the same pid looks like: another start time.
    writeFileSync(join(dir, String(reused)), JSON.stringify({ pid: reused, startTime: String(Number(processStartTime(reused)) - 1) }));
    writeFileSync(join(dir, "12345678"), "{ cut short");

    expect(createProcessRecords(dir).reapLeftovers()).toEqual([ours]);
    for (let i = 0; i < 100 && isAlive(ours); i++) await new Promise((r) => setTimeout(r, 20));
    expect(isAlive(ours)).toBe(false);
    expect(isAlive(reused)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });
});
