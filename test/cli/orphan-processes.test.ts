import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";
import { isAlive } from "../helpers/processes.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (ok()) return;
  throw new Error(`timed out waiting for ${what}`);
}

describe("process groups of a node that was SIGKILLed", () => {
  it("are killed when the node starts again, before recovery", { timeout: 90_000 }, async () => {
    const d = tempDir("cc-orphan-");
    cleanups.push(() => d.remove());
    const h = d.path;
    const pidFile = join(h, "sleep.pid");
    let sleeper: number | undefined;
    cleanups.push(() => {
      if (sleeper !== undefined && isAlive(sleeper)) process.kill(sleeper, "SIGKILL");
    });

    const first = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => (first.child.signalCode === null ? first.stop() : undefined));
    const sub = await runCli(["task", "submit", `echo $$ > ${pidFile}; exec sleep 600`, "--agent", "shell", "--json"], h);
    expect(sub.code, sub.stderr).toBe(0);
    await until("the shell task to start", () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "");
    sleeper = Number(readFileSync(pidFile, "utf8").trim());
    expect(readdirSync(join(h, "run", "processes"))).toEqual([String(sleeper)]);

    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    await new Promise((r) => setTimeout(r, 300));
    expect(isAlive(sleeper)).toBe(true);

    const second = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => second.stop());
    await until("the orphaned sleep to be killed", () => !isAlive(sleeper) || readFileSync(`/proc/${sleeper}/stat`, "utf8").includes(") Z "));
    expect(readdirSync(join(h, "run", "processes"))).toEqual([]);
  });
});
